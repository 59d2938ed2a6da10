"""A restricted unpickler for data sets shipped as pickles (RHD's annotations; later CIFAR batches,
RefCOCO refs, 3DPW): it rebuilds builtins containers and numpy arrays and refuses every other
global, so a hostile file cannot run code on the reader's machine (DESIGN.md, "Reliability").
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import IO, Any

# The only globals a data pickle may name: numpy's array / scalar / dtype reconstruction (under
# numpy 1.x and 2.x module names) and the byte-string decoder protocol 2 uses for them.
ALLOWED: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    # plain containers some writers name explicitly
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"),
})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED` (it could run code)."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals in :data:`ALLOWED`."""

    def __init__(self, file: IO[bytes], *, source: str = "<pickle>", **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"{self.source}: refusing to load the global {module}.{name} (a data pickle may hold only "
                "builtins containers and numpy arrays; this file could run code, so it was not loaded)")
        return super().find_class(module, name)


def loads(data: bytes, source: str = "<bytes>", encoding: str = "ASCII") -> Any:
    return RestrictedUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()


def load(path: str | Path) -> Any:
    """Read a data pickle with the restricted unpickler; Python 2 pickles (str as bytes) are retried
    with ``encoding="latin1"``, as numpy's own loaders do."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return loads(data, source=str(path))
    except UnicodeDecodeError:  # written by Python 2
        return loads(data, source=str(path), encoding="latin1")
