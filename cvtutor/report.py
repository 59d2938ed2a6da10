"""Paper-vs-ours tables with a computed ``holds`` column, and results files with run metadata.

A paper module states the paper's numbers once, as data, with their source::

    PAPER = {
        "table1": PaperTable("Table 1", "EPE (mm)", {"RGB": 20.9, "KD": 18.4}, better="lower"),
    }

and a notebook compares a run against them::

    report.compare(PAPER["table1"], ours={"RGB": 24.0, "KD": 21.7}, claims=["KD < RGB"])

A claim is a comparison between settings (``"KD < RGB"``), between a setting and a number
(``"KD < 25"``), an approximate equality within a relative tolerance (``"KD ~ RGB"``), or the
table-wide ``"lower is better"`` / ``"higher is better"``, which checks that our ranking of the
settings is the paper's ranking. Each claim is first checked on the paper's own numbers (a claim
the paper does not make is a bug and raises), then on ours: that is the ``holds`` column.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_OPS = {
    "<": lambda a, b, tol: a < b,
    "<=": lambda a, b, tol: a <= b,
    ">": lambda a, b, tol: a > b,
    ">=": lambda a, b, tol: a >= b,
    "~": lambda a, b, tol: abs(a - b) <= tol * max(abs(a), abs(b), 1e-12),
}
_CLAIM_RE = re.compile(r"^\s*(.+?)\s*(<=|>=|<|>|~)\s*(.+?)\s*$")
_RANK_CLAIMS = {"lower is better": "lower", "higher is better": "higher"}


@dataclass(frozen=True)
class PaperTable:
    """Numbers a paper reports: ``ref`` (e.g. ``"Table 2"``), the metric, values by setting."""

    ref: str
    metric: str
    values: Mapping[str, float]
    better: str | None = None  # "lower" | "higher" | None
    note: str = ""

    def __post_init__(self) -> None:
        if self.better not in (None, "lower", "higher"):
            raise ValueError(f"better must be 'lower', 'higher' or None, got {self.better!r}")
        if not self.values:
            raise ValueError(f"{self.ref}: a PaperTable needs at least one value")


def _value(term: str, values: Mapping[str, float]) -> float:
    if term in values:
        return float(values[term])
    try:
        return float(term)
    except ValueError:
        raise KeyError(f"claim term {term!r} is neither a setting ({sorted(values)}) nor a number") from None


def check_claim(claim: str, values: Mapping[str, float], tol: float = 0.05) -> bool:
    """Evaluate one claim (``"A < B"``, ``"A ~ B"``, ``"A >= 0.5"``) on ``values``."""
    m = _CLAIM_RE.match(claim)
    if not m:
        raise ValueError(f"cannot read claim {claim!r}; expected 'A < B', 'A <= B', 'A > B', 'A >= B' or 'A ~ B'")
    lhs, op, rhs = m.groups()
    a, b = _value(lhs, values), _value(rhs, values)
    if math.isnan(a) or math.isnan(b):
        return False
    return bool(_OPS[op](a, b, tol))


def _ranks(values: Mapping[str, float], better: str) -> dict[str, int]:
    """1-based competition ranks: tied values share the best rank of the tie ("1, 1, 3"), so a tie
    in our run does not count as reproducing a strict order of the paper (before, the tie was
    broken by the order of the settings, which could make such a claim hold by accident)."""
    sign = -1.0 if better == "higher" else 1.0
    return {k: 1 + sum(sign * values[j] < sign * values[k] for j in values) for k in values}


def compare(paper: PaperTable | Mapping[str, float], ours: Mapping[str, float], claims: Iterable[str] = (),
            tol: float = 0.05, strict: bool = True) -> pd.DataFrame:
    """A paper-vs-ours table: one row per setting, columns ``paper``, ``ours``, ``diff``,
    ``claim`` and ``holds`` (``True``/``False``, or ``<NA>`` where the row states no claim).

    A claim ``"A op B"`` is attached to the row of ``A``. ``"lower is better"`` (or
    ``"higher is better"``) attaches to every row and holds where our rank equals the paper's.
    With ``strict``, a claim that is false on the paper's own numbers raises ``ValueError``.
    """
    values = paper.values if isinstance(paper, PaperTable) else paper
    unknown = set(ours) - set(values)
    if unknown:
        raise KeyError(f"ours has settings {sorted(unknown)} that the paper table lacks ({sorted(values)})")
    rows = []
    rank_claim = None
    row_claims: dict[str, list[str]] = {}
    for c in claims:
        key = c.strip().lower()
        if key in _RANK_CLAIMS:
            rank_claim = _RANK_CLAIMS[key]
            continue
        m = _CLAIM_RE.match(c)
        if not m:
            raise ValueError(f"cannot read claim {c!r}")
        lhs = m.group(1)
        if lhs not in values:
            raise KeyError(f"claim {c!r}: {lhs!r} is not a setting of the table ({sorted(values)})")
        if strict and not check_claim(c, values, tol):
            raise ValueError(f"claim {c!r} does not hold on the paper's own numbers {dict(values)}")
        row_claims.setdefault(lhs, []).append(c)
    ours_ranks = paper_ranks = None
    if rank_claim is not None:
        shared = {k: values[k] for k in values if k in ours}
        paper_ranks = _ranks(shared, rank_claim)
        ours_ranks = _ranks({k: ours[k] for k in shared}, rank_claim)
    for setting, pv in values.items():
        ov = ours.get(setting, np.nan)
        texts, verdicts = [], []
        for c in row_claims.get(setting, []):
            texts.append(c)
            verdicts.append(_only_ours(c, ours) and check_claim(c, ours, tol))
        if rank_claim is not None and setting in ours:
            texts.append(f"rank {paper_ranks[setting]} ({rank_claim} is better)")
            verdicts.append(not math.isnan(float(ov)) and ours_ranks[setting] == paper_ranks[setting])
        rows.append({
            "setting": setting,
            "paper": float(pv),
            "ours": float(ov),
            "diff": float(ov) - float(pv),
            "claim": "; ".join(texts),
            "holds": (all(verdicts) if verdicts else pd.NA),
        })
    df = pd.DataFrame(rows).set_index("setting")
    df["holds"] = df["holds"].astype("boolean")
    if isinstance(paper, PaperTable):
        df.attrs.update(ref=paper.ref, metric=paper.metric)
    return df


def _only_ours(claim: str, ours: Mapping[str, float]) -> bool:
    """Every setting a claim names must have been measured by us for the claim to be judged."""
    m = _CLAIM_RE.match(claim)
    assert m is not None
    for term in (m.group(1), m.group(3)):
        try:
            float(term)
        except ValueError:
            if term not in ours:
                return False
    return True


KINDS = ("paper claim", "sanity check", "construction")
"""What a finding is. A *paper claim* is something the paper reports that this run tests; a *sanity
check* tests our own tool (e.g. "our AP equals pycocotools"); a *construction* holds because the
synthetic world was built so, and is shown as a demonstration, never as a reproduced finding."""


def _check_kind(kind: str, where: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"{where}: kind {kind!r} is not one of {KINDS}")
    return kind


def claims_table(claims: Mapping[str, tuple]) -> pd.DataFrame:
    """A table of findings stated in words: ``{"KD helps": (kind, holds_here)}``.

    ``kind`` is one of :data:`KINDS`; ``holds_here`` is computed by the run (``None`` where the run
    could not judge it, shown as "–"). A third element, if given, is a short computed detail
    (e.g. ``"+3.1 points, SE 0.8"``) shown in a ``detail`` column.
    """
    rows = []
    for text, entry in claims.items():
        if not isinstance(entry, tuple) or len(entry) not in (2, 3):
            raise ValueError(f"finding {text!r}: expected (kind, holds) or (kind, holds, detail), got {entry!r}")
        kind, holds, *detail = entry
        _check_kind(kind, f"finding {text!r}")
        if holds is not None and not isinstance(holds, (bool, np.bool_)):
            raise TypeError(f"finding {text!r}: holds must be a bool or None, got {type(holds).__name__}")
        row = {"finding": text, "kind": kind, "holds": (pd.NA if holds is None else bool(holds))}
        if detail:
            row["detail"] = str(detail[0])
        rows.append(row)
    if not rows:
        raise ValueError("claims_table needs at least one finding")
    df = pd.DataFrame(rows).set_index("finding")
    if "detail" in df:
        df["detail"] = df["detail"].fillna("")
    df["holds"] = df["holds"].astype("boolean")
    return df


class Markdown(str):
    """A string that a notebook renders as Markdown (and prints as itself elsewhere)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def mean_std(values: Iterable[float], fmt: str = ".1f", std_fmt: str | None = None) -> str:
    """``"m ± s"`` of ``values`` (sample std, ddof = 1) for a table cell or a sentence, or just
    ``"m"`` for a single value (one seed has no spread)."""
    v = np.asarray(list(values), float)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    if v.size == 1:
        return f"{v.mean():{fmt}}"
    return f"{v.mean():{fmt}} ± {v.std(ddof=1):{std_fmt or fmt}}"


