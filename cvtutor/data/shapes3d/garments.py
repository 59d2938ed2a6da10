"""Clothed bodies in garment sizes: an SMPL-free body + garment template on a tube.

Derived in the chapter ``notebooks/eccv2020/sizer.ipynb`` (SIZER, section 3). The body is a closed
tube (:func:`cvtutor.data.shapes3d.meshes.tube`) of ``rows x cols`` vertices standing for the hips
to the neck of a person in A-pose (``height`` metres). It follows SIZER's Eqs. (1)-(3) with the pose
fixed (``θ = 0``, no skinning, ``B_p = 0``):

- ``T(β, D) = T̄ + B_s(β) + D`` (Eq. 2): a mean template ``T̄ (V, 3)``, a linear shape basis
  ``B_s(β) = Σ_k β_k σ_k Ŝ_k`` with ``β ~ N(0, I)`` and per-component scales ``σ_k`` (girth, height,
  chest-to-waist ratio, belly), and per-vertex offsets ``D`` (garments, hair and face details);
- ``T^g(β) = I^g T(β, 0)`` (Eq. 3): a garment template is a range of rows of the body
  (``lower`` then ``upper``; the top rows are skin), ``I^g`` stored as the index vector
  ``garment_index[g] (m_g,)``.

A garment of size ``δ ∈ {S, M, L, XL}`` has the ring circumference ``c(δ) = SIZE_SCALE[δ] · C_g``
(``C_g`` the mean body's ring perimeter plus the class's ease). Its slack over the body ring is
``s = (c(δ) - perimeter(T(β) ring)) / 2π``; the garment floats ``ε + ReLU(s)`` off the body and
folds with amplitude ``γ · ReLU(s) · |sin(k φ / 2 + ψ)|`` (``k`` folds per ring, more on loose
rings, phase ``ψ`` of the subject): tight garments stretch on large bodies, loose ones fold, so the
garment is
a non-linear function of ``(β, δ)``. The single-layer input mesh ``M`` (SMPL+D) is the body with the
garments' and the skin details' offsets, plus scanner noise.

The registered garment ``G_GT`` is the same surface on the garment's *own* parametrisation, which
slides with size (the hem moves, the collar twists): vertex ``(r, c)`` of the template is the
noise-free surface at ``(r + Δr, c + Δc)``, a bilinear (convex) combination of four input vertices.
So ``W = I^g``
cuts out the right region but is not the answer; the folds must be copied from the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cvtutor.data.shapes3d import meshes

SIZES = ("S", "M", "L", "XL")
SIZE_SCALE = (0.94, 1.0, 1.06, 1.12)
GARMENTS = ("lower", "upper")


@dataclass(frozen=True)
class GarmentWorld:
    """The template of the clothed-body world (everything fixed; subjects are drawn by
    :meth:`sample`). ``rows x cols`` vertices; ``sigma`` the shape components' scales (metres)."""

    rows: int = 20
    cols: int = 24
    height: float = 0.8
    depth: float = 0.75
    sigma: tuple[float, ...] = (0.012, 0.03, 0.008, 0.012)
    ease: tuple[float, float] = (0.02, 0.03)  # lower, upper: extra circumference of size M
    fold_gain: float = 0.6
    tight: float = 0.003  # ε: the offset of a stretched garment
    noise: float = 0.001  # scanner noise (metres)

    def __post_init__(self) -> None:
        if self.rows < 10 or self.cols < 8:
            raise ValueError(
                f"GarmentWorld needs rows >= 10 and cols >= 8, got {self.rows}x{self.cols}"
            )

    # -- the template --------------------------------------------------------------------------
    @property
    def n_verts(self) -> int:
        return self.rows * self.cols

    def row_ranges(self) -> dict[str, tuple[int, int]]:
        """``[lo, hi)`` rows of each garment and of the skin (neck) band."""
        lo, up = round(0.4 * self.rows), round(0.9 * self.rows)
        return {"lower": (0, lo), "upper": (lo, up), "skin": (up, self.rows)}

    def garment_index(self, garment: str, device=None) -> torch.Tensor:
        """``I^g`` as indices ``(m_g,)``: the body vertex of every garment template vertex."""
        ranges = self.row_ranges()
        if garment not in ranges:
            raise ValueError(f"garment must be one of {tuple(ranges)}, got {garment!r}")
        lo, hi = ranges[garment]
        return torch.arange(lo * self.cols, hi * self.cols, device=device)

    def indicator(self, garment: str, device=None) -> torch.Tensor:
        """The dense indicator matrix ``I^g ∈ {0, 1}^{m_g x n}`` of Eq. (3)."""
        idx = self.garment_index(garment, device)
        out = torch.zeros(len(idx), self.n_verts, device=device)
        out[torch.arange(len(idx), device=device), idx] = 1
        return out

    def _t(self, device) -> torch.Tensor:
        return torch.linspace(0, 1, self.rows, device=device)

    def _phi(self, device) -> torch.Tensor:
        return torch.arange(self.cols, device=device) * (2 * math.pi / self.cols)

    def mean_radius(self, device=None) -> torch.Tensor:
        """``(rows,)`` x-semi-axis of the mean rings: hips, waist, chest, neck."""
        t = self._t(device)
        bump = lambda c, w: torch.exp(-(((t - c) / w) ** 2))
        return (
            0.15
            + 0.02 * bump(0.15, 0.12)
            - 0.015 * bump(0.45, 0.1)
            + 0.015 * bump(0.7, 0.1)
            - 0.08 * torch.sigmoid((t - 0.93) / 0.02)
        )

    def faces(self, device=None) -> torch.Tensor:
        return meshes.tube(torch.ones(1, self.rows, 2, device=device), self.height, self.cols)[
            "faces"
        ]

    def template(self, device=None) -> torch.Tensor:
        """``T̄ (V, 3)``: the mean body."""
        r = self.mean_radius(device)
        radii = torch.stack([r, self.depth * r], -1)[None]
        return meshes.tube(radii, self.height, self.cols)["verts"][0]

    def outward(self, device=None) -> torch.Tensor:
        """``(V, 3)`` horizontal unit directions out of each ring (the normal of the ellipse)."""
        phi = self._phi(device)
        d = torch.stack([phi.cos() * self.depth, phi.sin(), torch.zeros_like(phi)], -1)
        d = d / d.norm(dim=-1, keepdim=True)
        return d.repeat(self.rows, 1)

    def shape_basis(self, device=None) -> torch.Tensor:
        """``σ_k Ŝ_k`` stacked, ``(4, V, 3)``: girth, height, chest-to-waist ratio, belly."""
        t = self._t(device).repeat_interleave(self.cols)
        phi = self._phi(device).repeat(self.rows)
        out = self.outward(device)
        bump = lambda c, w: torch.exp(-(((t - c) / w) ** 2))
        neck = 1 - torch.sigmoid((t - 0.93) / 0.02)
        girth = out * neck[:, None]
        up = torch.zeros_like(out)
        up[:, 2] = t
        chest = out * (bump(0.7, 0.1) - bump(0.45, 0.1))[:, None]
        belly = out * (bump(0.4, 0.12) * phi.sin().clamp_min(0) ** 2)[:, None]
        basis = torch.stack([girth, up, chest, belly])
        return basis * torch.tensor(self.sigma, device=device)[:, None, None]

    def body(self, beta: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
        """``T(β, D) = T̄ + B_s(β) + D`` (Eq. 2, A-pose): ``beta (B, 4)`` → ``(B, V, 3)``."""
        if beta.ndim != 2 or beta.shape[1] != len(self.sigma):
            raise ValueError(f"beta must be (B, {len(self.sigma)}), got {tuple(beta.shape)}")
        T = self.template(beta.device) + torch.einsum(
            "bk,kvc->bvc", beta, self.shape_basis(beta.device)
        )
        if D is not None:
            if D.shape != T.shape:
                raise ValueError(f"D must be (B, V, 3) = {tuple(T.shape)}, got {tuple(D.shape)}")
            T = T + D
        return T

    def ring_perimeter(self, verts: torch.Tensor) -> torch.Tensor:
        """``(B, rows)`` perimeters of the rings of ``verts (B, V, 3)``."""
        ring = verts.reshape(len(verts), self.rows, self.cols, 3)
        return (ring - ring.roll(1, dims=2)).norm(dim=-1).sum(-1)

    # -- subjects, sizes, garments --------------------------------------------------------------
    def sample(self, n_subjects: int, seed: int = 0, device=None) -> dict[str, torch.Tensor]:
        """Every subject in every size: tensors indexed ``[subject, size]``.

        ``beta (N, 4)``; ``body (N, V, 3)`` the smooth body ``T(β, 0)``; ``skin (N, V, 3)`` the
        body with its hair/face details (the detailed body under the clothing);
        ``mesh (N, 4, V, 3)``
        the single-layer input ``M``; ``clean (N, 4, V, 3)`` the same without scanner noise;
        ``fold (N, 4, V)`` the fold amplitude; ``garments[g] (N, 4, m_g, 3)`` the registered
        garments ``G_GT`` (:func:`slide`); ``slack[g] (N, 4)`` mean ring slack (metres).
        """
        device = torch.device(device or "cpu")
        g = torch.Generator(device=device).manual_seed(int(seed))
        rand = lambda *s: torch.rand(*s, generator=g, device=device)
        N, R, C = n_subjects, self.rows, self.cols
        beta = torch.randn(N, len(self.sigma), generator=g, device=device)
        body = self.body(beta)
        out_dir = self.outward(device)
        # skin details: four radial bumps on the neck band (hair, face)
        lo_s, hi_s = self.row_ranges()["skin"]
        phi = self._phi(device)
        rr = torch.arange(R, device=device, dtype=torch.float32)
        c_phi, c_row = 2 * math.pi * rand(N, 4), lo_s + (hi_s - 1 - lo_s) * rand(N, 4)
        amp = 0.004 + 0.008 * rand(N, 4)
        dphi = (
            torch.remainder(phi[None, None, :] - c_phi[..., None] + math.pi, 2 * math.pi) - math.pi
        )
        bumps = amp[..., None, None] * torch.exp(
            -((dphi[:, :, None, :] / 0.35) ** 2)
            - ((rr[None, None, :, None] - c_row[..., None, None]) / 0.7) ** 2
        )
        detail = bumps.sum(1).reshape(N, -1)[..., None] * out_dir
        skin = body + detail
        # garments: slack per ring, offsets, folds
        psi = 2 * math.pi * rand(N, 2)
        psi2 = 2 * math.pi * rand(N, 2)
        mean_perim = self.ring_perimeter(self.template(device)[None])[0]
        perim = self.ring_perimeter(body)  # (N, R)
        scale = torch.tensor(SIZE_SCALE, device=device)
        offset = torch.zeros(N, 4, R, C, device=device)
        fold = torch.zeros(N, 4, R, C, device=device)
        slack_mean = {}
        t = self._t(device)
        for gi, name in enumerate(GARMENTS):
            lo, hi = self.row_ranges()[name]
            circ = scale[:, None] * mean_perim[lo:hi] * (1 + self.ease[gi])  # (4, rows_g)
            s = (circ[None] - perim[:, None, lo:hi]) / (2 * math.pi)  # (N, 4, rows_g)
            loose = s.clamp_min(0)
            slack_mean[name] = s.mean(-1)
            k = (4 + loose.mean(-1) / 0.004).round().clamp(4, 10)  # folds per ring
            wave = torch.sin(k[..., None, None] * phi / 2 + psi[:, gi, None, None, None]).abs()
            vert = 0.7 + 0.3 * torch.sin(6 * math.pi * t[lo:hi] + psi2[:, gi, None])
            a = self.fold_gain * loose[..., None] * wave * vert[:, None, :, None]
            fold[:, :, lo:hi] = a
            offset[:, :, lo:hi] = self.tight + loose[..., None] + a
        D = offset.reshape(N, 4, -1)[..., None] * out_dir
        clean = skin[:, None] + D
        noise = self.noise * torch.randn(clean.shape, generator=g, device=device)
        mesh = clean + noise
        garments = {}
        for name in GARMENTS:
            garments[name] = slide(clean, self, name)
        return {
            "beta": beta,
            "body": body,
            "skin": skin,
            "mesh": mesh,
            "clean": clean,
            "fold": fold.reshape(N, 4, -1),
            "garments": garments,
            "slack": slack_mean,
        }

    def size_shift(self, size: torch.Tensor, garment: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Δr, Δc)`` of the garment's parametrisation for size indices ``size`` (rows, columns):
        the hem of larger sizes hangs lower, the collar twists (fractions of a grid step)."""
        x = (size.float() - 1.5) / 1.5
        sign = -1.0 if garment == "lower" else 1.0
        return 0.4 * x * sign, 0.3 * x


def slide(verts: torch.Tensor, world: GarmentWorld, garment: str) -> torch.Tensor:
    """The registered garment of every size: ``verts (N, 4, V, 3)`` (size on axis 1) sampled at the
    slid parametrisation ``(r + Δr, c + Δc)`` of the garment's rows by bilinear interpolation (a
    convex combination of four input vertices; rows clamped to the garment, columns wrap):
    ``(N, 4, m_g, 3)``."""
    if verts.ndim != 4 or verts.shape[1] != len(SIZES) or verts.shape[2] != world.n_verts:
        raise ValueError(
            f"verts must be (N, {len(SIZES)}, {world.n_verts}, 3), got {tuple(verts.shape)}"
        )
    N = len(verts)
    R, C = world.rows, world.cols
    lo, hi = world.row_ranges()[garment]
    grid = verts.reshape(N, 4, R, C, 3)
    dr, dc = world.size_shift(torch.arange(4, device=verts.device), garment)
    rows = torch.arange(lo, hi, device=verts.device, dtype=verts.dtype)
    cols = torch.arange(C, device=verts.device, dtype=verts.dtype)
    r = (rows[None, :] + dr[:, None]).clamp(lo, hi - 1)  # (4, rows_g)
    c = cols[None, :] + dc[:, None]  # (4, C)
    r0 = r.floor().long().clamp(lo, hi - 1)
    r1 = (r0 + 1).clamp(max=hi - 1)
    fr = (r - r0)[..., None, None]
    c0 = c.floor().long()
    fc = (c - c0)[:, None, :, None]
    c0, c1 = c0 % C, (c0 + 1) % C
    s = torch.arange(4, device=verts.device)

    def at(ri, ci):
        return grid[:, s[:, None, None], ri[:, :, None], ci[:, None, :]]  # (N, 4, rows_g, C, 3)

    out = (1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c1)) + fr * (
        (1 - fc) * at(r1, c0) + fc * at(r1, c1)
    )
    return out.reshape(N, 4, -1, 3)


def split(n_subjects: int, n_test: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """SIZER's held-out protocol (Sect. 4.5) on ``(subject, size)`` samples: ``n_test`` test samples
    per garment class, 60 % of them every size of unseen subjects, the rest one unseen size of seen
    subjects. Returns boolean masks ``train``, ``test`` of shape ``(N, 4)``."""
    if n_test < 4 or n_test > 2 * n_subjects:
        raise ValueError(
            f"n_test must be in [4, {2 * n_subjects}] for {n_subjects} subjects, got {n_test}"
        )
    g = torch.Generator().manual_seed(int(seed) + 17)
    order = torch.randperm(n_subjects, generator=g)
    n_unseen = max(1, round(0.6 * n_test) // 4)
    n_seen = n_test - 4 * n_unseen
    if n_unseen + n_seen > n_subjects:
        raise ValueError(f"{n_subjects} subjects are too few for {n_test} test samples")
    test = torch.zeros(n_subjects, 4, dtype=torch.bool)
    test[order[:n_unseen]] = True
    seen = order[n_unseen : n_unseen + n_seen]
    test[seen, torch.randint(0, 4, (n_seen,), generator=g)] = True
    return {"train": ~test, "test": test}
