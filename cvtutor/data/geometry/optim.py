"""A batched Gauss–Newton / Levenberg–Marquardt least-squares solver with analytic or autograd
Jacobians (the refinement step of keypoint-to-3-D-box fitting, bundle adjustment in miniature).

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``).
"""
from __future__ import annotations

from typing import Callable

import torch

Residual = Callable[[torch.Tensor], torch.Tensor]


def autograd_jacobian(residual: Residual, x: torch.Tensor) -> torch.Tensor:
    """``J (B, M, P)`` of a batched residual ``r: (B, P) → (B, M)`` whose problems are independent:
    the Jacobian of ``Σ_b r_b`` w.r.t. ``x`` holds every ``∂r_b/∂x_b`` (``torch.func.jacrev``)."""
    J = torch.func.jacrev(lambda z: residual(z).sum(0))(x)  # (M, B, P)
    return J.permute(1, 0, 2)


def levenberg_marquardt(
    residual: Residual,
    x0: torch.Tensor,
    jacobian: Residual | None = None,
    iters: int = 50,
    lam: float = 1e-3,
    gauss_newton: bool = False,
) -> dict[str, torch.Tensor]:
    """Minimise ``½‖r(x)‖²`` for ``B`` independent problems at once, ``x0 (B, P)``, ``r (B, M)``.

    Each step solves ``(JᵀJ + λ·diag(JᵀJ))·δ = -Jᵀr`` (Marquardt's scaling); a step that lowers the
    cost is taken and ``λ ← λ/10``, otherwise it is rejected and ``λ ← 10λ``, per problem and
    without a host sync (a fixed number of ``iters``). ``gauss_newton=True`` takes every step with
    ``λ = 0``. ``jacobian(x) → (B, M, P)``, or autograd (:func:`autograd_jacobian`) when ``None``.
    Returns ``x``, the final ``cost (B,)`` and the cost history ``(iters + 1, B)``.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must be (B, P), got {tuple(x0.shape)}")
    jac = jacobian or (lambda z: autograd_jacobian(residual, z))
    x = x0.detach().clone()
    r = residual(x)
    if r.ndim != 2 or r.shape[0] != x.shape[0]:
        raise ValueError(f"residual must return (B, M) for x (B, P); got {tuple(r.shape)}")
    cost = 0.5 * r.square().sum(-1)
    lam_b = torch.full_like(cost, 0.0 if gauss_newton else lam)
    history = [cost]
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    for _ in range(iters):
        J = jac(x).detach()
        JtJ = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ r[..., None])[..., 0]
        damp = lam_b[:, None, None] * (JtJ.diagonal(dim1=1, dim2=2)[:, :, None] * eye + 1e-12 * eye)
        delta = torch.linalg.solve(JtJ + damp + (1e-12 * eye if gauss_newton else 0), -g)
        x_new = x + delta
        r_new = residual(x_new).detach()
        cost_new = 0.5 * r_new.square().sum(-1)
        accept = (cost_new <= cost) | torch.tensor(gauss_newton, device=x.device)
        x = torch.where(accept[:, None], x_new, x)
        r = torch.where(accept[:, None], r_new, r)
        cost = torch.where(accept, cost_new, cost)
        if not gauss_newton:
            lam_b = torch.where(accept, lam_b / 10, lam_b * 10).clamp(1e-12, 1e12)
        history.append(cost)
    return {"x": x, "cost": cost, "history": torch.stack(history)}