def say(condition: bool | None, if_true: str, if_false: str, if_unknown: str | None = None,
        **values: Any) -> Markdown:
    """The one way a notebook states this run's outcome: a sentence chosen by a computed condition.

    Both branches are written by the author and must be true to the facts when chosen; ``values``
    fill ``{placeholders}`` in either (``say(gap > 0, "KD wins by {gap:.1f} mm.", "KD loses by
    {neg:.1f} mm.", gap=gap, neg=-gap)``). ``condition=None`` (the run could not judge) picks
    ``if_unknown``, which must then be given.
    """
    if condition is None or condition is pd.NA:  # pd.NA: a "holds" cell the run could not judge
        if if_unknown is None:
            raise ValueError("say: the condition is None (not judged) and no if_unknown sentence was given")
        chosen = if_unknown
    elif isinstance(condition, (bool, np.bool_)):
        chosen = if_true if condition else if_false
    else:
        raise TypeError(f"say: condition must be a bool or None, got {type(condition).__name__}")
    try:
        return Markdown(chosen.format(**values))
    except KeyError as err:
        raise KeyError(f"say: the sentence names {{{err.args[0]}}} but no such value was given "
                       f"(values: {sorted(values)})") from None


def paragraph(*sentences: str) -> Markdown:
    """Join computed sentences (from :func:`say`) into one Markdown paragraph."""
    return Markdown(" ".join(s.strip() for s in sentences if s and s.strip()))


