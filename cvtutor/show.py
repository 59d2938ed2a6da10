"""Show the source of a function or class in a notebook: the code that runs, not a copy.

In Jupyter (and in the built book) the source is displayed as a highlighted Python block with
the file and line numbers it comes from; outside a notebook it is printed as plain text.
"""
from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any


class Source:
    """Source code with the place it comes from; renders as Markdown in notebooks."""

    def __init__(self, code: str, origin: str) -> None:
        self.code = code
        self.origin = origin

    def __str__(self) -> str:
        return f"# {self.origin}\n{self.code}"

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        fence = "````" if "```" in self.code else "```"
        return f"`{self.origin}`\n\n{fence}python\n{self.code.rstrip()}\n{fence}\n"


def source(obj: Any) -> Source:
    """The :class:`Source` of a function, class, method or module."""
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        lines, start = inspect.getsourcelines(target)
        path = inspect.getsourcefile(target)
    except (TypeError, OSError) as err:
        raise TypeError(f"cannot show the source of {obj!r}: {err}") from None
    code = textwrap.dedent("".join(lines))
    where = _relative(path)
    end = start + len(lines) - 1
    origin = f"{where}, lines {max(start, 1)}–{end}"
    return Source(code, origin)


def _relative(path: str | None) -> str:
    if path is None:
        return "<unknown>"
    p = Path(path).resolve()
    package_root = Path(__file__).resolve().parent.parent
    try:
        return p.relative_to(package_root).as_posix()
    except ValueError:
        return p.name


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def show(*objs: Any) -> None:
    """Display the source of each object (highlighted in a notebook, plain text elsewhere)."""
    if not objs:
        raise TypeError("show() needs at least one function, class or module")
    for obj in objs:
        src = source(obj)
        if _in_notebook():
            from IPython.display import display

            display(src)
        else:
            print(src)
