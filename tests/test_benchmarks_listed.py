"""Every benchmark script is listed in benchmarks/README.md (the one index of what can be measured)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_benchmark_script_is_in_the_readme_table():
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    scripts = [p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    assert scripts, "no benchmark scripts found"
    missing = sorted(s for s in scripts if f"| `{s}" not in readme)
    assert not missing, f"benchmarks/README.md lists no row for {missing}"
    rows = [line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")]
    twice = sorted({r for r in rows if rows.count(r) > 1})
    assert not twice, f"benchmarks/README.md lists these twice: {twice}"