_MARKS = {True: "✓", False: "✗"}


def findings_summary(*tables: pd.DataFrame) -> Markdown:
    """The summary section's findings, rendered from the run's ``findings`` table(s) (the output
    of :func:`claims_table`): one bullet a finding with its verdict and kind."""
    lines = []
    for df in tables:
        if "holds" not in df or "kind" not in df:
            raise ValueError("findings_summary takes claims_table() outputs (columns 'kind' and 'holds')")
        for text, row in df.iterrows():
            holds = row["holds"]
            mark = "–" if pd.isna(holds) else _MARKS[bool(holds)]
            verdict = {"✓": "holds", "✗": "does not hold", "–": "not judged"}[mark]
            d = row.get("detail") if "detail" in df else None
            detail = f" ({d})" if isinstance(d, str) and d else ""  # NaN where concatenated tables lack it
            lines.append(f"- {mark} *{row['kind']}*: {text}{detail}: **{verdict}**.")
    if not lines:
        raise ValueError("findings_summary: no findings given")
    return Markdown("\n".join(lines))


_TABLE_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em;"},
    {"selector": "th, td", "props": "padding: 0.3em 0.7em; border: 1px solid #d0d7de;"},
    {"selector": "th", "props": "background: #f6f8fa; font-weight: 600; text-align: center;"},
    {"selector": "td", "props": "text-align: right; font-variant-numeric: tabular-nums;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; padding: 0.3em 0; color: #57606a;"},
]
_FAILED_ROW = "background-color: #fde8e8;"  # a row whose finding does not hold (✗)
_KIND_CAPTION = ("kind: a paper claim tests what the paper reports; a sanity check tests our own tool; "
                 "a construction holds because the synthetic world was built so (a demonstration, "
                 "not a reproduced finding). holds: ✓ / ✗ computed by this run, – not judged.")


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _decimals(values: pd.Series, precision: int) -> int | None:
    """Decimals for a column's floats: 0 when every value is a whole number, fewer for large
    magnitudes (a float32 30.299999 prints as 30.30); ``None`` when the column holds no floats."""
    floats = [float(v) for v in values if isinstance(v, (float, np.floating)) and not _missing(v)]
    if not floats:
        return None
    if all(abs(v - round(v)) < 1e-9 for v in floats):  # integers stored as floats (counts, sizes)
        return 0
    big = max(abs(v) for v in floats)
    return min(precision, 1 if big >= 100 else 2 if big >= 10 else precision)


