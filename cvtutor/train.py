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
from contextlib import contextmanager, nullcontext
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
class _Progress:
    """Live progress of one :func:`fit` call that leaves at most one line in saved output.

    ``widget`` mode (``tqdm.auto``): a live bar with the running losses. ``text`` mode (CI, the built
    book): nothing per step, then one summary line ``desc: N/N steps in T s, loss ...`` at the end.
    """

    def __init__(self, total: int, initial: int, desc: str | None, enabled: bool):
        self.mode = progress_mode() if enabled else "off"
        self.total, self.initial, self.desc = total, initial, desc or "fit"
        self.done = initial
        self.last: dict[str, float] = {}
        self.t0 = time.perf_counter()
        self.bar = None
        if self.mode not in ("off", "text"):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int, logged: Mapping[str, float] | None) -> None:
        self.done += n
        if logged:
            self.last = dict(logged)
        if self.bar is not None:
            self.bar.update(n)
            if logged:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in list(logged.items())[:4]}, refresh=False)

    def summary(self) -> str:
        ran = self.done - self.initial
        line = f"{self.desc}: {self.done}/{self.total} steps"
        if self.initial:
            line += f" (resumed at {self.initial})"
        line += f" in {time.perf_counter() - self.t0:.1f} s"
        if ran and self.last:
            line += ", " + ", ".join(f"{k} {v:.4g}" for k, v in list(self.last.items())[:4])
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "text":
            import sys

            print(self.summary(), file=sys.stderr, flush=True)


