"""Where and how a notebook runs: device, seeding, and the fast/full profiles.

A notebook's first code cell calls :func:`setup`, which resolves the profile, seeds every
random number generator and prints what the run will use::

    rt = cvtutor.setup(profile=PROFILE, seed=SEED)
    cfg = Config.for_profile(rt.profile)

Environment overrides (read each time, so a teacher can set them before starting Jupyter):

``CVTUTOR_PROFILE``  ``fast`` | ``full`` | ``auto`` | ``smoke``: overrides the notebook's ``PROFILE``.
                     ``smoke`` is the ``full`` configuration's every code path at toy size; it exists
                     to test ``full`` in CI and is never ``auto``'s choice.
``CVTUTOR_DEVICE``   ``cpu`` | ``cuda`` | ``cuda:1`` | ``mps``: overrides the automatic choice.
``CVTUTOR_PROGRESS`` ``auto`` | ``text`` | ``off``: progress bars as widgets, as text, or none.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import random
import sys
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("fast", "full", "auto", "smoke")
PROGRESS_MODES = ("auto", "text", "off")


def resolve_profile(profile: str | None = "auto") -> str:
    """Turn ``fast | full | auto | smoke`` (or ``CVTUTOR_PROFILE``, which wins) into ``fast``,
    ``full`` or ``smoke``.

    ``auto`` means ``full`` when CUDA is available and ``fast`` otherwise; it never picks ``smoke``.
    """
    env = os.environ.get("CVTUTOR_PROFILE", "").strip()
    chosen = env or (profile if profile is not None else "auto")
    chosen = str(chosen).strip().lower()
    if chosen not in PROFILES:
        source = "CVTUTOR_PROFILE" if env else "profile"
        raise ValueError(f"{source}={chosen!r} is not a profile; expected one of {PROFILES}")
    if chosen == "auto":
        return "full" if torch.cuda.is_available() else "fast"
    return chosen


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``CVTUTOR_DEVICE`` or ``prefer`` if given, else cuda > mps > cpu."""
    name = os.environ.get("CVTUTOR_DEVICE", "").strip() or prefer
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"device {name!r} is not a torch device (e.g. 'cpu', 'cuda', 'mps')") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} was asked for but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_deterministic(enabled: bool = True) -> None:
    """Same seed, same device, same numbers: deterministic kernels (warning where torch has none),
    no cuDNN autotuning, and the cuBLAS workspace setting that deterministic CUDA matmuls need."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def progress_mode() -> str:
    """``CVTUTOR_PROGRESS``: ``auto`` (tqdm.auto), ``text`` (plain tqdm) or ``off``."""
    mode = os.environ.get("CVTUTOR_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        raise ValueError(f"CVTUTOR_PROGRESS={mode!r}; expected one of {PROGRESS_MODES}")
    return mode


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA, a no-op context elsewhere (CPU and MPS train in float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


@dataclass(frozen=True)
class Runtime:
    """What :func:`setup` resolved: the profile, the device and the seed of this run."""

    profile: str
    device: torch.device
    seed: int

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.device.type == "cuda" else None

    def describe(self) -> str:
        import cvtutor

        gpu = ""
        if self.device.type == "cuda":
            gpu = f" ({torch.cuda.get_device_name(self.device)})"
        return (
            f"cvtutor {cvtutor.__version__} | profile={self.profile} | device={self.device}{gpu} | seed={self.seed}\n"
            f"torch {torch.__version__} | numpy {np.__version__} | python {platform.python_version()}"
        )


def setup(profile: str | None = "auto", seed: int = 0, device: str | None = None, verbose: bool = True,
          deterministic: bool = True) -> Runtime:
    """The first call of every notebook: resolve the profile and device, seed, and say so.

    With ``deterministic`` (the default) the run uses deterministic kernels, see
    :func:`set_deterministic`.
    """
    rt = Runtime(profile=resolve_profile(profile), device=get_device(device), seed=int(seed))
    set_deterministic(deterministic)
    seed_everything(seed)
    from cvtutor import viz

    viz.use_book_renderer()
    if verbose:
        print(rt.describe(), file=sys.stdout)
    return rt


C = TypeVar("C")


class ProfileConfig:
    """Mixin for a paper's ``Config`` dataclass: ``Config.for_profile(profile)`` and ``replace``.

    Subclasses define the classmethods ``fast()``, ``full()`` and ``smoke()`` (``full``'s every code
    path at toy size).
    """

    @classmethod
    def for_profile(cls: type[C], profile: str | None = "auto") -> C:
        resolved = resolve_profile(profile)
        make = getattr(cls, resolved, None)
        if make is None:
            raise ValueError(f"{cls.__qualname__} has no {resolved}() profile; define the classmethods "
                             "fast(), full() and smoke()")
        return make()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # IPython looks for _repr_pretty_ in each class's own __dict__ before that class's __repr__
        # (which @dataclass writes), so each Config class gets it in its own __dict__
        cls._repr_pretty_ = ProfileConfig._repr_pretty_

    def _display_rows(self) -> list[tuple[str, str]]:
        return [(f.name, repr(getattr(self, f.name))) for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def __str__(self) -> str:
        """One field a line (``print(cfg)``); ``repr(cfg)`` stays the dataclass's one-liner."""
        rows = self._display_rows()
        width = max((len(k) for k, _ in rows), default=0)
        return "\n".join([f"{type(self).__name__}:"] + [f"  {k:<{width}} = {v}" for k, v in rows])

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's text/plain: the same one-field-a-line form
        p.text(str(self) if not cycle else f"{type(self).__name__}(...)")

    def _repr_html_(self) -> str:
        """A small two-column table (field, value) for a notebook cell whose last line is ``cfg``."""
        import html

        body = "".join(f"<tr><td><code>{html.escape(k)}</code></td>"
                       f"<td><code>{html.escape('–' if v == 'None' else v)}</code></td></tr>"  # None: not set
                       for k, v in self._display_rows())
        return (f"<table><caption>{html.escape(type(self).__name__)}</caption>"
                f"<thead><tr><th>field</th><th>value</th></tr></thead><tbody>{body}</tbody></table>")

    def replace(self: C, **changes) -> C:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
