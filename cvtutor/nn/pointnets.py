"""Point-set networks shared by the point-cloud papers: a residual permutation-equivariant encoder
("ResPEL-lite", after Li & Lee, CVPR 2019, and the equivariant layer of Zaheer et al.'s Deep Sets)
and the FoldingNet decoder (Yang et al., CVPR 2018).

Permutation-equivariant layer (Deep Sets, max variant): for point features ``h (B, N, c)``,

    PEL(h)_n = Γ·h_n - Λ·max_m h_m            (1)

so permuting the points permutes the outputs the same way. Residual stacks ``h ← h + ReLU(PEL(h))``
stay equivariant, and a final max over the points makes the encoder invariant.

FoldingNet folds a fixed 2-D grid ``u ∈ [-1, 1]²`` into the cloud, conditioned on the code ``z``:

    x⁽¹⁾ = MLP₁([z, u]),   x̂ = MLP₂([z, x⁽¹⁾])   (2)
"""
from __future__ import annotations

import torch
from torch import nn


class PermEquivariant(nn.Module):
    """Eq. (1): ``Γ h_n - Λ max_m h_m`` (``Γ`` with a bias, ``Λ`` without)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(c_in, c_out)
        self.lam = nn.Linear(c_in, c_out, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.gamma(h) - self.lam(h.max(1, keepdim=True).values)


class ResPELEncoder(nn.Module):
    """Point cloud ``(B, N, 3)`` → ``(B, out_dim)``: per-point Linear, ``blocks`` residual equivariant
    layers ``h ← h + ReLU(PEL(h))``, max over the points, then a linear head. Invariant to the
    order of the points."""

    def __init__(self, out_dim: int, width: int = 64, blocks: int = 3, in_dim: int = 3) -> None:
        super().__init__()
        if min(out_dim, width, in_dim) < 1 or blocks < 0:
            raise ValueError(f"out_dim, width, in_dim must be positive and blocks >= 0, got {out_dim}, {width}, "
                             f"{in_dim}, {blocks}")
        self.in_dim = in_dim
        self.embed = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList([PermEquivariant(width, width) for _ in range(blocks)])
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(width, out_dim))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if points.ndim != 3 or points.shape[2] != self.in_dim:
            raise ValueError(f"expected points of shape (B, N, {self.in_dim}), got {tuple(points.shape)}")
        h = self.embed(points)
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return self.head(h.max(1).values)


def folding_grid(rows: int, cols: int) -> torch.Tensor:
    """The fixed ``(rows·cols, 2)`` grid on ``[-1, 1]²`` that FoldingNet folds."""
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must have positive rows and cols, got {rows}x{cols}")
    u = torch.linspace(-1, 1, rows)
    v = torch.linspace(-1, 1, cols)
    return torch.stack(torch.meshgrid(u, v, indexing="ij"), -1).reshape(-1, 2)


def _mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, c_out))


class FoldingNetDecoder(nn.Module):
    """Eq. (2): ``z (B, d)`` → ``(B, rows·cols, 3)`` by two folds of a fixed grid (3-layer MLPs)."""

    def __init__(self, latent_dim: int, grid: tuple[int, int] = (16, 8), hidden: int = 64, out_dim: int = 3) -> None:
        super().__init__()
        if latent_dim < 1 or hidden < 1:
            raise ValueError(f"latent_dim and hidden must be positive, got {latent_dim}, {hidden}")
        self.latent_dim = latent_dim
        self.register_buffer("grid", folding_grid(*grid), persistent=False)
        self.fold1 = _mlp(latent_dim + 2, hidden, out_dim)
        self.fold2 = _mlp(latent_dim + out_dim, hidden, out_dim)

    @property
    def n_points(self) -> int:
        return self.grid.shape[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected a latent of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        B, M = len(z), self.n_points
        zz = z[:, None, :].expand(B, M, self.latent_dim)
        x1 = self.fold1(torch.cat([zz, self.grid.to(z.dtype).expand(B, M, 2)], -1))
        return self.fold2(torch.cat([zz, x1], -1))
