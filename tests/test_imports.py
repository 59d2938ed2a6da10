"""Every module that ``cvtutor`` or a notebook imports is provided by what ``pyproject.toml``
declares in the core dependencies plus the ``book`` extra (issue 13: the TIDE notebook imported
``pycocotools``, which only ``dev`` installed, so the README's build failed on a fresh machine).

A static scan (``ast``) of ``cvtutor/**/*.py`` and of every notebook's code cells; each top-level
module is mapped to its distribution with ``importlib.metadata.packages_distributions()``. The
standard library and ``cvtutor`` itself are excluded, and so is an import guarded by
``try: ... except ImportError`` (an optional probe such as ``import google.colab``).
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import nbformat
import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "cvtutor").rglob("*.py"))
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = ("book",)) -> set[str]:
    """The distribution names of the core dependencies plus ``extras`` (normalised)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return {_norm(re.match(r"[A-Za-z0-9_.\-]+", r.strip()).group(0)) for r in reqs}


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True when ``node`` sits in the body of a ``try`` that catches ImportError."""
    child, p = node, parents.get(node)
    while p is not None:
        if isinstance(p, ast.Try) and child in p.body:
            for h in p.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if h.type is None or any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                                         for n in names):
                    return True
        child, p = p, parents.get(p)
    return False


def imported_modules(source: str) -> set[str]:
    """Top-level module names imported (absolutely, unguarded) by ``source``; IPython magics and
    shell lines are dropped before parsing."""
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    tree = ast.parse(source)
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if not _guarded(node, parents):
            found |= {n.split(".")[0] for n in names}
    return found


def undeclared(sources: dict[str, str], allowed: set[str]) -> dict[str, str]:
    """``{module: where}`` for each third-party module whose distribution is not in ``allowed``."""
    dists = importlib.metadata.packages_distributions()
    bad = {}
    for where, src in sources.items():
        for mod in sorted(imported_modules(src)):
            if mod in sys.stdlib_module_names or mod in ("cvtutor", "__future__"):
                continue
            provided = {_norm(d) for d in dists.get(mod, [])}
            if not provided & allowed:
                bad.setdefault(f"{mod} (from {sorted(provided) or 'no installed distribution'})", where)
    return bad


def _all_sources() -> dict[str, str]:
    out = {p.relative_to(ROOT).as_posix(): p.read_text() for p in SOURCES}
    for nb in NOTEBOOKS:
        cells = nbformat.read(nb, as_version=4).cells
        for i, c in enumerate(cells):
            if c.cell_type == "code":
                out[f"{nb.relative_to(ROOT).as_posix()} cell {i}"] = c.source
    return out


def test_every_import_is_declared_in_core_or_book():
    bad = undeclared(_all_sources(), declared())
    assert not bad, ("imported but not provided by pyproject's core dependencies or the 'book' extra "
                     f"(add them there, not to 'dev'): {bad}")


def test_the_scan_sees_sources():
    assert SOURCES and NOTEBOOKS
    assert "torch" in imported_modules((ROOT / "cvtutor" / "train.py").read_text())


def test_fixture_with_an_undeclared_import_fails(tmp_path):
    """A test-only fixture: a module importing pytest (a ``dev`` requirement) is caught."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["numpy>=1"]\n'
                         '[project.optional-dependencies]\nbook = []\ndev = ["pytest"]\n')
    src = {"fixture.py": "import numpy as np\nimport os\nfrom pytest import approx\n"
                         "try:\n    import google.colab\nexcept ImportError:\n    pass\n"}
    bad = undeclared(src, declared(pyproject))
    assert list(bad) and all(k.startswith("pytest") for k in bad), bad
    assert not undeclared(src, declared(pyproject, extras=("book", "dev")))


@pytest.mark.parametrize("src, expected", [
    ("import a.b, c\nfrom d.e import f\nfrom . import g\n", {"a", "c", "d"}),
    ("try:\n    import h\nexcept (ImportError, OSError):\n    pass\n", set()),
    ("try:\n    import h\nexcept ValueError:\n    pass\n", {"h"}),
    ("%matplotlib inline\n!pip install x\nimport k\n", {"k"}),
])
def test_imported_modules_hand_cases(src, expected):
    assert imported_modules(src) == expected