def style(df: pd.DataFrame, precision: int = 3, transpose: bool = False, caption: str | None = None):
    """A ``Styler`` for the book: padding and borders, the index as a first column, numbers
    formatted per column (whole numbers as integers, floats rounded by magnitude), "–" for a
    missing value (e.g. the std of a single seed), ``holds`` as ✓ / ✗ / – with ✗ rows marked, and
    a caption that explains ``kind`` in a findings table.

    ``transpose=True`` shows the table with rows and columns swapped (a wide table of few rows
    fits the page's column that way). The look comes from inline table styles (Jupyter, Colab)
    and from ``book/_static/cvtutor.css`` (class ``cvtutor-table``, the built book).
    """
    shown = df.reset_index() if (df.index.name is not None or not isinstance(df.index, pd.RangeIndex)) else df
    failed = []
    if "holds" in shown.columns:
        failed = [i for i, v in enumerate(shown["holds"]) if not _missing(v) and not bool(v)]
    if transpose:
        first = shown.columns[0]
        shown = shown.set_index(first).T
        shown.index.name, shown.columns.name = first, None
        shown = shown.reset_index()
    decimals = {c: _decimals(shown[c], precision) for c in shown.columns}

    def cell(column: str):
        marks = column == "holds"

        def fmt(v: Any) -> str:
            if _missing(v):
                return "–"
            if isinstance(v, (bool, np.bool_)):
                return ("✓" if v else "✗") if marks or transpose else str(bool(v))
            if marks:
                return "✓" if bool(v) else "✗"
            if isinstance(v, (int, np.integer)):
                return str(int(v))
            if isinstance(v, (float, np.floating)):
                d = decimals[column] if decimals[column] is not None else precision
                return f"{float(v):,.{d}f}" if abs(v) >= 10_000 else f"{float(v):.{d}f}"
            return str(v)
        return fmt

    styler = shown.style.format({c: cell(c) for c in shown.columns}).hide(axis="index")
    styler = styler.set_table_styles(_TABLE_STYLES).set_table_attributes('class="cvtutor-table"')
    text_cols = [c for c in shown.columns if c != "holds" and decimals[c] is None
                 and not pd.api.types.is_numeric_dtype(shown[c])]
    if text_cols:  # words read from the left; numbers stay right-aligned
        styler = styler.set_properties(subset=text_cols, **{"text-align": "left"})
    if failed and not transpose:
        styler = styler.apply(lambda row: [_FAILED_ROW if row.name in failed else ""] * len(row), axis=1)
    text = caption
    if text is None and "ref" in df.attrs:
        text = f"{df.attrs['ref']}: {df.attrs.get('metric', '')}"
    if "kind" in df.columns and "holds" in df.columns:
        text = f"{text} · {_KIND_CAPTION}" if text else _KIND_CAPTION
    if text:
        styler = styler.set_caption(text)
    return styler


# --------------------------------------------------------------------------------------------
# results files
# --------------------------------------------------------------------------------------------
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _device_name(device: Any) -> str:
    """``"cpu"``, or a CUDA device with its GPU's name (``"cuda:0 (NVIDIA H100 80GB HBM3)"``)."""
    import torch

    name = str(device)
    try:
        if torch.device(device).type == "cuda" and torch.cuda.is_available():
            name = f"{name} ({torch.cuda.get_device_name(torch.device(device))})"
    except (RuntimeError, TypeError):  # not a torch device name: keep the string
        pass
    return name


