"""Notebook hygiene: outputs stripped, a title, a parameters cell, the skeleton's sections in order."""
import csv
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
# The level-2 headings every notebook has, in this order (see book/conventions.md).
# The repository URL lives in one place: _config.yml's repository.url (and .branch).
_CFG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = _CFG["repository"]["url"].rstrip("/")
BRANCH = _CFG["repository"].get("branch", "main")
SKELETON = ["parameters", "problem", "derivation", "data", "method", "training", "reproduction", "exercises",
            "summary"]
# A shared world's chapter (DESIGN.md, "The book's sections"): what the synthetic data stands for and
# what it cannot stand for, its generators and tools, its ground-truth checks as findings.
WORLD_SKELETON = ["parameters", "stands for", "findings", "exercises", "summary"]


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
    assert colab_link(rel) in first.source, f"{path.name}: the Colab link must be {colab_link(rel)}"


def colab_link(rel: str, url: str = REPO_URL, branch: str = BRANCH) -> str:
    """The notebook's Colab link, built from _config.yml's repository.url."""
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    assert m, f"_config.yml repository.url must be a github.com URL, got {url!r}"
    return f"https://colab.research.google.com/github/{m[1]}/{m[2]}/blob/{branch}/{rel}"


def test_colab_link_is_built_from_the_config():
    assert colab_link("notebooks/x.ipynb", "https://github.com/a/b", "dev") == \
        "https://colab.research.google.com/github/a/b/blob/dev/notebooks/x.ipynb"
    with pytest.raises(AssertionError, match="github.com URL"):
        colab_link("x.ipynb", "https://gitlab.com/a/b")


def colab_install_problem(source: str, url: str = REPO_URL) -> str | None:
    """What the setup cell lacks of the Colab install snippet (None when it has it all)."""
    need = {"an 'import google.colab' probe": "import google.colab",
            f"a pip install from {url}": f"cvtutor @ git+{url}",
            "the install only when cvtutor is missing": "except ImportError"}
    missing = [what for what, text in need.items() if text not in source]
    if not missing and source.index("import google.colab") > source.index(f"cvtutor @ git+{url}"):
        missing.append("the google.colab probe before the install")
    return "; ".join(missing) or None


def test_colab_install_snippet(nb):
    """The first code cell after the parameters installs cvtutor on Colab only (copy it from
    00_getting_started)."""
    path, book = nb
    rel = path.relative_to(ROOT).as_posix()
    cells = book.cells
    p = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    first = next(c for c in cells[p + 1:] if c.cell_type == "code")
    problem = colab_install_problem(first.source)
    assert problem is None, f"{rel}: the setup cell lacks {problem}"


def test_colab_install_check_catches_a_bad_cell():
    assert colab_install_problem("import cvtutor") is not None
    good = nbformat.read(ROOT / "notebooks" / "00_getting_started.ipynb", as_version=4)
    p = next(i for i, c in enumerate(good.cells) if "parameters" in c.metadata.get("tags", []))
    src = good.cells[p + 1].source
    assert colab_install_problem(src) is None
    assert "a pip install from https://github.com/elsewhere/x" in colab_install_problem(src, "https://github.com/elsewhere/x")


def test_readme_uses_the_config_url():
    """The README's install line and links name the repository of _config.yml, nothing else."""
    text = (ROOT / "README.md").read_text()
    urls = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text))
    assert f"git+{REPO_URL}" in text, "the README's Colab install line must use _config.yml's repository.url"
    assert urls <= {REPO_URL, REPO_URL + ".git"}, f"README names other repositories: {urls - {REPO_URL}}"


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


def _is_world(path: Path) -> bool:
    from cvtutor import papers

    rel = path.relative_to(ROOT).as_posix()
    return any(t.notebook == rel and t.part == "eccv2020" and not t.paper for t in papers.TUTORIALS)


def _follows(headings: list[str], skeleton: list[str]) -> str | None:
    """None when ``headings`` hold the skeleton's sections in order, else what is missing."""
    pos = -1
    for section in skeleton:
        found = [i for i, h in enumerate(headings) if section in h and i > pos]
        if not found:
            return f"no '## ...{section}...' heading after position {pos} in {headings}"
        pos = found[0]
    return None


def test_skeleton_sections_in_order(nb):
    """A paper's chapter follows DESIGN.md's skeleton; a shared world's chapter may follow it too
    or the world skeleton (what it stands for, its checks as findings, exercises, summary)."""
    path, book = nb
    headings = [m.group(1).lower() for c in book.cells if c.cell_type == "markdown"
                for m in re.finditer(r"^## (.+)$", c.source, re.M)]
    missing = _follows(headings, SKELETON)
    if missing and _is_world(path) and _follows(headings, WORLD_SKELETON) is None:
        missing = None
    assert missing is None, f"{path.name}: {missing}"


def test_setup_is_called(nb):
    path, book = nb
    code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert "cvtutor.setup(PROFILE, SEED)" in code


# ------------------------------------------------------------------------------------------
# the time budget (issue 13): read the table tests/run.sh writes at the end of the notebook stage
# ------------------------------------------------------------------------------------------
BUDGET_S = 60.0
# The CI machine runs two notebooks at once on two shared cores and is often busy with other work:
# a notebook fails only beyond 1.5x the budget (90 s), so that a loaded machine does not fail a
# notebook that fits on a quiet one, while one that doubled its cost still fails.
LOAD_TOLERANCE = 1.5
TIMES = Path(os.environ.get("CVTUTOR_NOTEBOOK_TIMES", ROOT / "_book" / "notebook_times.tsv"))


def over_budget(rows, budget=BUDGET_S, tolerance=LOAD_TOLERANCE) -> list[str]:
    return [f"{r['notebook']}: {float(r['seconds']):.1f} s" for r in rows
            if float(r["seconds"]) > budget * tolerance]


def test_notebook_time_budget():
    if not TIMES.is_file():
        pytest.skip(f"no {TIMES}: tests/run.sh writes it at the end of the notebook stage")
    rows = list(csv.DictReader(TIMES.open(), delimiter="\t"))
    assert rows, f"{TIMES} is empty"
    slow = over_budget(rows)
    assert not slow, (f"over the {BUDGET_S:.0f} s budget (x{LOAD_TOLERANCE} tolerance for a loaded machine): "
                      f"{slow}")


def test_budget_check_hand_cases():
    rows = [{"notebook": "a", "seconds": "89.9"}, {"notebook": "b", "seconds": "90.1"}]
    assert over_budget(rows) == ["b: 90.1 s"]
