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


# ------------------------------------------------------------------------------------------------
# PointNet and the local-pool PointNet of Convolutional Occupancy Networks (the 3-D shape world)
# ------------------------------------------------------------------------------------------------
class PointNet(nn.Module):
    """Plain PointNet (Qi et al., CVPR 2017) without the input/feature transforms: a shared
    per-point MLP ``in_dim → widths``, a max over the points (the symmetric function), and a head
    ``→ out_dim``. ``forward(points (B, N, in_dim))`` → ``(B, out_dim)``; with
    ``per_point=True`` also the per-point features ``(B, N, widths[-1])``."""

    def __init__(self, out_dim: int, widths: tuple[int, ...] = (64, 128, 256), in_dim: int = 3,
                 head: int = 128) -> None:
        super().__init__()
        if out_dim < 1 or in_dim < 1 or not widths or min(widths) < 1:
            raise ValueError(f"out_dim, in_dim and widths must be positive, got {out_dim}, {in_dim}, {widths}")
        self.in_dim = in_dim
        layers, c = [], in_dim
        for w in widths:
            layers += [nn.Linear(c, w), nn.ReLU(inplace=True)]
            c = w
        self.shared = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c, head), nn.ReLU(inplace=True), nn.Linear(head, out_dim))

    def forward(self, points: torch.Tensor, per_point: bool = False):
        if points.ndim != 3 or points.shape[2] != self.in_dim:
            raise ValueError(f"expected points of shape (B, N, {self.in_dim}), got {tuple(points.shape)}")
        h = self.shared(points)
        out = self.head(h.max(1).values)
        return (out, h) if per_point else out


PLANES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}


def normalize_coords(p: torch.Tensor, padding: float = 0.1) -> torch.Tensor:
    """Map points of the cube ``[-0.5, 0.5]³`` (enlarged by ``padding``) to ``[0, 1)``."""
    return (p / (1 + padding + 1e-3) + 0.5).clamp(0, 1 - 1e-6)


def cell_index(p01: torch.Tensor, resolution: int, axes: tuple[int, ...]) -> torch.Tensor:
    """Flat cell index ``(B, N)`` of normalised points ``p01 (B, N, 3)`` on a ``resolution^len(axes)``
    grid over the given axes (the first axis varies slowest)."""
    idx = (p01[..., list(axes)] * resolution).long()
    flat = idx[..., 0]
    for k in range(1, len(axes)):
        flat = flat * resolution + idx[..., k]
    return flat


def scatter_mean(feat: torch.Tensor, index: torch.Tensor, n_cells: int) -> torch.Tensor:
    """Mean of point features ``feat (B, N, C)`` per cell ``index (B, N)`` → ``(B, n_cells, C)``
    (0 in empty cells): the local pooling of ConvONet, differentiable in ``feat``."""
    B, N, C = feat.shape
    out = torch.zeros(B, n_cells, C, dtype=feat.dtype, device=feat.device)
    out = out.scatter_reduce(1, index[..., None].expand(B, N, C), feat, reduce="mean", include_self=False)
    return out


