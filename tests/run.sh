#!/usr/bin/env bash
# The README's test command. In order:
#   1. the unit tests (tests/, except the browser test);
#   2. every notebook executed once, by nbmake, with the fast profile and a time-out, on a staged
#      copy of the book under _book/ (so the executed outputs never land in notebooks/);
#   3. the scoreboard read from the results files the notebooks saved (in $stage/results, beside
#      any result files of results/, e.g. full-profile runs from a GPU), then the book built from
#      those executed notebooks (no second execution; the build renders book/scoreboard.md);
#   4. the built book opened in headless Chromium with the network off.
# It stops at the first failing stage. CVTUTOR_TEST_JOBS sets the parallel workers (default 2).
# Stage 2 ends with a table of each notebook's execution time (also in _book/notebook_times.tsv,
# which tests/test_notebooks.py checks against the 60 s budget).
#
#   bash tests/run.sh --smoke   executes every notebook with CVTUTOR_PROFILE=smoke (full's code
#                               paths at toy size) and stops: no unit tests, no book. Not part of
#                               the default run.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=fast
if [[ "${1:-}" == "--smoke" ]]; then
    profile=smoke
elif [[ -n "${1:-}" ]]; then
    echo "usage: bash tests/run.sh [--smoke]" >&2
    exit 2
fi

jobs=${CVTUTOR_TEST_JOBS:-2}
timeout=${CVTUTOR_NOTEBOOK_TIMEOUT:-600}
stage=_book  # not under _build: nbmake skips any path with a _build part
export CVTUTOR_PROFILE=$profile CVTUTOR_PROGRESS=text PYTHONHASHSEED=0
# each notebook saves its findings here (report.save_notebook_results); the book's scoreboard reads them
export CVTUTOR_RESULTS="$PWD/$stage/results"
# one torch thread per worker: $jobs workers share the cores, and oversubscribed threads make small
# networks many times slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

times_table() {  # junit xml of nbmake -> one line a notebook: seconds, path; sorted, printed and saved
    python - "$1" "$2" <<'PY'
import sys, xml.etree.ElementTree as ET
junit, out = sys.argv[1:]
def path(case):  # nbmake's classname is the path with dots: notebooks.hands.hand_world.ipynb
    name = case.get("classname") or case.get("name")
    stem = name[:-len(".ipynb")] if name.endswith(".ipynb") else name
    return stem.replace(".", "/") + ".ipynb"
rows = sorted(((float(c.get("time", 0)), path(c)) for c in ET.parse(junit).iter("testcase")), reverse=True)
with open(out, "w") as f:
    f.write("seconds\tnotebook\n")
    for t, name in rows:
        f.write(f"{t:.1f}\t{name}\n")
print(f"{'seconds':>8}  notebook")
for t, name in rows:
    print(f"{t:8.1f}  {name}")
if rows:
    ts = sorted(t for t, _ in rows)
    print(f"{'median':>8}  {ts[len(ts) // 2]:.1f} s over {len(ts)} notebooks (table in {out})")
PY
}

run_notebooks() {
    rm -rf "$stage"
    mkdir -p "$stage"
    cp -r _config.yml _toc.yml README.md book notebooks "$stage"/
    mkdir -p "$CVTUTOR_RESULTS"
    if compgen -G "results/*.json" > /dev/null; then  # results dropped in by hand (full runs on a GPU)
        cp results/*.json "$CVTUTOR_RESULTS"/
    fi
    local status=0
    python -m pytest --nbmake --nbmake-timeout="$timeout" --overwrite -n "$jobs" -p no:cacheprovider \
        --rootdir="$stage" -o addopts="" -q --junitxml="$stage/notebooks.junit.xml" "$stage"/notebooks || status=$?
    # the fast table is the one tests/test_notebooks.py judges against the 60 s budget; a smoke run keeps its own
    local table="$stage/notebook_times.tsv"
    [[ "$profile" == smoke ]] && table="$stage/notebook_times-smoke.tsv"
    [[ -f "$stage/notebooks.junit.xml" ]] && times_table "$stage/notebooks.junit.xml" "$table"
    return $status
}

if [[ "$profile" == smoke ]]; then
    echo "== notebooks (nbmake, smoke profile, ${timeout}s time-out each)"
    run_notebooks
    exit 0
fi

echo "== 1/4 unit tests"
python -m pytest tests -m "not browser" -n "$jobs" -q

echo "== 2/4 notebooks (nbmake, fast profile, ${timeout}s time-out each)"
run_notebooks

echo "== 3/4 scoreboard and book (from the executed notebooks)"
python -m cvtutor scoreboard --results "$CVTUTOR_RESULTS"  # fails on a malformed results file, naming it
python - "$stage/_config.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
cfg = yaml.safe_load(open(path))
cfg["execute"]["execute_notebooks"] = "off"
yaml.safe_dump(cfg, open(path, "w"), sort_keys=False)
PY
jupyter-book build "$stage" --warningiserror --keep-going

echo "== 4/4 browser test of the built book"
CVTUTOR_BOOK_HTML="$stage/_build/html" CVTUTOR_NOTEBOOK_TIMES="$stage/notebook_times.tsv" \
    python -m pytest tests/test_book_html.py tests/test_notebooks.py::test_notebook_time_budget -q
CVTUTOR_BOOK_HTML="$stage/_build/html" python -m pytest tests/test_browser.py -m browser -q
