"""One training loop for every paper: :func:`fit`.

``fit`` takes the model(s), the optimizer(s), a batch source and a loss function that returns a
dict of named terms. It shows a progress bar with the running losses, runs the loss under bf16
autocast on CUDA, clips gradients if asked, returns the loss history as a DataFrame, and, given a
``checkpoint_dir``, writes a checkpoint every ``checkpoint_every`` steps *atomically* (temporary
file, then rename) and resumes from the latest one it finds there.

Resuming is exact on CPU: a checkpoint holds the models, optimizers, schedulers, the step, the
history so far and the states of every random number generator, and the batch source is asked
for a batch *by step number* (:func:`minibatches` builds such a source from tensors), so a run
that is interrupted and resumed ends with the same weights as one that never stopped.
"""
from __future__ import annotations

import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cvtutor.runtime import autocast, progress_mode

CHECKPOINT_RE = re.compile(r"^ckpt-(\d{8})\.pt$")

LossFn = Callable[[Mapping[str, nn.Module], Any, int], Mapping[str, torch.Tensor | float]]


# --------------------------------------------------------------------------------------------
# batch sources
# --------------------------------------------------------------------------------------------
def minibatches(*tensors: torch.Tensor, batch_size: int, seed: int = 0, device: torch.device | str | None = None,
                drop_last: bool = True) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """A batch source ``step -> batch`` over shuffled epochs of ``tensors``.

    The permutation of epoch ``e`` depends only on ``(seed, e)``, so the batch of a step is the
    same whether or not the run was interrupted before it.
    """
    if not tensors:
        raise ValueError("minibatches needs at least one tensor")
    n = len(tensors[0])
    for t in tensors:
        if len(t) != n:
            raise ValueError(f"all tensors need the same first dimension; got {[len(t) for t in tensors]}")
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size must be in [1, {n}] for {n} samples, got {batch_size}")
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    if device is not None:
        tensors = tuple(t.to(device) for t in tensors)
    cache: dict[int, torch.Tensor] = {}

    def batch(step: int) -> tuple[torch.Tensor, ...]:
        epoch, i = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(n, generator=g).to(tensors[0].device)
        idx = cache[epoch][i * batch_size:(i + 1) * batch_size]
        return tuple(t[idx] for t in tensors)

    batch.steps_per_epoch = per_epoch  # type: ignore[attr-defined]
    return batch


def _as_dict(obj: Any, kind: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    return {kind: obj}


# --------------------------------------------------------------------------------------------
# random number generator state (kept inside checkpoints; loadable with weights_only=True)
# --------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators, as plain data."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": np_state[0], "key": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["key"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``.

    A crash half way leaves the temporary file behind, never a truncated ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def checkpoints(directory: str | os.PathLike) -> list[Path]:
    """The complete checkpoints in ``directory``, oldest first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))  # type: ignore[union-attr]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs while loading)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def latest_checkpoint(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The newest checkpoint of ``directory`` that loads; unreadable ones are skipped with a warning."""
    for path in reversed(checkpoints(directory)):
        try:
            return load_checkpoint(path)
        except Exception as err:  # a corrupt file must not hide the previous good one
            import warnings

            warnings.warn(f"skipping unreadable checkpoint {path}: {err}", stacklevel=2)
    return None


def save_checkpoint(directory: str | os.PathLike, step: int, models: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer], schedulers: Mapping[str, Any] | None = None,
                    history: list[dict[str, float]] | None = None, keep: int = 2) -> Path:
    """Write ``ckpt-<step>.pt`` atomically and keep only the newest ``keep`` checkpoints."""
    state = {
        "step": int(step),
        "models": {k: m.state_dict() for k, m in models.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in (schedulers or {}).items()},
        "history": list(history or []),
        "rng": rng_state(),
    }
    path = atomic_save(state, Path(directory) / f"ckpt-{step:08d}.pt")
    for old in checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
def _progress(total: int, initial: int, desc: str | None, enabled: bool):
    mode = progress_mode()
    if not enabled or mode == "off":
        return None
    if mode == "text":
        # plain text (e.g. for the built book): a line at the start, one every 30 s, one at the end
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, ncols=100, mininterval=30.0)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=0.5)


