"""Parameters, FLOPs and multiply-adds of a model, measured with PyTorch's ``FlopCounterMode``.

Shown in ``notebooks/eccv2020/world_images.ipynb`` (section 6); used by the efficiency chapters
(DSA pruning E35, MobileNeXt E40, BNNs E14). ``FlopCounterMode`` counts the convolutions and matrix
products of one forward pass, 2 FLOPs per multiply-add; bias additions, normalisation, activations
and pooling are not counted, as in the papers' MAdds tables (MobileNet's convention), so
``madds = flops / 2``. :func:`conv2d_flops` is the closed form the counts are checked against.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv2d_flops(
    c_in: int,
    c_out: int,
    kernel: int | tuple[int, int],
    out_hw: tuple[int, int],
    groups: int = 1,
    batch: int = 1,
) -> int:
    """Closed form of one convolution: ``2 B C_out H_out W_out (C_in / groups) k_h k_w`` FLOPs
    (each output value is a dot product of ``C_in / groups * k_h * k_w`` terms). A depthwise
    convolution is ``groups = C_in = C_out``."""
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups ({groups}) must divide c_in ({c_in}) and c_out ({c_out})")
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return 2 * batch * c_out * out_hw[0] * out_hw[1] * (c_in // groups) * kh * kw


@torch.no_grad()
def flop_count(model: nn.Module, x: torch.Tensor) -> dict:
    """One forward pass of ``model`` on ``x`` under ``FlopCounterMode``.

    Returns ``{"flops", "madds", "params", "by_op": {op name: flops}, "by_module": {name: flops}}``
    (FLOPs of the whole batch ``x``; divide by ``len(x)`` for per-image numbers).
    """
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    total = counter.get_total_flops()
    by_op = {str(op).removeprefix("aten."): int(v) for op, v in counts.get("Global", {}).items()}
    by_module = {name: int(sum(ops.values())) for name, ops in counts.items() if name != "Global"}
    return {
        "flops": int(total),
        "madds": int(total) // 2,
        "params": count_parameters(model),
        "by_op": by_op,
        "by_module": by_module,
    }
