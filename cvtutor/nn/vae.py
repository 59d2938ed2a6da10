"""Gaussian pieces of every VAE in the book: the reparameterization trick and the closed-form KLs.

Shared by H2 (Disentangling Latent Hands) and H3 (multimodal VAEs).
"""
from __future__ import annotations

import torch


def _check(*tensors: torch.Tensor) -> None:
    if not all(torch.is_tensor(t) for t in tensors):
        raise TypeError("mu and logvar must be tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"mu and logvar must have one shape, e.g. (batch, d); got {sorted(shapes)}")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)``: a sample of ``q`` whose gradient flows into μ and log σ²."""
    _check(mu, logvar)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_k (σ_k² + μ_k² - 1 - log σ_k²)``, summed over the last dim:
    ``(B, d) → (B,)``."""
    _check(mu, logvar)
    return 0.5 * (logvar.exp() + mu ** 2 - 1.0 - logvar).sum(-1)


def kl_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²))`` of diagonal Gaussians, summed over the last dim:
    ``½ Σ (log σ_p² - log σ_q² + (σ_q² + (μ_q - μ_p)²)/σ_p² - 1)``."""
    _check(mu_q, logvar_q, mu_p, logvar_p)
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0).sum(-1)