def run_metadata(slug: str, profile: str, device: Any, seed: int, wall_time_s: float | None = None,
                 seeds: Iterable[int] | None = None, source: str | None = None) -> dict[str, Any]:
    """What a results file records about the run that produced it: ``seed`` is the run's seed,
    ``seeds`` the seeds its configuration trained (default ``[seed]``), ``source`` what wrote it
    (``"notebook"`` or ``"python -m cvtutor run"``)."""
    import torch

    import cvtutor

    return {
        "slug": slug,
        "profile": profile,
        "device": _device_name(device),
        "seed": int(seed),
        "seeds": [int(s) for s in (seeds if seeds is not None else (seed,))],
        "source": source,
        "cvtutor_version": cvtutor.__version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "wall_time_s": wall_time_s,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _encode(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return {"__dataframe__": json.loads(obj.to_json(orient="split", default_handler=str)),
                "index_name": obj.index.name}
    if isinstance(obj, pd.Series):
        return _encode(obj.to_frame())
    if isinstance(obj, Mapping):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.ndarray):
        return _encode(obj.tolist())
    if obj is pd.NA:
        return None
    if hasattr(obj, "item") and callable(obj.item):  # torch / numpy scalars
        return _encode(obj.item())
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a results file; use dicts, lists, numbers, "
                    "strings or DataFrames")


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict) and "__dataframe__" in obj:
        d = obj["__dataframe__"]
        df = pd.DataFrame(d["data"], index=d["index"], columns=d["columns"])
        df.index.name = obj.get("index_name")
        return df
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def save_results(results: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, Any]) -> Path:
    """Write ``{"metadata": ..., "results": ...}`` as JSON (atomically); DataFrames survive a round trip."""
    required = {"slug", "profile", "device", "seed"}
    if not required <= set(metadata):
        raise ValueError(f"metadata needs the keys {sorted(required)}; got {sorted(metadata)} "
                         "(build it with report.run_metadata)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"metadata": _encode(metadata), "results": _encode(results)}, indent=1))
    os.replace(tmp, path)
    return path


def load_results(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read what :func:`save_results` wrote: ``(results, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "results" not in data or "metadata" not in data:
        raise ValueError(f"{path} is not a cvtutor results file (expected keys 'metadata' and 'results')")
    return _decode(data["results"]), data["metadata"]


@dataclass
class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    seconds: float = 0.0
    _t0: float = field(default=0.0, repr=False)

    def __enter__(self) -> "Stopwatch":
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._t0


# --------------------------------------------------------------------------------------------
# a chapter's results for the book's scoreboard (book/scoreboard.md, cvtutor.scoreboard)
# --------------------------------------------------------------------------------------------
RESULTS_ENV = "CVTUTOR_RESULTS"
"""Environment variable naming the results folder (``tests/run.sh`` sets it for the build)."""
_STARTED = time.perf_counter()  # the notebook's setup cell imports this module: its run starts here


def results_dir(start: str | os.PathLike | None = None) -> Path:
    """The results folder: ``$CVTUTOR_RESULTS`` if set; else ``results/`` of the book checkout that
    ``start`` (default: the working directory) lies in, the nearest folder above holding
    ``_toc.yml`` (git ignores ``results/``); else ``results/`` under ``start`` (on Colab, say)."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "results"
    return here / "results"


def results_filename(slug: str, profile: str, seed: int) -> str:
    """``<slug>-<profile>-seed<seed>.json``: one results file per chapter, profile and seed."""
    return f"{slug}-{profile}-seed{int(seed)}.json"


def _findings_frame(findings: pd.DataFrame | Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One findings table from one or several :func:`claims_table` outputs (checked)."""
    tables = [findings] if isinstance(findings, pd.DataFrame) else list(findings)
    if not tables or not all(isinstance(t, pd.DataFrame) for t in tables):
        raise TypeError("findings: expected a claims_table() DataFrame or a list of them")
    for t in tables:
        if not {"kind", "holds"} <= set(t.columns):
            raise ValueError("findings: expected claims_table() outputs (columns 'kind' and "
                             f"'holds'), got columns {list(t.columns)}")
    df = pd.concat(tables)
    if "detail" in df:
        df["detail"] = df["detail"].fillna("")
    dup = df.index[df.index.duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"findings: each finding must be stated once; repeated: {dup}")
    for text, kind in df["kind"].items():
        _check_kind(kind, f"finding {text!r}")
    return df


def save_notebook_results(slug: str, rt: Any, findings: pd.DataFrame | Iterable[pd.DataFrame],
                          tables: Mapping[str, pd.DataFrame] | None = None, config: Any = None,
                          folder: str | os.PathLike | None = None,
                          wall_time_s: float | None = None) -> Path:
    """Save a chapter's run for the book's scoreboard: the last code cell of its notebook::

        saved = report.save_notebook_results("tide", rt, findings, tables={"t2": t2}, config=cfg)

    ``rt`` is the notebook's :func:`cvtutor.setup` runtime (profile, device, seed); ``findings``
    its ``findings`` table (:func:`claims_table`, or a list of them); ``tables`` the paper-vs-ours
    tables (:func:`compare`) by name; ``config`` the run's ``Config`` (its ``seeds`` are recorded).
    Writes :func:`results_filename` under ``folder`` (default :func:`results_dir`) with
    :func:`run_metadata`; the wall time defaults to the time since the setup cell imported
    ``cvtutor.report``. Prints where it wrote, relative to the working directory.
    """
    df = _findings_frame(findings)
    tables = dict(tables or {})
    bad = [name for name, t in tables.items() if not isinstance(t, pd.DataFrame)]
    if bad:
        kinds = [type(tables[b]).__name__ for b in bad]
        raise TypeError(f"tables: expected DataFrames by name, got {kinds} for {bad}")
    seeds = getattr(config, "seeds", None)
    if wall_time_s is None:
        wall_time_s = time.perf_counter() - _STARTED
    meta = run_metadata(slug, rt.profile, rt.device, rt.seed, wall_time_s=wall_time_s,
                        seeds=None if seeds is None else list(seeds), source="notebook")
    if config is not None:
        meta["config"] = type(config).__qualname__
    path = save_results({"findings": df, "tables": tables}, Path(folder or results_dir()) /
                        results_filename(slug, rt.profile, rt.seed), meta)
    n = len(tables)
    print(f"saved {len(df)} findings and {n} table{'s' * (n != 1)} to {os.path.relpath(path)}")
    return path
