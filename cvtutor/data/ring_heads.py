"""The "ring-head" keypoint toy: one bright ring (the head) among distractor blobs, find its centre.

Used by the UniLoss chapter (``notebooks/eccv2020/surrogate_loss.ipynb``) as a miniature of MPII's
head-joint PCKh task. Each ``size x size`` grey image holds a ring (outer radius ``R``) at a random
position and 3-5 distractors (disc, square, cross) of similar brightness but another shape, plus
Gaussian noise. The label is the ring centre ``uv`` in image pixels (pixel ``j`` spans
``[j, j + 1)``) and the "head size" is the ring's outer diameter, so PCKh@0.5 counts a prediction
within one ring radius of the centre. Seeded, generated on the device, batched.

It stands for: a single keypoint defined by a local appearance that distractors imitate in
brightness. It cannot stand for: articulated bodies, occlusion, scale from a person box.
"""

from __future__ import annotations

import torch

from cvtutor.data.imageclass.sets import shape_sdf

DISTRACTORS = ("disc", "square", "cross")


def ring_heads(n: int, size: int = 32, seed: int = 0, device="cpu",
               noise: float = 0.08) -> dict[str, torch.Tensor]:
    """``n`` images ``x (n, 1, size, size)`` in [0, 1], centres ``uv (n, 2)`` (x, y) in pixels,
    head sizes ``head_size (n,)`` (the ring's outer diameter, pixels)."""
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 images of size >= 16 pixels, got n={n}, size={size}")
    g = torch.Generator(device=torch.device(device)).manual_seed(int(seed))

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=device)

    scale = size / 32
    k = 5  # distractor slots, 3-5 of them shown
    radius = (3.0 + 1.5 * rand(n)) * scale  # ring outer radius 3-4.5 px at 32 x 32
    margin = radius + 1
    uv = margin[:, None] + rand(n, 2) * (size - 2 * margin[:, None])
    d_rad = (2.5 + 1.5 * rand(n, k)) * scale
    d_uv = d_rad[..., None] + rand(n, k, 2) * (size - 2 * d_rad[..., None])
    shown = torch.arange(k, device=device)[None] < (3 + (rand(n) * 3).long().clamp(max=2))[:, None]
    kind = (rand(n, k) * len(DISTRACTORS)).long().clamp(max=len(DISTRACTORS) - 1)
    bright = 0.7 + 0.3 * rand(n, k + 1)
    grid = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    p = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1)  # (S, S, 2) = (x, y)

    def coverage(centre, rad, name):  # centre (n, m, 2), rad (n, m) -> (n, m, S, S)
        q = (p[None, None] - centre[:, :, None, None]) / (rad[:, :, None, None, None] / 0.98)
        d = shape_sdf(name, q) * rad[:, :, None, None] / 0.98  # signed distance in pixels
        return (0.5 - d).clamp(0, 1)

    img = coverage(uv[:, None], radius[:, None], "ring")[:, 0] * bright[:, :1, None]
    for j, name in enumerate(DISTRACTORS):
        cov = coverage(d_uv, d_rad * 0.8, name) * (shown & (kind == j))[..., None, None]
        img = torch.maximum(img, (cov * bright[:, 1:, None, None]).amax(1))
    img = img + noise * torch.randn(n, size, size, generator=g, device=device)
    return {"x": img.clamp(0, 1)[:, None], "uv": uv, "head_size": 2 * radius}
