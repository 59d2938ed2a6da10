"""Classification metrics of the image-classification world: open-set / OOD scores, corruption
errors and adversarial robustness.

Derived and shown in ``notebooks/eccv2020/world_images.ipynb`` (section 5); used by the open-set
(E07, E30), robustness (E04) and efficiency chapters. Scores are "known-ness": higher means more
likely a known class / in-distribution. All functions take torch tensors or array-likes and
return Python floats unless stated.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F


def _as_1d(v, name: str, dtype=torch.float64) -> torch.Tensor:
    t = torch.as_tensor(v).detach().to("cpu", dtype)
    if t.ndim != 1 or len(t) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    return t


def _binary(y_true, score) -> tuple[torch.Tensor, torch.Tensor]:
    y = _as_1d(y_true, "y_true")
    s = _as_1d(score, "score")
    if y.shape != s.shape:
        raise ValueError(f"y_true and score must have the same length, got {len(y)} and {len(s)}")
    if not bool(((y == 0) | (y == 1)).all()) or y.sum() == 0 or y.sum() == len(y):
        raise ValueError("y_true must hold 0/1 labels with both classes present")
    return y, s


def _average_ranks(s: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``s`` with ties given their average rank."""
    order = torch.argsort(s, stable=True)
    sorted_s = s[order]
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    avg = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(s)
    ranks[order] = avg[inverse]
    return ranks


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative) + P(tie) / 2
    (the Mann-Whitney U statistic over n_pos n_neg), ties counted half."""
    y, s = _binary(y_true, score)
    r = _average_ranks(s)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    u = r[y == 1].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def average_precision(y_true, score) -> float:
    """Area under the precision-recall curve as the step sum AP = sum_n (R_n - R_{n-1}) P_n over
    the distinct score thresholds, highest first (no interpolation; scikit-learn's definition)."""
    y, s = _binary(y_true, score)
    order = torch.argsort(s, descending=True, stable=True)
    y, s = y[order], s[order]
    last = torch.ones(len(s), dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # the last position of each group of tied scores
    tp = torch.cumsum(y, 0)[last]
    seen = torch.arange(1, len(s) + 1, dtype=torch.float64)[last]
    precision, recall = tp / seen, tp / y.sum()
    return float(((recall - torch.cat([recall.new_zeros(1), recall[:-1]])) * precision).sum())


def _known_unknown(score_known, score_unknown) -> tuple[torch.Tensor, torch.Tensor]:
    k, u = _as_1d(score_known, "score_known"), _as_1d(score_unknown, "score_unknown")
    y = torch.cat([torch.ones(len(k)), torch.zeros(len(u))])
    return y, torch.cat([k, u])


def open_set_auroc(score_known, score_unknown) -> float:
    """AUROC of telling known (positive) from unknown test samples by a known-ness score."""
    return roc_auc(*_known_unknown(score_known, score_unknown))


def aupr_in(score_known, score_unknown) -> float:
    """AUPR-In: average precision with the known / in-distribution samples as positives."""
    return average_precision(*_known_unknown(score_known, score_unknown))


def aupr_out(score_known, score_unknown) -> float:
    """AUPR-Out: average precision with the unknown samples as positives, scored by -score."""
    y, s = _known_unknown(score_known, score_unknown)
    return average_precision(1 - y, -s)


def msp(logits: torch.Tensor) -> torch.Tensor:
    """Maximum softmax probability of ``logits (N, K)``, ``(N,)``: the baseline known-ness score
    (Hendrycks & Gimpel 2017), used by the world's notebook and by E30's Softmax baseline."""
    return logits.softmax(1).amax(1)


def open_set_labels(y: torch.Tensor, n_known: int) -> torch.Tensor:
    """Map labels ``>= n_known`` (any unknown class) to the single unknown label ``n_known``."""
    y = torch.as_tensor(y)
    if bool((y < 0).any()):
        raise ValueError("labels must be non-negative")
    return y.clamp(max=n_known)


def open_set_f1(y_true, y_pred, n_known: int) -> float:
    """(k+1)-way macro F1: the F1 of each of the ``k = n_known`` known classes and of the unknown
    class (label ``k``; labels ``>= k`` count as unknown), averaged with equal weight. A class
    with no true and no predicted sample has F1 0 (scikit-learn's ``zero_division=0``)."""
    if n_known < 1:
        raise ValueError(f"n_known must be positive, got {n_known}")
    t = open_set_labels(_as_1d(y_true, "y_true", torch.long), n_known)
    p = open_set_labels(_as_1d(y_pred, "y_pred", torch.long), n_known)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(t)} and {len(p)}")
    classes = torch.arange(n_known + 1)
    tp = ((t[:, None] == classes) & (p[:, None] == classes)).sum(0).double()
    n_true = (t[:, None] == classes).sum(0).double()
    n_pred = (p[:, None] == classes).sum(0).double()
    denom = n_true + n_pred
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return float(f1.mean())


def openness(n_train: int, n_test: int, n_target: int | None = None) -> float:
    """Openness of an open-set protocol (Scheirer et al., TPAMI 2013).

    As E07 (OpenHybrid, Sec. 4.1) and the open-set benchmarks it follows use it:
    ``1 - sqrt(k_train / k_test)`` with ``k_test`` counting known and unknown test classes
    (6 known of 10 gives 22.54 %). With ``n_target`` (the classes to recognise) it is Scheirer's
    original ``1 - sqrt(2 k_train / (k_target + k_test))``.
    """
    if not 1 <= n_train <= n_test:
        raise ValueError(f"need 1 <= n_train <= n_test, got {n_train}, {n_test}")
    if n_target is None:
        return 1 - math.sqrt(n_train / n_test)
    if not 1 <= n_target <= n_test:
        raise ValueError(f"need 1 <= n_target <= n_test, got {n_target}")
    return 1 - math.sqrt(2 * n_train / (n_target + n_test))


def _errors_table(errors: Mapping[str, Sequence[float]], name: str) -> dict[str, torch.Tensor]:
    out = {}
    for c, e in errors.items():
        t = torch.as_tensor(e, dtype=torch.float64)
        if t.ndim != 1 or len(t) == 0:
            raise ValueError(f"{name}[{c!r}] must be a 1-D sequence of errors per severity")
        out[c] = t
    return out


def corruption_errors(
    errors: Mapping[str, Sequence[float]],
    baseline: Mapping[str, Sequence[float]],
    clean: float | None = None,
    baseline_clean: float | None = None,
) -> dict[str, float]:
    """Corruption error ``CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}`` per corruption ``c``.

    With ``clean`` and ``baseline_clean`` (the clean-test errors) it is the *relative* corruption
    error ``sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)`` (Hendrycks &
    Dietterich 2019). The baseline is our own model (AlexNet's errors are not ours), so a value
    below 1 means more robust than that baseline.
    """
    e, b = _errors_table(errors, "errors"), _errors_table(baseline, "baseline")
    if set(e) != set(b):
        raise ValueError(
            f"errors and baseline must name the same corruptions, got {sorted(e)} and {sorted(b)}"
        )
    if (clean is None) != (baseline_clean is None):
        raise ValueError("give both clean and baseline_clean, or neither")
    out = {}
    for c in e:
        if e[c].shape != b[c].shape:
            raise ValueError(f"{c}: {len(e[c])} severities in errors but {len(b[c])} in baseline")
        num, den = (e[c], b[c]) if clean is None else (e[c] - clean, b[c] - baseline_clean)
        if float(den.sum()) <= 0:
            raise ValueError(
                f"{c}: the baseline's (relative) error sums to {float(den.sum())}, cannot normalise"
            )
        out[c] = float(num.sum() / den.sum())
    return out


def mean_corruption_error(errors, baseline, clean=None, baseline_clean=None) -> float:
    """mCE (or relative mCE with the clean errors): the mean of :func:`corruption_errors`."""
    ce = corruption_errors(errors, baseline, clean, baseline_clean)
    return sum(ce.values()) / len(ce)


def pgd_attack(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    seed: int = 0,
    loss_fn: Callable = F.cross_entropy,
) -> torch.Tensor:
    """Projected gradient ascent on ``loss_fn(model(x + d), y)`` over ``||d||_p <= eps`` (Madry
    et al. 2018).

    ``x (B, ...)`` in [0, 1]; each step moves ``d`` by ``step_size`` (default ``2.5 eps / steps``)
    along the gradient's sign (``norm="linf"``) or its per-sample unit direction (``"l2"``), then
    projects onto the ball and onto the image box ``0 <= x + d <= 1``. ``random_start`` starts
    from a uniform point of the ball (seeded). Returns the adversarial batch, detached; the
    model's train/eval mode is left to the caller.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if eps < 0 or steps < 1:
        raise ValueError(f"need eps >= 0 and steps >= 1, got {eps}, {steps}")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    dims = tuple(range(1, x.ndim))
    shape = (-1,) + (1,) * (x.ndim - 1)

    def project(d: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            d = d.clamp(-eps, eps)
        else:
            n = d.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            d = d * (eps / n).clamp(max=1)
        return (x + d).clamp(0, 1) - x

    d = torch.zeros_like(x)
    if random_start and eps > 0:
        g = torch.Generator(device=x.device).manual_seed(int(seed))
        if norm == "linf":
            d = (2 * torch.rand(x.shape, generator=g, device=x.device) - 1) * eps
        else:
            v = torch.randn(x.shape, generator=g, device=x.device)
            v = v / v.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            r = torch.rand(len(x), generator=g, device=x.device) ** (1 / x[0].numel())
            d = v * (eps * r).view(shape)
        d = project(d)
    with torch.enable_grad():
        for _ in range(steps):
            d.requires_grad_(True)
            loss = loss_fn(model(x + d), y)
            (grad,) = torch.autograd.grad(loss, d)
            with torch.no_grad():
                if norm == "linf":
                    d = d + step_size * grad.sign()
                else:
                    gn = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
                    d = d + step_size * grad / gn
                d = project(d)
    return (x + d).detach()


@torch.no_grad()
def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``logits (N, K)`` against ``y (N,)``."""
    if logits.ndim != 2 or y.shape != (len(logits),):
        raise ValueError(
            f"expected logits (N, K) and y (N,), got {tuple(logits.shape)}, {tuple(y.shape)}"
        )
    return float((logits.argmax(1) == y).double().mean())
