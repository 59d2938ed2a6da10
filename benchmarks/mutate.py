"""A small mutation tester: ``python benchmarks/mutate.py FILE TESTFILE [--list] [--timeout S]``.

Each mutant changes ONE thing in FILE's AST: a comparison operator (< <= > >= == != swapped with
its neighbours), an arithmetic operator (+ - * / swapped), ``and``/``or``, ``True``/``False``, or an
integer constant +1/-1 (off by one). For each mutant the file is rewritten in place, TESTFILE is
run with ``pytest -x -q``, and the mutant counts as killed if the tests fail (or time out). The
original file is always restored. Prints the survivors and the score.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import subprocess
import sys
from pathlib import Path

CMP_SWAPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt],
             ast.GtE: [ast.Gt, ast.LtE], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq]}
BIN_SWAPS = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div], ast.Div: [ast.Mult]}


def _docstring_ids(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def mutants(source: str):
    """Yield ``(description, mutated_source)`` for every single-point mutation of ``source``."""
    tree = ast.parse(source)
    points = []
    skip = _docstring_ids(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new in CMP_SWAPS.get(type(op), []):
                    points.append((node, "cmp", i, new))
        elif isinstance(node, ast.BinOp) and type(node.op) in BIN_SWAPS:
            for new in BIN_SWAPS[type(node.op)]:
                points.append((node, "bin", None, new))
        elif isinstance(node, ast.BoolOp):
            points.append((node, "bool", None, ast.Or if isinstance(node.op, ast.And) else ast.And))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            if node.value is True or node.value is False:
                points.append((node, "const", None, not node.value))
            elif type(node.value) is int:
                points.append((node, "const", None, node.value + 1))
                points.append((node, "const", None, node.value - 1))
    index = {id(n): k for k, n in enumerate(ast.walk(tree))}
    for node, kind, i, new in points:
        t2 = copy.deepcopy(tree)
        target = list(ast.walk(t2))[index[id(node)]]
        if kind == "cmp":
            old = type(target.ops[i]).__name__
            target.ops[i] = new()
            desc = f"{old} -> {new.__name__}"
        elif kind in ("bin", "bool"):
            old = type(target.op).__name__
            target.op = new()
            desc = f"{old} -> {new.__name__}"
        else:
            old = target.value
            target.value = new
            desc = f"{old!r} -> {new!r}"
        yield f"line {node.lineno}: {desc}", ast.unparse(t2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("testfile")
    ap.add_argument("--list", action="store_true", help="only list the mutants")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--lines", help="only mutants on these lines of FILE, e.g. 47,379 (to re-check survivors)")
    args = ap.parse_args(argv)
    path = Path(args.file)
    original = path.read_text()
    muts = list(mutants(original))
    if args.lines:
        keep = {f"line {n.strip()}:" for n in args.lines.split(",")}
        muts = [(d, src) for d, src in muts if d.split(" ", 2)[0] + " " + d.split(" ", 2)[1] in keep]
    if args.list:
        for d, _ in muts:
            print(d)
        print(f"{len(muts)} mutants")
        return 0
    killed, alive = 0, []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        for k, (desc, src) in enumerate(muts, 1):
            path.write_text(src)
            try:
                rc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o",
                                     "addopts=", args.testfile], capture_output=True, timeout=args.timeout,
                                    env=env).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            if rc != 0:
                killed += 1
            else:
                alive.append(desc)
            print(f"[{k}/{len(muts)}] {'killed' if rc != 0 else 'ALIVE '} {desc}", flush=True)
    finally:
        path.write_text(original)
    print("\nsurvivors:\n  " + "\n  ".join(alive) if alive else "\nno survivors")
    print(f"score: {killed}/{len(muts)} killed ({100 * killed / max(len(muts), 1):.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
