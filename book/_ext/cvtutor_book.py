"""Sphinx extension of the book: serve plotly.js and MathJax from the book itself.

plotly.js is taken from the installed ``plotly`` package and MathJax 3 from the installed
``django-static-mathjax`` package (its ``es5/tex-svg.js`` needs no web fonts), so a built page
draws its figures and math with the network off.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx


def _assets() -> dict[str, Path]:
    import plotly

    try:
        import mathjax
    except ImportError as err:
        raise RuntimeError("the book needs MathJax from the package django-static-mathjax: "
                           "pip install -e '.[book]'") from err
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    tex_svg = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    for path in (plotly_js, tex_svg):
        if not path.is_file():
            raise RuntimeError(f"expected {path} in the installed package; reinstall the 'book' extra")
    css = Path(__file__).resolve().parents[1] / "_static" / "cvtutor.css"  # tables: borders, padding, scrolling
    return {"plotly.min.js": plotly_js, "mathjax/tex-svg.js": tex_svg, "cvtutor.css": css}


def _copy_assets(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    for name, src in _assets().items():
        dst = static / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    # pydata-sphinx-theme logs a console error on a first visit when no default mode is set
    if not context.get("default_mode"):
        context["default_mode"] = "light"
    # sphinx-thebe registers its inline configuration script twice under Jupyter Book (once with
    # filename None, once with ''), which re-declares a `const` and throws on every page
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


_INCLUDE = re.compile(r"```\{include\} \.\./README\.md\n:start-after: <!-- papers:start -->\n"
                      r":end-before: <!-- papers:end -->\n```")


def linked_paper_table(readme: str, notebooks: dict[str, str]) -> str:
    """The README's paper table with each done chapter's slug linked to its page
    (``notebooks``: slug -> docname relative to book/, e.g. ``../notebooks/eccv2020/tide``)."""
    start, end = readme.index("<!-- papers:start -->"), readme.index("<!-- papers:end -->")
    lines = []
    for line in readme[start + len("<!-- papers:start -->"):end].strip("\n").splitlines():
        cells = line.split("|")
        m = re.fullmatch(r"\s*`([a-z0-9_]+)`\s*", cells[-2]) if len(cells) > 3 else None
        if m and m[1] in notebooks and any(c.strip() == "done" for c in cells):
            cells[-2] = f" [`{m[1]}`]({notebooks[m[1]]}.ipynb) "
            line = "|".join(cells)
        lines.append(line)
    return "\n".join(lines)


def _link_intro_table(app: Sphinx, docname: str, source: list[str]) -> None:
    if docname != "book/intro" or not _INCLUDE.search(source[0]):
        return
    root = Path(app.srcdir)
    notebooks = {p.stem: "../" + p.relative_to(root).with_suffix("").as_posix()
                 for p in (root / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    table = linked_paper_table((root / "README.md").read_text(), notebooks)
    source[0] = _INCLUDE.sub(lambda _: table, source[0])


def setup(app: Sphinx) -> dict:
    _assets()  # fail early, with a clear message, if a package is missing
    app.add_js_file("plotly.min.js", priority=200)
    app.add_css_file("cvtutor.css")
    app.connect("html-page-context", _page_context)
    app.connect("source-read", _link_intro_table)
    app.connect("build-finished", _copy_assets)
    from cvtutor import scoreboard

    scoreboard.connect(app)  # book/scoreboard.md, from the results files the notebooks saved
    return {"parallel_read_safe": True, "parallel_write_safe": True}
