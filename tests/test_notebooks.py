"""Notebook hygiene: outputs stripped, a title, a parameters cell, the skeleton's sections in order."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
# The level-2 headings every notebook has, in this order (see book/conventions.md).
SKELETON = ["parameters", "problem", "derivation", "data", "method", "training", "reproduction", "exercises",
            "summary"]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def nb(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_valid_and_stripped(nb):
    path, book = nb
    nbformat.validate(book)
    for i, cell in enumerate(book.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has outputs (strip them before committing)"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"
    assert book.metadata.get("kernelspec", {}).get("name") == "python3"


def test_title_and_colab_badge(nb):
    path, book = nb
    first = book.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: no title cell"
    rel = path.relative_to(ROOT).as_posix()
    assert f"colab.research.google.com/github/cvtutor/cvtutor/blob/main/{rel}" in first.source


def test_nothing_loaded_from_the_network(nb):
    """The built book must render offline: no remote images in markdown or HTML."""
    path, book = nb
    for i, cell in enumerate(book.cells):
        if cell.cell_type != "markdown":
            continue
        remote = re.findall(r"!\[[^\]]*\]\((https?://[^)]+)\)|<img[^>]+src=[\"'](https?://[^\"']+)", cell.source)
        assert not remote, f"{path.name}: cell {i} loads {remote} from the network; use a text link or a local file"


def test_display_math_renders(nb):
    """Sphinx wraps display math that contains a line break (\\\\, even inside a matrix) in a
    ``split`` environment, where MathJax refuses ``\\tag``: number such equations another way."""
    path, book = nb
    for i, cell in enumerate(book.cells):
        if cell.cell_type != "markdown":
            continue
        for block in re.findall(r"\$\$(.+?)\$\$", cell.source, re.S):
            assert not ("\\\\" in block and "\\tag" in block), f"{path.name}: cell {i} has \\tag in multi-line math"


def test_parameters_cell(nb):
    path, book = nb
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert 'PROFILE = "auto"' in tagged[0].source and "SEED = 0" in tagged[0].source


def test_skeleton_sections_in_order(nb):
    path, book = nb
    headings = [m.group(1).lower() for c in book.cells if c.cell_type == "markdown"
                for m in re.finditer(r"^## (.+)$", c.source, re.M)]
    pos = -1
    for section in SKELETON:
        found = [i for i, h in enumerate(headings) if section in h and i > pos]
        assert found, f"{path.name}: no '## ...{section}...' heading after position {pos} in {headings}"
        pos = found[0]


def test_setup_is_called(nb):
    path, book = nb
    code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert "cvtutor.setup(PROFILE, SEED)" in code
