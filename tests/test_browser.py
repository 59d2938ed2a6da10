"""The built book in headless Chromium with the network off.

Every page: no request leaves 127.0.0.1, no JavaScript error, every formula typeset by MathJax,
every plotly figure drawn as a non-empty SVG, no table or code block wider than the content column
(measured), no figure title under plotly's toolbar. A full-page screenshot of every page is kept
under ``_book/screenshots/`` (``CVTUTOR_SCREENSHOTS`` overrides), for CI to keep as artefacts. Runs in stage 4 of tests/run.sh, on the book that
stage 3 built (``CVTUTOR_BOOK_HTML``, default ``_build/html``).
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("CVTUTOR_BOOK_HTML", ROOT / "_build" / "html"))
if not HTML.is_absolute():
    HTML = ROOT / HTML
SHOTS = Path(os.environ.get("CVTUTOR_SCREENSHOTS", ROOT / "_book" / "screenshots"))
COLUMN_SLACK_PX = 2  # rounding of the layout

# Elements wider than the article's content column (752 px in the book theme). A wide table sits in
# a scrolling output box (book/_static/cvtutor.css), so the box's own width is what the reader sees
# overflow; its content's scroll width beyond the column is measured too: a table the reader must
# scroll to read is too wide (transpose or split it; report.style(df, transpose=True)).
WIDTHS_JS = """() => {
  const main = document.querySelector('main article') || document.querySelector('article') || document.body;
  const column = main.getBoundingClientRect().width;
  const out = [];
  for (const el of main.querySelectorAll('table, div.highlight pre, .cell_output pre')) {
    if (el.closest('.cvtutor-plotly') || el.closest('details:not([open])')) continue;
    // a table: its full width; a code block: it is too wide when its lines need a scroll bar
    const w = el.tagName === 'TABLE' ? Math.max(el.getBoundingClientRect().width, el.scrollWidth)
                                     : column + (el.scrollWidth - el.clientWidth);
    if (w > column + %d) {
      out.push({tag: el.tagName.toLowerCase(), width: Math.round(w), column: Math.round(column),
                text: (el.innerText || '').slice(0, 60)});
    }
  }
  return out;
}""" % COLUMN_SLACK_PX

# A figure's title box against its toolbar (modebar) box: they must not intersect.
TITLE_UNDER_TOOLBAR_JS = """(fig) => {
  const title = fig.querySelector('.infolayer .gtitle');
  const bar = fig.querySelector('.modebar');
  if (!title || !bar) return null;
  const a = title.getBoundingClientRect(), b = bar.getBoundingClientRect();
  if (!b.width || !b.height) return null;
  const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  return overlap ? (title.textContent || '').slice(0, 60) : null;
}"""

PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).as_posix().startswith(("_static", "_sources", "genindex", "search"))) \
    if HTML.is_dir() else []


def chromium() -> str | None:
    for name in (os.environ.get("CVTUTOR_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _need(condition: bool, message: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server():
    _need(HTML.is_dir(), f"no built book at {HTML}: run tests/run.sh (it builds the book first)")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    exe = chromium()
    _need(exe is not None, "no Chromium found: apt-get install chromium (or set CVTUTOR_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def test_the_book_was_built():
    _need(HTML.is_dir(), f"no built book at {HTML}")
    assert "notebooks/00_getting_started.html" in PAGES
    assert "book/scoreboard.html" in PAGES
    assert (HTML / "_static" / "plotly.min.js").is_file()
    assert (HTML / "_static" / "mathjax" / "tex-svg.js").is_file()


@pytest.mark.parametrize("page", PAGES or ["<no book built>"])
def test_page_renders_offline(server, browser, page):
    ctx = browser.new_context()
    pg = ctx.new_page()
    errors: list[str] = []
    outside: list[str] = []
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", None) or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    pg.set_viewport_size({"width": 1400, "height": 900})
    pg.goto(f"{server}/{page}", wait_until="load")
    n_math = pg.locator(".math").count()
    if n_math:
        pg.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        pg.evaluate("() => MathJax.startup.promise")
        typeset = pg.locator(".math mjx-container").count()
        assert typeset >= n_math, f"{page}: {n_math} formulas, {typeset} typeset by MathJax"
        bad = pg.locator("mjx-merror, [data-mml-node='merror']")
        assert bad.count() == 0, f"{page}: MathJax reported TeX errors: {bad.all_text_contents()[:5]}"
    figures = pg.locator(".cvtutor-plotly")
    for i in range(figures.count()):
        fig = figures.nth(i)
        fig.scroll_into_view_if_needed()
        pg.wait_for_function("el => el.querySelector('svg.main-svg') !== null", arg=fig.element_handle(),
                             timeout=15000)
        box = fig.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 50, f"{page}: figure {i} has no size"
        # 2-D traces draw SVG marks; a 3-D scene (scatter3d, mesh3d) draws on a WebGL canvas
        marks = fig.locator("svg.main-svg path, svg.main-svg image, svg.main-svg rect, .gl-container canvas").count()
        assert marks > 0, f"{page}: figure {i} drew an empty SVG"
        if not fig.is_visible():  # inside a collapsed (hidden) solution: drawn, but not hoverable
            continue
        fig.hover()  # the toolbar shows on hover
        covered = pg.evaluate(TITLE_UNDER_TOOLBAR_JS, fig.element_handle())
        assert covered is None, f"{page}: figure {i}'s title {covered!r} sits under plotly's toolbar"
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")), full_page=True)
    too_wide = pg.evaluate(WIDTHS_JS)
    ctx.close()
    assert not too_wide, f"{page}: wider than the content column: {too_wide[:5]}"
    assert not outside, f"{page} asked the network for {outside}"
    assert not errors, f"{page}: {errors}"


def test_the_measures_catch_their_problems(browser, tmp_path):
    """Fixture page: a table wider than its column and a title under a toolbar are found."""
    page = tmp_path / "fixture.html"
    page.write_text("""<html><body><main><article style="width:752px">
      <table><tr>""" + "".join(f"<td>column{i}-wide-cell</td>" for i in range(40)) + """</tr></table>
      <div class="highlight"><pre style="overflow-x:auto">""" + "x = 1  # " + "long " * 60 + """</pre></div>
      <div class="fig" style="position:relative; width:752px; height:200px">
        <svg class="main-svg" width="752" height="200"><g class="infolayer"><g class="gtitle">
        <text x="600" y="20">A title</text></g></g></svg>
        <div class="modebar" style="position:absolute; left:560px; top:0; width:190px; height:40px"></div></div>
    </article></main></body></html>""")
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(page.as_uri())
    wide = pg.evaluate(WIDTHS_JS)
    covered = pg.evaluate(TITLE_UNDER_TOOLBAR_JS, pg.locator(".fig").element_handle())
    ctx.close()
    assert wide and wide[0]["tag"] == "table" and wide[0]["width"] > wide[0]["column"]
    assert "pre" in [w["tag"] for w in wide]  # the code line that needs a scroll bar
    assert covered and "A title" in covered


def test_scoreboard_links_land_on_the_chapters_findings(server, browser):
    """Following the scoreboard's first link to each chapter lands on an element of that page."""
    _need("book/scoreboard.html" in PAGES, "no scoreboard page")
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(f"{server}/book/scoreboard.html")
    hrefs = pg.eval_on_selector_all("article a[href*='notebooks/'][href*='#']",
                                    "els => els.map(e => e.href)")
    assert hrefs, "the scoreboard links to no chapter section"
    missing = []
    for href in dict.fromkeys(hrefs):
        pg.goto(href)
        found = "() => !!document.getElementById(decodeURIComponent(location.hash.slice(1)))"
        if not pg.evaluate(found):
            missing.append(href)
    ctx.close()
    assert not missing, f"links to sections that do not exist: {missing}"
