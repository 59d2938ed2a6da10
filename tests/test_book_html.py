"""The built book read as a reader sees it (issue 15), from its static HTML, without a browser.

Each check is a function of one page's HTML that returns the problems it finds; the fixture pages
below show that each one catches its problem, and ``test_built_page`` runs them all on every page
of the built book (``CVTUTOR_BOOK_HTML``, default ``_build/html``; skipped when there is none).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

bs4 = pytest.importorskip("bs4")

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("CVTUTOR_BOOK_HTML", ROOT / "_build" / "html"))
if not HTML.is_absolute():
    HTML = ROOT / HTML
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).as_posix().startswith(("_static", "_sources", "genindex", "search"))) \
    if HTML.is_dir() else []

# elements whose text is not prose: math (before and after MathJax), code, scripts
NOT_PROSE = ("script", "style", "code", "pre", "kbd", "samp", "mjx-container", "svg", "textarea")
NOT_PROSE_CLASSES = ("math", "highlight", "cell_input", "cell_output", "output", "MathJax", "cvtutor-plotly")


def _soup(html: str):
    return bs4.BeautifulSoup(html, "html.parser")


def _main(soup):
    return soup.find("main") or soup.find("article") or soup


def _prose_text(soup) -> str:
    """The text of the page's article outside math, code and outputs."""
    main = _main(soup)
    for el in main.find_all(NOT_PROSE):
        el.decompose()
    for el in main.find_all(class_=lambda c: c and any(k in c.split() for k in NOT_PROSE_CLASSES)):
        el.decompose()
    return main.get_text(" ")


RAW_TEX = re.compile(r"\$\$|\\(?:frac|mathrm|mathbf|mathcal|mathbb|Vert|lVert|rVert|left|right|sum|int|begin|end|"
                     r"operatorname|text|hat|bar|tilde|alpha|beta|gamma|lambda|sigma|theta|mu|ell|cdot|log|exp)\b")
MD_EMPHASIS = re.compile(r"\*\*[^*\s][^*]{0,80}?\*\*|(?<![\w*])__[^_\s][^_]{0,80}?__(?!\w)")


def raw_tex(html: str) -> list[str]:
    """TeX or display-math delimiters that reached the page as text (not typeset)."""
    text = _prose_text(_soup(html))
    return [text[max(0, m.start() - 30):m.end() + 30].strip() for m in RAW_TEX.finditer(text)]


def markdown_emphasis(html: str) -> list[str]:
    """Literal ``**x**`` (or ``__x__``) left in prose: Markdown that was not parsed."""
    return [m.group(0) for m in MD_EMPHASIS.finditer(_prose_text(_soup(html)))]


_TEXT_ARGS = re.compile(r"\\(?:text|textrm|textit|textbf|mathrm|operatorname|mbox|mathit|mathsf|mathtt)\s*\{[^{}]*\}")
_WORDS4 = re.compile(r"(?<![\\\w])[A-Za-z]{2,}(?:[ ,;.]+[A-Za-z]{2,}){3,}")


def prose_in_math(html: str) -> list[str]:
    """Runs of four or more plain words inside a math span: prose swallowed into math by a
    mis-parsed ``$`` (prose that belongs in math is written in ``\\text{...}``)."""
    soup = _soup(html)
    bad = []
    for el in soup.find_all(class_="math"):
        tex = el.get_text(" ")
        tex = _TEXT_ARGS.sub(" ", tex)
        tex = re.sub(r"\\[A-Za-z]+", " ", tex)  # commands are not words
        bad += [m.group(0) for m in _WORDS4.finditer(tex)]
    return bad


PROGRESS = re.compile(r"(\d+)%\|[^|\n]*\|\s*(\d+)/(\d+)\s*\[\d+:\d+<")


def progress_bars(html: str) -> list[str]:
    """Intermediate progress-bar lines in saved outputs (a finished bar, n == total, may stay as
    the one summary line of a run)."""
    soup = _soup(html)
    bad = []
    for out in soup.find_all(class_="cell_output"):
        for m in PROGRESS.finditer(out.get_text("\n")):
            if m.group(2) != m.group(3):
                bad.append(m.group(0))
    return bad