def _to_float(v: Any) -> float:
    return float(v.detach().float().item()) if torch.is_tensor(v) else float(v)


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor] | None = None,
                      grad_clip: float | None = None) -> None:
    """``zero_grad``, ``backward``, optional clipping of ``parameters``' gradient norm, ``step``.

    For loss functions that step their own optimizers (``fit(..., manual=True)``, e.g. GANs).
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        params = list(parameters) if parameters is not None else [
            p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()


def fit(models: nn.Module | Mapping[str, nn.Module], optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        batches: Callable[[int], Any] | Iterable[Any], loss_fn: LossFn, *, steps: int,
        device: torch.device | str | None = None, schedulers: Any = None, grad_clip: float | None = None,
        checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None,
        manual: bool = False, log_every: int = 1, progress: bool = True, desc: str | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None) -> pd.DataFrame:
    """Train for ``steps`` optimizer steps and return the loss history (one row per logged step).

    Parameters
    ----------
    models, optimizers:
        A module/optimizer, or dicts of them by name. ``loss_fn`` receives the models as a dict
        (a single module is passed as ``{"model": module}``).
    batches:
        A function ``step -> batch`` (exact resume; see :func:`minibatches`) or any iterable,
        cycled as needed (resume then restarts the iterable).
    loss_fn:
        ``loss_fn(models, batch, step) -> dict`` of named loss terms. The term ``"loss"`` is
        back-propagated if present, else the sum of all terms. With ``manual=True`` the function
        steps the optimizers itself (see :func:`backward_and_step`) and the dict is only logged.
    device:
        Where autocast runs (bf16 on CUDA); defaults to the device of the first model parameter.
    schedulers:
        A learning-rate scheduler or dict of them, stepped once per step.
    grad_clip:
        Clip the global gradient norm of each optimizer's parameters to this value.
    checkpoint_dir, checkpoint_every:
        Write a checkpoint every ``checkpoint_every`` steps (and at the end) into
        ``checkpoint_dir``; if it already holds checkpoints, resume from the latest.
    callback:
        Called as ``callback(step, logged_terms)`` after every step (e.g. to evaluate).
    """
    models_d = _as_dict(models, "model")
    optims_d = _as_dict(optimizers, "optimizer")
    scheds_d = _as_dict(schedulers, "scheduler")
    if not models_d:
        raise ValueError("fit needs at least one model")
    if not optims_d:
        raise ValueError("fit needs at least one optimizer")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs a checkpoint_dir")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if device is None:
        first = next(iter(models_d.values()))
        p = next(first.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)

    history: list[dict[str, float]] = []
    start = 0
    if checkpoint_dir is not None:
        state = latest_checkpoint(checkpoint_dir)
        if state is not None:
            missing = set(models_d) ^ set(state["models"])
            if missing:
                raise ValueError(f"checkpoint in {checkpoint_dir} holds models {sorted(state['models'])}, "
                                 f"this run has {sorted(models_d)}")
            for k, m in models_d.items():
                m.load_state_dict(state["models"][k])
            for k, o in optims_d.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in scheds_d.items():
                if k in state["schedulers"]:
                    s.load_state_dict(state["schedulers"][k])
            history = list(state["history"])
            set_rng_state(state["rng"])
            start = int(state["step"])

    if callable(batches):
        get_batch = batches
    else:
        iterator: Iterator[Any] = iter(())
        source = batches

        def get_batch(step: int) -> Any:
            nonlocal iterator
            try:
                return next(iterator)
            except StopIteration:
                iterator = iter(source)
                try:
                    return next(iterator)
                except StopIteration:
                    raise ValueError("the batch iterable is empty") from None

    for m in models_d.values():
        m.train()
    bar = _progress(steps, start, desc, progress)
    t0 = time.perf_counter()
    try:
        for step in range(start, steps):
            batch = get_batch(step)
            with autocast(device):
                terms = loss_fn(models_d, batch, step)
            if not isinstance(terms, Mapping) or not terms:
                raise TypeError("loss_fn must return a non-empty dict of named loss terms")
            if not manual:
                total = terms["loss"] if "loss" in terms else sum(terms.values())
                if not torch.is_tensor(total) or not total.requires_grad:
                    raise TypeError("the loss to back-propagate must be a tensor that requires grad "
                                    "(or pass manual=True if loss_fn steps the optimizers itself)")
                for o in optims_d.values():
                    o.zero_grad(set_to_none=True)
                total.float().backward()
                if grad_clip is not None:
                    for o in optims_d.values():
                        torch.nn.utils.clip_grad_norm_(
                            [p for g in o.param_groups for p in g["params"] if p.grad is not None], grad_clip)
                for o in optims_d.values():
                    o.step()
                if "loss" not in terms:
                    terms = {**terms, "loss": total}
            for s in scheds_d.values():
                s.step()
            logged = {k: _to_float(v) for k, v in terms.items()}
            if not all(np.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"non-finite loss at step {step}: {logged}")
            if (step + 1) % log_every == 0 or step + 1 == steps:
                history.append({"step": step + 1, **logged})
            if callback is not None:
                callback(step + 1, logged)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(logged.items())[:4]}, refresh=False)
            if checkpoint_dir is not None and (
                (checkpoint_every is not None and (step + 1) % checkpoint_every == 0) or step + 1 == steps
            ):
                save_checkpoint(checkpoint_dir, step + 1, models_d, optims_d, scheds_d, history)
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(history)
    df.attrs["wall_time_s"] = time.perf_counter() - t0
    df.attrs["resumed_from"] = start
    return df