@contextmanager
def outside_autocast(device: torch.device | str | None = None):
    """Leave :func:`fit`'s bf16 autocast for a backward pass (and optimizer step).

    ``fit`` runs ``loss_fn`` under autocast on CUDA; a ``manual=True`` loss function does its
    forward passes there, and its backward passes must run outside it (the autocast docs advise
    against backward under autocast; a gradient penalty's double backward would run in bf16).
    :func:`backward_and_step` does this itself; a loss function that calls ``loss.backward()``
    directly wraps it: ``with outside_autocast(loss.device): loss.backward()``.
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with torch.autocast(device_type=dev.type, enabled=False):
        yield


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor] | None = None,
                      grad_clip: float | None = None) -> None:
    """``zero_grad``, ``backward``, optional clipping of ``parameters``' gradient norm, ``step``,
    all outside autocast (:func:`outside_autocast`) even when called from inside ``fit``'s loss.

    For loss functions that step their own optimizers (``fit(..., manual=True)``, e.g. GANs).
    """
    with outside_autocast(loss.device):
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        if grad_clip is not None:
            params = list(parameters) if parameters is not None else [
                p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()


# --------------------------------------------------------------------------------------------
# measuring (benchmarks/full_profile.py)
# --------------------------------------------------------------------------------------------
_MEASURE: dict[str, Any] | None = None


@contextmanager
def measure_phases(steps: int = 5, warmup: int = 2, probe: Callable[[], dict[str, float]] | None = None):
    """Under this context every :func:`fit` call runs only ``warmup + steps`` of its steps (fewer
    if it plans fewer), times them (device synchronised) and returns early with their history.

    Yields a list that receives one record per fit call: ``desc``, ``planned_steps`` (the steps the
    call would have run), ``measured_steps``, ``timed_steps`` (those after warm-up; all of them
    when the call plans no more than ``warmup``), ``s_per_step`` (mean over the timed steps),
    ``peak_mem_mb`` (CUDA; else None), ``gpu_wait_share`` (CUDA: 1 - kernel time / wall time of the
    timed steps, from the profiler; None elsewhere), ``device`` and ``fit_wall_s``. With ``probe``
    (a function returning running totals, e.g. a cost model's counters), the record also holds
    ``probe``: the change of each total over the timed steps.
    """
    global _MEASURE
    if steps < 1 or warmup < 0:
        raise ValueError(f"measure_phases needs steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    if _MEASURE is not None:
        raise RuntimeError("measure_phases is already active")
    records: list[dict[str, Any]] = []
    _MEASURE = {"steps": steps, "warmup": warmup, "records": records, "probe": probe}
    try:
        yield records
    finally:
        _MEASURE = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _kernel_seconds(prof: Any) -> float:
    total = 0.0
    for evt in prof.key_averages():
        t = getattr(evt, "self_device_time_total", None)
        if t is None:
            t = getattr(evt, "self_cuda_time_total", 0.0)
        total += float(t)
    return total / 1e6


def fit(models: nn.Module | Mapping[str, nn.Module], optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        batches: Callable[[int], Any] | Iterable[Any], loss_fn: LossFn, *, steps: int,
        device: torch.device | str | None = None, schedulers: Any = None, grad_clip: float | None = None,
        checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None,
        manual: bool = False, log_every: int = 1, sync_every: int | None = None, progress: bool = True, desc: str | None = None,
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
    log_every:
        Keep a history row every ``log_every`` steps (``(step + 1) % log_every == 0``) and at the
        last step; every step's terms are still checked for NaN/inf.
    sync_every:
        Read the logged terms from the device every ``sync_every`` steps, in one transfer (no
        host sync per step); the history is the same whatever its value. Default: 1 on CPU
        (reading is free there, and a NaN stops the run at its step), 32 on other devices. A
        non-finite term is reported with its step when it is read. A checkpoint step or a
        ``callback`` reads the terms at that step.
    callback:
        Called as ``callback(step, logged_terms)`` after every step (e.g. to evaluate); it
        receives floats, so a callback costs one host sync per step.

    Progress: a live bar in widget mode; with ``CVTUTOR_PROGRESS=text`` nothing per step and one
    summary line at the end. Under :func:`measure_phases` only a few steps run (see there).
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
    end = steps
    measure = _MEASURE
    if measure is not None:
        end = min(steps, start + measure["warmup"] + measure["steps"])
        timed_from = start + measure["warmup"] if end - start > measure["warmup"] else start
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t_timed = None
        prof = None
        probe_at = None
    if sync_every is None:
        sync_every = 1 if device.type == "cpu" else 32
    if log_every < 1 or sync_every < 1:
        raise ValueError(f"log_every and sync_every must be >= 1, got {log_every}, {sync_every}")
    bar = _Progress(steps, start, desc, progress)
    pending: list[tuple[int, dict[str, torch.Tensor | float]]] = []  # terms not yet read from the device

    def flush() -> dict[str, float] | None:
        """Read the pending terms from the device in one transfer; check them; log them."""
        if not pending:
            return None
        vals = [float(v) if not torch.is_tensor(v) else v.detach().float().reshape(()) for _, t in pending
                for v in t.values()]
        if all(torch.is_tensor(v) for v in vals) and len({v.device for v in vals}) == 1:
            flat = torch.stack(vals).tolist()  # one host sync for all pending steps
        else:
            flat = [v.item() if torch.is_tensor(v) else v for v in vals]
        i = 0
        last = None
        for st, terms_ in pending:
            logged_ = {}
            for k in terms_:
                logged_[k] = float(flat[i])
                i += 1
            if not all(np.isfinite(v) for v in logged_.values()):
                raise FloatingPointError(f"non-finite loss at step {st}: {logged_}")
            if (st + 1) % log_every == 0 or st + 1 == steps:
                history.append({"step": st + 1, **logged_})
            last = logged_
        n = len(pending)
        pending.clear()
        bar.update(n, last)
        return last

    t0 = time.perf_counter()
    try:
        for step in range(start, end):
            if measure is not None and step == timed_from:
                _sync(device)
                if device.type == "cuda":
                    from torch.profiler import ProfilerActivity, profile

                    prof = profile(activities=[ProfilerActivity.CUDA])
                    prof.__enter__()
                t_timed = time.perf_counter()
                if measure.get("probe") is not None:
                    probe_at = measure["probe"]()
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
            pending.append((step, {k: (v.detach() if torch.is_tensor(v) else v) for k, v in terms.items()}))
            checkpoint_now = checkpoint_dir is not None and (
                (checkpoint_every is not None and (step + 1) % checkpoint_every == 0) or step + 1 == end)
            if callback is not None or checkpoint_now or (step + 1 - start) % sync_every == 0 or step + 1 == end:
                logged = flush()
                if callback is not None:
                    callback(step + 1, logged)
            if checkpoint_now:
                save_checkpoint(checkpoint_dir, step + 1, models_d, optims_d, scheds_d, history)
        if measure is not None:
            _sync(device)
            t_end = time.perf_counter()
            if prof is not None:
                prof.__exit__(None, None, None)
            timed = end - timed_from
            wall = t_end - (t_timed if t_timed is not None else t0)
            probed = None
            if probe_at is not None:
                probe_end = measure["probe"]()
                probed = {k: probe_end[k] - probe_at.get(k, 0.0) for k in probe_end}
            measure["records"].append({
                "desc": desc, "device": str(device), "planned_steps": steps - start, "measured_steps": end - start,
                "timed_steps": timed, "probe": probed,
                "s_per_step": wall / timed if timed > 0 else None,
                "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
                "gpu_wait_share": (max(0.0, 1.0 - _kernel_seconds(prof) / wall) if prof is not None and wall > 0 else None),
                "fit_wall_s": t_end - t0,
            })
    finally:
        bar.close()
    df = pd.DataFrame(history)
    df.attrs["wall_time_s"] = time.perf_counter() - t0
    df.attrs["resumed_from"] = start
    return df