def nan_cells(html: str) -> list[str]:
    """Table cells that show NaN / <NA> / None instead of "–"."""
    soup = _soup(html)
    return [c.get_text(strip=True) for c in _main(soup).find_all(["td", "th"])
            if c.get_text(strip=True) in ("NaN", "nan", "<NA>", "None", "NaT")]


def visible_solutions(html: str) -> list[str]:
    """A solution whose answer shows: a code cell whose input is hidden (``hide-input``) or whose
    code starts with ``# Solution`` while its output stays on the page (use ``hide-cell``)."""
    soup = _soup(html)
    bad = []
    for cell in soup.find_all("div", class_="cell"):
        classes = cell.get("class", [])
        if any(t in classes for t in ("tag_hide-cell", "tag_hide-output", "tag_remove-output", "tag_remove-cell")):
            continue
        out = cell.find(class_="cell_output")
        if out is None or not out.get_text(strip=True) and not out.find(["img", "svg", "table"]):
            continue
        src = cell.find(class_="cell_input")
        is_solution = src is not None and src.get_text().lstrip().lower().startswith("# solution")
        if "tag_hide-input" in classes or is_solution:
            bad.append((src.get_text().strip().splitlines() or [""])[0][:60] if src else "hidden input")
    return bad


CHECKS = {"raw TeX": raw_tex, "literal Markdown emphasis": markdown_emphasis, "prose inside math": prose_in_math,
          "progress-bar lines": progress_bars, "NaN in a table": nan_cells, "visible solution output": visible_solutions}


# ---- fixture pages: each check catches its problem, and a clean page passes ------------------
def _page(body: str) -> str:
    return f"<html><body><main><article>{body}</article></main></body></html>"


CLEAN = _page("""
<p>The loss <span class="math notranslate nohighlight">\\(\\mathrm{KL}[q \\Vert p] + \\text{a sentence of words here}\\)</span>
is <strong>bold</strong>, <code>**kwargs</code> is code.</p>
<div class="math notranslate nohighlight">\\[\\sum_k p_k = 1\\]</div>
<div class="cell docutils container"><div class="cell_input"><pre>fit()</pre></div>
<div class="cell_output"><pre>Training: 100%|##########| 200/200 [00:03&lt;00:00, 60.0it/s]</pre></div></div>
<table><tr><th>std</th></tr><tr><td>–</td></tr></table>
<div class="cell docutils container tag_hide-cell"><div class="cell_input"><pre># Solution to exercise 1</pre></div>
<div class="cell_output"><pre>answer 42</pre></div></div>
""")

BAD = {
    "raw TeX": _page("<p>where $$\\mathrm{KL}[q,\\Vert p]$$ is the divergence</p>"),
    "literal Markdown emphasis": _page("<p>keep the **last** checkpoint</p>"),
    "prose inside math": _page('<p><span class="math">\\(x is the input of the network\\)</span></p>'),
    "progress-bar lines": _page('<div class="cell_output"><pre>epoch:  12%|#2        | 12/100 [00:01&lt;00:10, 9.0it/s]</pre></div>'),
    "NaN in a table": _page("<table><tr><th>std</th></tr><tr><td>NaN</td></tr></table>"),
    "visible solution output": _page('<div class="cell docutils container tag_hide-input"><div class="cell_input">'
                                     "<pre>x = 1</pre></div><div class=\"cell_output\"><pre>the answer</pre></div></div>"),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_passes_a_clean_page(name):
    assert CHECKS[name](CLEAN) == []


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_catches_its_problem(name, tmp_path):
    page = tmp_path / "fixture.html"  # written as a page, read back as the built-book test reads pages
    page.write_text(BAD[name])
    assert CHECKS[name](page.read_text()), f"the {name} check missed its fixture"
    others = [n for n, check in CHECKS.items() if n != name and check(page.read_text())]
    assert not others or name == "raw TeX", f"fixture for {name} also trips {others}"


def test_a_solution_cell_without_hide_cell_is_caught():
    page = _page('<div class="cell docutils container"><div class="cell_input"><pre># Solution to exercise 2\n'
                 'x</pre></div><div class="cell_output"><pre>0.97</pre></div></div>')
    assert visible_solutions(page)


# ---- the bibliography ------------------------------------------------------------------------
def test_every_paper_is_in_the_bibliography():
    from cvtutor import papers

    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.M))
    missing = [t.slug for t in papers.papers() if t.slug not in keys and t.slug != "getting_started"]
    assert not missing, f"no entry in book/references.bib for {missing}"


