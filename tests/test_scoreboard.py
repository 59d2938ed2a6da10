"""The reproduction scoreboard (issue 17): the notebooks' results files, the page, the README.

Result files are written here by the same helpers the notebooks and ``python -m cvtutor run``
use; the page's rows are counted against the findings the files hold, and each malformed field
must raise an error that names the file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from cvtutor import cli, papers, report, scoreboard
from cvtutor.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
PAPER = report.PaperTable("Table 1", "EPE (mm)", {"RGB": 20.9, "KD": 18.4}, better="lower")


@pytest.fixture(autouse=True)
def no_results_env(monkeypatch):
    """tests/run.sh exports CVTUTOR_RESULTS for the notebooks; these tests choose their folders."""
    monkeypatch.delenv(report.RESULTS_ENV, raising=False)


def _findings(**verdicts) -> pd.DataFrame:
    kinds = iter(report.KINDS * 4)
    return report.claims_table({text: (next(kinds), holds) for text, holds in verdicts.items()})


def _save(folder, slug="getting_started", profile="fast", seed=0, findings=None, seeds=(0,), **kw):
    rt = Runtime(profile=profile, device=torch.device("cpu"), seed=seed)
    cfg = type("Config", (), {"seeds": seeds})()
    if findings is None:
        findings = _findings(**{"A beats B (Table 1)": True, "C ~ D": False})
    tables = {"table1": report.compare(PAPER, {"KD": 19.0})}
    return report.save_notebook_results(slug, rt, findings, tables=tables, config=cfg,
                                        folder=folder, **kw)


# ---- the notebook's one-line save ------------------------------------------------------------
def test_save_notebook_results_round_trip(tmp_path, capsys):
    path = _save(tmp_path, seed=3, seeds=(0, 1, 2))
    assert path == tmp_path / "getting_started-fast-seed3.json"
    assert "saved 2 findings and 1 table to" in capsys.readouterr().out
    results, meta = report.load_results(path)
    assert meta["source"] == "notebook" and meta["seeds"] == [0, 1, 2] and meta["seed"] == 3
    assert meta["device"] == "cpu" and meta["wall_time_s"] > 0 and meta["config"] == "Config"
    assert list(results["findings"].index) == ["A beats B (Table 1)", "C ~ D"]
    assert results["tables"]["table1"].loc["KD", "ours"] == 19.0
    res = scoreboard.load_result(path)
    assert res.slug == "getting_started" and res.profile == "fast" and len(res.findings) == 2


def test_save_joins_several_findings_tables(tmp_path):
    a = report.claims_table({"x": ("paper claim", True, "1 vs 2")})
    b = report.claims_table({"y": ("construction", None)})
    results, _ = report.load_results(_save(tmp_path, findings=[a, b]))
    assert list(results["findings"].index) == ["x", "y"]
    assert list(results["findings"]["detail"]) == ["1 vs 2", ""]


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="claims_table"):
        _save(tmp_path, findings=pd.DataFrame({"holds": [True]}))
    with pytest.raises(ValueError, match="repeated"):
        _save(tmp_path, findings=[_findings(x=True), _findings(x=False)])
    with pytest.raises(TypeError, match="expected a claims_table"):
        _save(tmp_path, findings=[])
    rt = Runtime(profile="fast", device=torch.device("cpu"), seed=0)
    with pytest.raises(TypeError, match="DataFrames by name"):
        report.save_notebook_results("tide", rt, _findings(x=True), tables={"t": [1, 2]},
                                     folder=tmp_path)


def test_results_dir(tmp_path, monkeypatch):
    book = tmp_path / "book"
    (book / "notebooks" / "eccv2020").mkdir(parents=True)
    (book / "_toc.yml").write_text("root: intro\n")
    assert report.results_dir(book / "notebooks" / "eccv2020") == book / "results"
    assert report.results_dir(tmp_path) == tmp_path / "results"  # not in a book: under the folder
    monkeypatch.chdir(book / "notebooks")
    assert report.results_dir() == book / "results"
    monkeypatch.setenv(report.RESULTS_ENV, str(tmp_path / "elsewhere"))
    assert report.results_dir(book) == tmp_path / "elsewhere"


# ---- reading a results folder ----------------------------------------------------------------
def _fixture_folder(tmp_path) -> Path:
    """fast results of getting_started (3 findings) and topogan (2), a full result of
    getting_started with one more finding, a full CLI result of topogan without findings, and a
    smoke file."""
    gs = _findings(**{"svc ~ 0.97 (Table 1)": True, "the MLP beats softmax": False,
                      "noise is noise": None})
    _save(tmp_path, findings=gs)
    _save(tmp_path, profile="full", seeds=(0, 1, 2),
          findings=report.claims_table({**{k: (v["kind"], True) for k, v in gs.iterrows()},
                                        "only in full (Fig. 2)": ("paper claim", False)}))
    _save(tmp_path, slug="topogan", findings=_findings(**{"Table 1: TopoGAN below WGAN-GP": True,
                                                          "x": True}))
    _save(tmp_path, slug="topogan", profile="smoke")
    meta = report.run_metadata("topogan", "full", "cuda:0", 0, wall_time_s=300.0,
                               source="python -m cvtutor run")
    cli_results = {"table1": pd.DataFrame({"a": [1.0]})}
    report.save_results(cli_results, tmp_path / "topogan-full-seed0.json", meta)
    return tmp_path


def test_rows_are_the_union_of_each_chapters_findings(tmp_path):
    found = scoreboard.collect(_fixture_folder(tmp_path))
    assert set(found) == {("getting_started", "fast"), ("getting_started", "full"),
                          ("topogan", "fast"), ("topogan", "full")}  # smoke is not a column
    rows = scoreboard.scoreboard_rows(found)
    per_chapter = {}
    for (slug, _), res in found.items():
        if res.findings is not None:
            per_chapter.setdefault(slug, set()).update(res.findings.index)
    assert len(rows) == sum(len(v) for v in per_chapter.values()) == 4 + 2
    gs = rows[rows.slug == "getting_started"].set_index("finding")
    assert gs.loc["svc ~ 0.97 (Table 1)", "fast"] == "holds"
    assert gs.loc["the MLP beats softmax", "fast"] == "does not hold"
    assert gs.loc["noise is noise", "fast"] == "not judged" and gs.loc["noise is noise", "full"] == "holds"
    assert gs.loc["only in full (Fig. 2)", "fast"] == "absent"
    assert gs.loc["only in full (Fig. 2)", "full"] == "does not hold"
    assert gs.loc["svc ~ 0.97 (Table 1)", "ref"] == "Table 1"
    assert gs.loc["the MLP beats softmax", "ref"] == ""
    assert gs["seeds full"].iloc[0] == "0, 1, 2" and gs["section"].iloc[0] == "Getting started"
    topo = rows[rows.slug == "topogan"]
    assert list(topo.full) == ["absent", "absent"]  # the full CLI result holds no findings
    assert scoreboard.held_counts(found) == {"getting_started": "1 of 3", "topogan": "2 of 2"}
    assert scoreboard.held_counts(found, "full") == {"getting_started": "3 of 4"}


def test_newest_result_of_a_chapter_and_profile_wins(tmp_path):
    _save(tmp_path, findings=_findings(old=True))
    path = _save(tmp_path, seed=1, findings=_findings(new=False))
    raw = json.loads(path.read_text())
    raw["metadata"]["created"] = "2099-01-01T00:00:00+0000"
    path.write_text(json.dumps(raw))
    rows = scoreboard.scoreboard_rows(scoreboard.collect(tmp_path))
    assert list(rows.finding) == ["new"]
    assert scoreboard.collect(tmp_path / "missing") == {}


def _corrupt(path: Path, edit) -> None:
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


def _meta(**changes):
    return lambda r: r["metadata"].update(changes)


def _frame(edit):
    """Edit the stored findings table: ``edit(frame)`` on its ``columns/index/data`` dict."""
    return lambda r: edit(r["results"]["findings"]["__dataframe__"])


def _columns(*names):
    return _frame(lambda f: f.update(columns=list(names)))


def _cell(row, col, value):
    return _frame(lambda f: f["data"][row].__setitem__(col, value))


BAD = {
    "not valid JSON": lambda p: p.write_text("{not json"),
    "not a cvtutor results file": lambda p: p.write_text('{"results": {}}'),
    "metadata lacks 'slug'": lambda p: _corrupt(p, lambda r: r["metadata"].pop("slug")),
    "metadata lacks 'created'": lambda p: _corrupt(p, lambda r: r["metadata"].pop("created")),
    "metadata 'seed' must be of type int": lambda p: _corrupt(p, _meta(seed="0")),
    "is not a tutorial of the registry": lambda p: _corrupt(p, _meta(slug="nope")),
    "'profile' 'auto' is not fast, full or smoke": lambda p: _corrupt(p, _meta(profile="auto")),
    "'created' 'yesterday' is not": lambda p: _corrupt(p, _meta(created="yesterday")),
    "'seeds' must be a list of integers": lambda p: _corrupt(p, _meta(seeds="0")),
    "'findings' must be a table": lambda p: _corrupt(p, lambda r: r["results"].update(findings=1)),
    "lacks the column 'kind'": lambda p: _corrupt(p, _columns("k", "holds")),
    "kind 'guess' is not one of": lambda p: _corrupt(p, _cell(0, 0, "guess")),
    "holds must be true, false or null": lambda p: _corrupt(p, _cell(0, 1, "yes")),
    "has no rows": lambda p: _corrupt(p, _frame(lambda f: f.update(index=[], data=[]))),
}


@pytest.mark.parametrize("problem", list(BAD))
def test_a_malformed_file_is_named(tmp_path, problem):
    path = _save(tmp_path)
    BAD[problem](path)
    with pytest.raises(scoreboard.ResultsFileError, match=re.escape(problem)) as err:
        scoreboard.collect(tmp_path)
    assert str(path) in str(err.value)


def test_cli_names_a_malformed_file(tmp_path, capsys):
    path = _save(tmp_path)
    BAD["lacks the column 'kind'"](path)
    assert cli.main(["scoreboard", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "lacks the column 'kind'" in err


# ---- the page --------------------------------------------------------------------------------
def test_page_has_a_row_per_finding_and_says_where_numbers_came_from(tmp_path):
    found = scoreboard.collect(_fixture_folder(tmp_path))
    page = scoreboard.page_markdown(found, ROOT)
    rows = scoreboard.scoreboard_rows(found)
    assert len(re.findall(r'<tr id="[a-z0-9-]+-\d+"', page)) == len(rows) == 6
    done = scoreboard.done_chapters()
    for t in done:  # every done chapter is on the page, with or without results
        assert f"### {t.id} · " in page
    assert page.count("no result yet (run its notebook)") == len(done) - 2
    assert "cuda:0" in page and "holds no findings table" in page  # topogan's full CLI result
    assert 'href="../notebooks/eccv2020/topogan.html#summary-and-references"' in page
    assert "seeds 0, 1, 2" in page
    assert 'style="background-color: #fde8e8;"' in page  # a ✗ row is shaded
    assert "None" not in page and "NaN" not in page
    sections = [m for m in re.findall(r"^## (.+)$", page, re.M)]
    order = [papers.PARTS["start"], papers.PARTS["hands"], *papers.THEMES]
    assert sections == [s for s in order if s in {scoreboard.section(t) for t in done}]
    assert "with 6 findings in all" in page and "Paper claims held:" in page


def test_page_without_results(tmp_path):
    page = scoreboard.page_markdown({}, tmp_path)
    assert "found results of 0 of" in page and "<tr id=" not in page
    assert page.count("No findings yet") == len(scoreboard.done_chapters())


def test_findings_anchor(tmp_path):
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["# Title\n", "## 6. Reproduction"]},
        {"cell_type": "code", "source": ["findings = report.claims_table({})"]},
        {"cell_type": "markdown",
         "source": ["```python\n# not a heading\n```\n", "## 8. Summary and *references*"]},
        {"cell_type": "code", "source": ["report.findings_summary(findings)"]},
    ]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    expected = ("8. Summary and references", "summary-and-references")
    assert scoreboard.findings_anchor(path) == expected
    assert scoreboard.findings_anchor(tmp_path / "missing.ipynb") is None


@pytest.mark.parametrize("tutorial", scoreboard.done_chapters(), ids=lambda t: t.slug)
def test_every_done_notebook_shows_and_saves_its_findings(tutorial):
    """Each done chapter links to a findings section and its last code cell saves its results."""
    anchor = scoreboard.findings_anchor(ROOT / tutorial.notebook)
    assert anchor is not None, "no report.findings_summary cell"
    cells = json.loads((ROOT / tutorial.notebook).read_text())["cells"]
    last = "".join(next(c for c in reversed(cells) if c["cell_type"] == "code")["source"])
    assert f'report.save_notebook_results("{tutorial.slug}", rt,' in last


def test_table_refs():
    assert scoreboard.table_ref("adding L_ATT helps more (Table 1 rows 1-2)") == "Table 1"
    text = "Figs. 3–4: which error dominates, Eq. 3 and Table 2"
    assert scoreboard.table_ref(text) == "Figs. 3–4; Eq. 3; Table 2"
    assert scoreboard.table_ref("no reference here") == ""


# ---- the Sphinx hooks ------------------------------------------------------------------------
def test_sphinx_hooks_render_the_page_last(tmp_path, monkeypatch):
    docs = ["book/intro", scoreboard.PAGE, "notebooks/eccv2020/topogan"]
    scoreboard._read_last(None, None, docs)
    assert docs[-1] == scoreboard.PAGE
    (tmp_path / "_toc.yml").write_text("root: x\n")
    _fixture_folder(tmp_path / "results")
    app = type("App", (), {"srcdir": str(tmp_path)})()
    source = [f"# Scoreboard\n\n{scoreboard.MARKER}\n"]
    scoreboard._render(app, "book/intro", source)
    assert scoreboard.MARKER in source[0]  # other pages are left alone
    scoreboard._render(app, scoreboard.PAGE, source)
    assert scoreboard.MARKER not in source[0] and source[0].count('<tr id="') == 6
    committed = (ROOT / "book" / "scoreboard.md").read_text()
    assert scoreboard.MARKER in committed
    assert "file: book/scoreboard" in (ROOT / "_toc.yml").read_text()


# ---- the CLI and the README column -----------------------------------------------------------
def test_cli_scoreboard_prints_every_finding(tmp_path, capsys):
    assert cli.main(["scoreboard", "--results", str(_fixture_folder(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "GS getting_started: 4 findings, held fast 1 of 3, full 3 of 4" in out
    assert "E08 topogan: 2 findings" in out
    assert "E33 tide: 0 findings" in out and "no results" in out
    assert len(re.findall(r"^\s+\d+\. \[fast", out, re.M)) == 6


def test_readme_column_from_the_results(tmp_path, capsys):
    folder = _fixture_folder(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- papers:start -->\nold\n<!-- papers:end -->\n")
    assert cli.main(["table", "--write", str(readme), "--results", str(folder)]) == 0
    lines = readme.read_text().splitlines()
    assert "| findings held (fast) | slug |" in lines[2]
    row = next(line for line in lines if line.startswith("| GS |"))
    assert row.endswith("| done | 1 of 3 | `getting_started` |")
    assert next(line for line in lines if line.startswith("| E33 |")).endswith("| — | `tide` |")
    assert papers.status_table() == papers.status_table({})  # without results: "—" everywhere
    assert "| 1 of 3 |" not in papers.status_table()
