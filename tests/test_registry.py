"""The registry agrees with the files: README table, _toc.yml, modules, notebooks, tests, CI."""
import re
from pathlib import Path

import pytest
import yaml

from cvtutor import papers

ROOT = Path(__file__).resolve().parents[1]
SHARED_LIST = ROOT.parent / "shared" / "papers" / "README.md"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections", []))
            walk(e.get("chapters", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    return files


def test_registry_has_the_48_papers_and_the_start():
    ids = [t.id for t in papers.papers()]
    assert len(ids) == 48 and len(set(ids)) == 48
    assert {f"E{i:02d}" for i in range(1, 46)} | {"H1", "H2", "H3"} == set(ids)
    assert papers.get("getting_started").status == "done"
    assert len({t.slug for t in papers.TUTORIALS}) == len(papers.TUTORIALS)


@pytest.mark.skipif(not SHARED_LIST.exists(), reason="the shared paper list sits beside the repository")
def test_registry_matches_the_shared_paper_list():
    listed = dict(re.findall(r"^\| (H\d|E\d\d) \| .+? \| .+? \| .+? \| (\w+) \|$", SHARED_LIST.read_text(), re.M))
    assert listed == {t.id: t.slug for t in papers.papers()}


def test_unknown_slug_lists_the_known_ones():
    with pytest.raises(KeyError, match="available slugs: .*getting_started"):
        papers.get("nope")
    with pytest.raises(ModuleNotFoundError, match="planned and has no module yet"):
        papers.load(next(t.slug for t in papers.TUTORIALS if t.status == "planned"))


def test_readme_table_is_generated_from_the_registry():
    """The table is the registry's; its column "findings held (fast)" comes from the results
    files of whoever last ran ``python -m cvtutor table --write README.md``: "k of n", or "—"."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- papers:start -->")[1].split("<!-- papers:end -->")[0].strip()
    held = {}
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert re.fullmatch(r"—|\d+ of \d+", cells[-2]), f"'k of n' or '—' expected: {line}"
        if cells[-2] != "—":
            held[cells[-1].strip("`")] = cells[-2]
    assert block == papers.status_table(held), \
        "refresh the README table with: python -m cvtutor table --write README.md"


@pytest.mark.parametrize("tutorial", papers.TUTORIALS, ids=lambda t: t.slug)
def test_status_agrees_with_the_files(tutorial):
    module = ROOT / "cvtutor" / "papers" / f"{tutorial.slug}.py"
    package = ROOT / "cvtutor" / "papers" / tutorial.slug / "__init__.py"
    has_module = module.exists() or package.exists()
    notebook = ROOT / tutorial.notebook
    in_toc = tutorial.notebook.removesuffix(".ipynb") in toc_files()
    if tutorial.status == "planned":
        assert not has_module and not notebook.exists(), f"{tutorial.slug} has files: set its status"
        return
    assert has_module, f"{tutorial.slug} is {tutorial.status} but has no module"
    if tutorial.status == "done":
        assert notebook.exists() and in_toc, f"{tutorial.slug}: notebook missing or not in _toc.yml"
        assert (ROOT / "tests" / f"test_{tutorial.slug}.py").exists()
        mod = papers.load(tutorial.slug)
        for name in ("PAPER", "Config", "run"):
            assert hasattr(mod, name), f"{tutorial.slug} lacks {name}"
        assert callable(mod.Config.fast) and callable(mod.Config.full)


def test_toc_lists_only_existing_pages_and_every_notebook():
    files = toc_files()
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f"_toc.yml lists missing page {f}"
    notebooks = {p.relative_to(ROOT).as_posix().removesuffix(".ipynb") for p in (ROOT / "notebooks").rglob("*.ipynb")
                 if ".ipynb_checkpoints" not in p.parts}
    assert notebooks <= set(files), f"notebooks missing from _toc.yml: {sorted(notebooks - set(files))}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Run the tests**")[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci.splitlines(), f".ci/run must run the README's test command: {command}"


def test_every_eccv_entry_has_a_theme_and_the_toc_groups_by_it():
    eccv = [t for t in papers.TUTORIALS if t.part == "eccv2020"]
    assert all(t.theme in papers.THEMES for t in eccv), [t.id for t in eccv if t.theme not in papers.THEMES]
    assert all(t.theme is None for t in papers.TUTORIALS if t.part != "eccv2020")
    by_notebook = {t.notebook.removesuffix(".ipynb"): t for t in papers.TUTORIALS}
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    seen = []
    for part in toc["parts"]:
        caption = part.get("caption", "")
        if not caption.startswith("ECCV 2020 · "):
            continue
        theme = caption.removeprefix("ECCV 2020 · ")
        assert theme in papers.THEMES, f"_toc.yml caption {caption!r} is not a theme of papers.THEMES"
        seen.append(theme)
        files = [e["file"] for e in part["chapters"]]
        for f in files:
            assert by_notebook[f].theme == theme, f"{f} sits under {theme!r}, the registry says {by_notebook[f].theme!r}"
        worlds = [f for f in files if not by_notebook[f].paper]
        if worlds:
            assert files[0] == worlds[0], f"the world chapter {worlds[0]} opens its section {theme!r}"
        ids = [by_notebook[f].id for f in files if by_notebook[f].paper]
        assert ids == sorted(ids), f"the chapters of {theme!r} follow the paper order (E01, E02, ...): {ids}"
    assert seen == [t for t in papers.THEMES if t in seen], "_toc.yml's ECCV sections follow papers.THEMES' order"
