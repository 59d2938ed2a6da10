"""The built book in headless Chromium with the network off.

Every page: no request leaves 127.0.0.1, no JavaScript error, every formula typeset by MathJax,
every plotly figure drawn as a non-empty SVG. Runs in stage 4 of tests/run.sh, on the book that
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
        marks = fig.locator("svg.main-svg path, svg.main-svg image, svg.main-svg rect").count()
        assert marks > 0, f"{page}: figure {i} drew an empty SVG"
    ctx.close()
    assert not outside, f"{page} asked the network for {outside}"
    assert not errors, f"{page}: {errors}"
