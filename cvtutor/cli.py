"""``python -m cvtutor``: list the tutorials, run one paper's miniature, print the README table.

    python -m cvtutor list
    python -m cvtutor run getting_started --profile fast --seed 0 --out results/
    python -m cvtutor table            # the README's table of papers (Markdown)
    python -m cvtutor table --write README.md [--results results/]
    python -m cvtutor scoreboard [--results results/]   # every finding of every done chapter
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvtutor import papers, report, runtime, scoreboard


def _list() -> int:
    width = max(len(t.slug) for t in papers.TUTORIALS)
    for t in papers.TUTORIALS:
        print(f"{t.id:4} {t.slug:{width}}  {t.status:11}  {t.title}")
    counts = {s: sum(t.status == s for t in papers.TUTORIALS) for s in papers.STATUSES}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def _run(slug: str, profile: str, seed: int, out: str) -> int:
    module = papers.load(slug)
    resolved = runtime.resolve_profile(profile)
    rt = runtime.setup(resolved, seed)
    config = module.Config.for_profile(resolved)
    with report.Stopwatch() as sw:
        results = module.run(config)
    meta = report.run_metadata(slug, rt.profile, rt.device, seed, wall_time_s=sw.seconds,
                               seeds=getattr(config, "seeds", None), source="python -m cvtutor run")
    name = report.results_filename(slug, rt.profile, seed)
    path = report.save_results(results, Path(out) / name, meta)
    print(f"wrote {path} ({sw.seconds:.1f} s)")
    return 0


def _held(results: str | None) -> dict[str, str]:
    """The README column "findings held (fast)" from a results folder (default: the book's)."""
    return scoreboard.held_counts(scoreboard.collect(results or report.results_dir()))


def _scoreboard(results: str | None) -> int:
    folder = Path(results) if results else report.results_dir()
    found = scoreboard.collect(folder)
    print(f"results folder: {folder} ({len(found)} fast/full results of the scoreboard)")
    print(scoreboard.text_table(found))
    return 0


def _write_table(readme: Path, results: str | None = None) -> int:
    start, end = "<!-- papers:start -->", "<!-- papers:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no '{start}' ... '{end}' markers")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{start}\n{papers.status_table(_held(results))}\n{end}{tail}")
    print(f"updated the table in {readme}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvtutor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the tutorials, their slugs and status")
    table = sub.add_parser("table", help="the README's table of tutorials, in Markdown")
    table.add_argument("--write", metavar="README", help="replace the table between the markers of this README")
    results_help = "results folder (default: $CVTUTOR_RESULTS, else the book checkout's results/)"
    table.add_argument("--results", metavar="DIR", help=results_help)
    board = sub.add_parser("scoreboard", help="every finding of every done chapter (results files)")
    board.add_argument("--results", metavar="DIR", help=results_help)
    run = sub.add_parser("run", help="run one paper's miniature and write its results JSON")
    run.add_argument("slug")
    run.add_argument("--profile", default="auto", help=f"one of {runtime.PROFILES} (default auto)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", default="results", help="folder for the results JSON (default ./results)")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # the reader closed the pipe (``python -m cvtutor list | head -1``): stop quietly. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (e.g. captured in a test)
            pass
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "list":
            return _list()
        if args.command == "table":
            if args.write:
                return _write_table(Path(args.write), args.results)
            print(papers.status_table(_held(args.results)))
            return 0
        if args.command == "scoreboard":
            return _scoreboard(args.results)
        return _run(args.slug, args.profile, args.seed, args.out)
    except (KeyError, ModuleNotFoundError, ValueError) as err:  # ResultsFileError is a ValueError
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"error: {msg}", file=sys.stderr)
        return 2
