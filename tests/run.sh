#!/usr/bin/env bash
# The README's test command. In order:
#   1. the unit tests (tests/, except the browser test);
#   2. every notebook executed once, by nbmake, with the fast profile and a time-out, on a staged
#      copy of the book under _book/ (so the executed outputs never land in notebooks/);
#   3. the book built from those executed notebooks (no second execution);
#   4. the built book opened in headless Chromium with the network off.
# It stops at the first failing stage. CVTUTOR_TEST_JOBS sets the parallel workers (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${CVTUTOR_TEST_JOBS:-2}
timeout=${CVTUTOR_NOTEBOOK_TIMEOUT:-600}
stage=_book  # not under _build: nbmake skips any path with a _build part
export CVTUTOR_PROFILE=fast CVTUTOR_PROGRESS=text PYTHONHASHSEED=0
# one torch thread per worker: $jobs workers share the cores, and oversubscribed threads make small
# networks many times slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

echo "== 1/4 unit tests"
python -m pytest tests -m "not browser" -n "$jobs" -q

echo "== 2/4 notebooks (nbmake, fast profile, ${timeout}s time-out each)"
rm -rf "$stage"
mkdir -p "$stage"
cp -r _config.yml _toc.yml README.md book notebooks "$stage"/
python -m pytest --nbmake --nbmake-timeout="$timeout" --overwrite -n "$jobs" -p no:cacheprovider \
    --rootdir="$stage" -o addopts="" -q "$stage"/notebooks

echo "== 3/4 book (from the executed notebooks)"
python - "$stage/_config.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
cfg = yaml.safe_load(open(path))
cfg["execute"]["execute_notebooks"] = "off"
yaml.safe_dump(cfg, open(path, "w"), sort_keys=False)
PY
jupyter-book build "$stage" --warningiserror --keep-going

echo "== 4/4 browser test of the built book"
CVTUTOR_BOOK_HTML="$stage/_build/html" python -m pytest tests -m browser -q