# ---- the built book --------------------------------------------------------------------------
def _need_book():
    if not HTML.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"no built book at {HTML}")
        pytest.skip(f"no built book at {HTML}: run tests/run.sh (it builds the book)")


@pytest.mark.browser  # needs the built book: run in tests/run.sh's last stage, after the build
@pytest.mark.parametrize("page", PAGES or ["<no book built>"])
def test_built_page(page):
    _need_book()
    html = (HTML / page).read_text(encoding="utf-8")
    problems = {name: found[:5] for name, check in CHECKS.items() if (found := check(html))}
    assert not problems, f"{page}: {problems}"


@pytest.mark.browser
def test_built_references_page_lists_the_papers():
    _need_book()
    text = (HTML / "book" / "references.html").read_text(encoding="utf-8")
    assert "TIDE" in text and "github.com/dbolya/tide" in text


# ---- the scoreboard page (issue 17) ----------------------------------------------------------
def broken_links(page: Path) -> list[str]:
    """Links of a built page whose target page or anchor (``#id``) does not exist."""
    soup = _soup(page.read_text(encoding="utf-8"))
    bad = []
    for a in _main(soup).find_all("a", href=True):
        href = a["href"]
        if href.startswith(("http:", "https:", "mailto:")) or "#" not in href:
            continue
        target, frag = href.split("#", 1)
        path = page if not target else (page.parent / target).resolve()
        if not path.is_file():
            bad.append(f"{href}: no page {target}")
        elif frag and _soup(path.read_text(encoding="utf-8")).find(id=frag) is None:
            bad.append(f"{href}: no element with id {frag!r}")
    return bad


def test_link_check_catches_a_missing_anchor(tmp_path):
    (tmp_path / "a.html").write_text(_page('<h2 id="here">x</h2>'))
    links = ('<a href="a.html#here">ok</a> <a href="a.html#gone">bad</a> '
             '<a href="c.html#x">no page</a> <a href="#top">no id</a>')
    (tmp_path / "b.html").write_text(_page(links))
    bad = broken_links(tmp_path / "b.html")
    assert len(bad) == 3 and "'gone'" in bad[0] and "no page" in bad[1] and "'top'" in bad[2]


@pytest.mark.browser
def test_built_scoreboard_lists_every_finding_and_its_links_resolve():
    """One row per finding of the results the book was built from (``CVTUTOR_RESULTS``, as
    tests/run.sh sets it), every done chapter present, and every link landing on its section."""
    _need_book()
    from cvtutor import report, scoreboard

    page = HTML / "book" / "scoreboard.html"
    assert page.is_file(), "the book has no scoreboard page"
    soup = _soup(page.read_text(encoding="utf-8"))
    shown = soup.select("table.cvtutor-scoreboard tbody tr")
    rows = scoreboard.scoreboard_rows(scoreboard.collect(report.results_dir(ROOT)))
    assert len(shown) == len(rows), f"{len(shown)} rows shown, {len(rows)} findings in results"
    assert [r.find_all("td")[1].get_text(strip=True) for r in shown] == list(rows.finding)
    text = _main(soup).get_text(" ")
    for t in scoreboard.done_chapters():
        assert soup.find(id=scoreboard._heading_id(t)) is not None, f"no section for {t.id}"
    assert "no result yet" in text or len(shown) > 0
    assert not broken_links(page)
