"""Network inputs from hand-world renders, shared by every hand paper (hand world Eq. 4)."""
from __future__ import annotations

import torch


def rgb_input(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] mapped to [-1, 1]."""
    return 2.0 * rgb - 1.0


def depth_input(depth: torch.Tensor, root: torch.Tensor, span: float = 0.15) -> torch.Tensor:
    """Depth ``(n,1,H,W)`` relative to the root joint's depth ``root[:, 2]``, in units of ``span`` metres
    (15 cm), clipped to [-1, 1]."""
    if depth.ndim != 4 or root.ndim != 2 or root.shape[1] != 3 or root.shape[0] != depth.shape[0]:
        raise ValueError(f"expected depth (n,1,H,W) and root (n,3); got {tuple(depth.shape)} and {tuple(root.shape)}")
    return ((depth - root[:, 2, None, None, None]) / span).clamp(-1.0, 1.0)