def sample_plane_features(planes: torch.Tensor, p01: torch.Tensor, axes: tuple[int, int]) -> torch.Tensor:
    """Bilinear interpolation of a feature plane ``(B, C, R, R)`` at normalised points
    ``p01 (B, N, 3)`` projected on ``axes``: ``(B, N, C)``. The plane's row index is the first axis,
    its column the second (as :func:`cell_index` lays out the cells)."""
    xy = p01[..., list(axes)] * 2 - 1  # grid_sample wants (x = column, y = row) in [-1, 1]
    grid = torch.stack([xy[..., 1], xy[..., 0]], -1)[:, :, None]
    f = nn.functional.grid_sample(planes, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return f[..., 0].transpose(1, 2)


def sample_grid_features(grid: torch.Tensor, p01: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of a feature volume ``(B, C, R, R, R)`` (indexed ``[x, y, z]``) at
    normalised points ``p01 (B, N, 3)``: ``(B, N, C)``."""
    g = (p01 * 2 - 1).flip(-1)[:, :, None, None]  # grid_sample's (x, y, z) index (W, H, D) = (z, y, x)
    f = nn.functional.grid_sample(grid, g, mode="bilinear", padding_mode="border", align_corners=False)
    return f[..., 0, 0].transpose(1, 2)


class LocalPoolPointNet(nn.Module):
    """The encoder of Convolutional Occupancy Networks (Peng et al., ECCV 2020), without its U-Net:
    per-point features from residual blocks, each followed by local pooling (scatter-mean of the
    features onto the cells of the feature planes or the grid, gathered back to the points and
    concatenated), then a final scatter-mean onto ``planes`` (``("xy", "xz", "yz")``, each
    ``(B, C, R, R)``) or onto a ``(B, C, R, R, R)`` volume when ``grid=True``.

    ``forward(points (B, N, 3))`` (in the padded unit cube) → dict of feature maps by name."""

    def __init__(self, c_dim: int = 32, hidden: int = 64, blocks: int = 3, resolution: int = 32,
                 planes: tuple[str, ...] = ("xy", "xz", "yz"), grid: bool = False, padding: float = 0.1) -> None:
        super().__init__()
        if not grid and (not planes or any(p not in PLANES for p in planes)):
            raise ValueError(f"planes must be a non-empty subset of {tuple(PLANES)}, got {planes}")
        self.resolution, self.planes, self.grid, self.padding = resolution, tuple(planes), grid, padding
        self.fc_pos = nn.Linear(3, 2 * hidden)
        self.blocks = nn.ModuleList([_ResFC(2 * hidden, hidden) for _ in range(blocks)])
        self.fc_c = nn.Linear(hidden, c_dim)

    def _indices(self, p01):
        R = self.resolution
        if self.grid:
            return {"grid": (cell_index(p01, R, (0, 1, 2)), R ** 3)}
        return {name: (cell_index(p01, R, PLANES[name]), R * R) for name in self.planes}

    def _pool(self, h, idx):
        pooled = 0
        for index, n in idx.values():
            cells = scatter_mean(h, index, n)
            pooled = pooled + cells.gather(1, index[..., None].expand_as(h))
        return pooled

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        if points.ndim != 3 or points.shape[2] != 3:
            raise ValueError(f"expected points of shape (B, N, 3), got {tuple(points.shape)}")
        p01 = normalize_coords(points, self.padding)
        idx = self._indices(p01)
        h = self.blocks[0](self.fc_pos(points))
        for block in self.blocks[1:]:
            h = block(torch.cat([h, self._pool(h, idx)], -1))
        c = self.fc_c(h)
        B, R = len(points), self.resolution
        out = {}
        for name, (index, n) in idx.items():
            cells = scatter_mean(c, index, n).transpose(1, 2)
            out[name] = cells.reshape(B, -1, R, R, R) if name == "grid" else cells.reshape(B, -1, R, R)
        return out

    def sample(self, features: dict[str, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        """Features ``(B, N, c_dim)`` at query ``points (B, N, 3)``: the sum over the planes of
        their bilinear samples, or the trilinear sample of the grid (ConvONet's decoder input)."""
        p01 = normalize_coords(points, self.padding)
        if self.grid:
            return sample_grid_features(features["grid"], p01)
        return sum(sample_plane_features(features[n], p01, PLANES[n]) for n in self.planes)


class _ResFC(nn.Module):
    """ConvONet's ResnetBlockFC: ``x + fc1(relu(fc0(relu(x))))`` with a linear shortcut where the
    width changes."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.fc0 = nn.Linear(c_in, c_out)
        self.fc1 = nn.Linear(c_out, c_out)
        self.short = nn.Linear(c_in, c_out, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.short(x) + self.fc1(torch.relu(self.fc0(torch.relu(x))))


class OccupancyDecoder(nn.Module):
    """ConvONet's decoder: an MLP on the query point plus its sampled features → occupancy logit
    ``(B, N)``."""

    def __init__(self, c_dim: int = 32, hidden: int = 64, blocks: int = 3) -> None:
        super().__init__()
        self.fc_p = nn.Linear(3, hidden)
        self.fc_c = nn.ModuleList([nn.Linear(c_dim, hidden) for _ in range(blocks)])
        self.blocks = nn.ModuleList([_ResFC(hidden, hidden) for _ in range(blocks)])
        self.out = nn.Linear(hidden, 1)

    def forward(self, points: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc_p(points)
        for fc, block in zip(self.fc_c, self.blocks):
            h = block(h + fc(c))
        return self.out(torch.relu(h))[..., 0]
