"""Measure each chapter's ``full`` profile from a few steps of every training phase.

    python benchmarks/full_profile.py [--only SLUG ...] [--profile full|smoke|fast] [--steps 5]
                                      [--warmup 2] [--max-seconds 600] [--out benchmarks/results]

For each chapter marked done (or each ``--only``), a child process runs ``run(Config.<profile>())``
under :func:`cvtutor.train.measure_phases`: every ``fit`` call runs ``warmup + steps`` steps,
synchronised, and records its planned steps, s/step after warm-up, peak memory and (on CUDA) the
share of the timed wall time in which the GPU ran no kernel (it waited on the host). Everything
outside ``fit`` (data generation, evaluation, tables) runs in full and is timed as "non-fit".

    chapter total ~ non-fit time + sum over fit calls of planned_steps * s_per_step

The non-fit part runs on models trained only a few steps; its cost is the same computation (the
evaluation of a model costs the same whatever its weights), but a chapter whose evaluation loops
depend on training results may differ. A chapter that takes longer than ``--max-seconds`` is
reported as "timed out"; one that raises is reported with its error. Prints a Markdown table and
writes ``full_profile-<device>.json`` and ``.md`` into ``--out``, labelled with the device
("estimated on CPU" on a CPU).

On a CPU the run also goes through :class:`_gpu_model.GpuCostModel` (every aten operator priced at
stated H100-class rates: a roofline with a launch floor for the device, measured CPU time outside
operators plus a fixed cost per operator for the host; see ``benchmarks/_gpu_model.py``), so the
table carries a GPU estimate per chapter from stated rates beside the CPU measurement:

    GPU est. ~ max(kernel, host) of the non-fit work + sum over fit calls of
               planned_steps * max(kernel, host) per timed step
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path


def device_label() -> str:
    import torch

    from cvtutor.runtime import get_device

    dev = get_device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def child(slug: str, profile: str, steps: int, warmup: int, out: str, gpu_model: bool | None = None) -> int:
    """Run one chapter under measure_phases and write its record to ``out`` (JSON).

    ``gpu_model`` (default: on when the device is a CPU) prices the run with the stated-rate GPU
    model of ``_gpu_model.py`` and adds its segments to the record.
    """
    import contextlib

    from cvtutor import papers, runtime, train

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _gpu_model

    os.environ.pop("CVTUTOR_PROFILE", None)
    os.environ.setdefault("CVTUTOR_PROGRESS", "off")
    rec: dict = {"slug": slug, "profile": profile}
    try:
        module = papers.load(slug)
        rt = runtime.setup(profile, seed=0, verbose=False)
        make = getattr(module.Config, profile, None)
        if make is None:
            raise AttributeError(f"{slug}: Config has no {profile}()")
        config = make()
        if gpu_model is None:
            gpu_model = rt.device.type == "cpu"
        model = _gpu_model.GpuCostModel() if gpu_model else None
        t0 = time.perf_counter()
        with (model if model is not None else contextlib.nullcontext()):
            start = model.snapshot() if model is not None else None
            with train.measure_phases(steps=steps, warmup=warmup,
                                      probe=model.snapshot if model is not None else None) as phases:
                module.run(config)
            stop = model.snapshot() if model is not None else None
        total = time.perf_counter() - t0
        fit_wall = sum(p["fit_wall_s"] for p in phases)
        rec.update(device=str(rt.device), phases=phases, wall_s=total, non_fit_s=max(0.0, total - fit_wall),
                   status="ok")
        if model is not None:
            whole = _gpu_model.diff(start, stop)
            timed = {k: sum((p["probe"] or {}).get(k, 0.0) for p in phases) for k in whole if k != "overhead_s"}
            non_fit = {k: whole[k] - timed.get(k, 0.0) if k != "overhead_s" else whole[k] for k in whole}
            rec["gpu_model"] = {"constants": _gpu_model.CONSTANTS, "non_fit": _gpu_model.estimate_s(non_fit),
                                "whole_measured_run": whole}
            for p in phases:
                if p.get("probe"):
                    seg = _gpu_model.estimate_s({**p["probe"], "overhead_s": whole["overhead_s"]})
                    p["gpu_est_s_per_step"] = seg["est_s"] / max(1, p["timed_steps"])
                    p["gpu_bound"] = "device" if seg["kernel_s"] >= seg["host_s"] else "host"
    except Exception as err:  # reported per chapter, the others still run
        rec.update(status="error", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(limit=6))
    Path(out).write_text(json.dumps(rec, indent=1, default=str))
    return 0


def estimate(rec: dict) -> dict:
    """Add ``train_est_s`` and ``total_est_s`` to a child's record."""
    if rec.get("status") != "ok":
        return rec
    train_s = sum(p["planned_steps"] * (p["s_per_step"] or 0.0) for p in rec["phases"])
    rec["train_est_s"] = train_s
    rec["total_est_s"] = rec["non_fit_s"] + train_s
    rec["planned_steps"] = sum(p["planned_steps"] for p in rec["phases"])
    mems = [p["peak_mem_mb"] for p in rec["phases"] if p["peak_mem_mb"] is not None]
    rec["peak_mem_mb"] = max(mems) if mems else None
    waits = [(p["gpu_wait_share"], p["planned_steps"] * (p["s_per_step"] or 0.0)) for p in rec["phases"]
             if p["gpu_wait_share"] is not None]
    weight = sum(w for _, w in waits)
    rec["gpu_wait_share"] = sum(s * w for s, w in waits) / weight if waits and weight > 0 else None
    if "gpu_model" in rec:
        rec["gpu_est_s"] = rec["gpu_model"]["non_fit"]["est_s"] + sum(
            p["planned_steps"] * p.get("gpu_est_s_per_step", 0.0) for p in rec["phases"])
    return rec


def _fmt(v, spec=".1f", none="n/a"):
    return none if v is None else format(v, spec)


def markdown(records: list[dict], label: str, profile: str, steps: int, warmup: int) -> str:
    on_cpu = label.startswith("CPU")
    head = (f"# `{profile}` profile, {'estimated on ' + label if on_cpu else 'measured on ' + label}\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; each fit call timed over {steps} steps after "
            f"{warmup} warm-up steps, extrapolated to its planned steps; non-fit work run in full.\n\n")
    lines = ["| chapter | status | fit calls | planned steps | s/step (mean) | train est. (min) | non-fit (min) "
             "| total est. (min) | peak mem (MB) | GPU waits on host | H100 est. from stated rates (min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r.get("status") != "ok":
            lines.append(f"| {r['slug']} | {r.get('status')}: {str(r.get('error', ''))[:80]} | | | | | | | | | |")
            continue
        sps = [p["s_per_step"] for p in r["phases"] if p["s_per_step"]]
        lines.append(
            f"| {r['slug']} | ok | {len(r['phases'])} | {r['planned_steps']} | "
            f"{_fmt(sum(sps) / len(sps) if sps else None, '.4f')} | {_fmt(r['train_est_s'] / 60)} | "
            f"{_fmt(r['non_fit_s'] / 60)} | {_fmt(r['total_est_s'] / 60)} | {_fmt(r['peak_mem_mb'], '.0f')} | "
            f"{_fmt(r['gpu_wait_share'] * 100 if r['gpu_wait_share'] is not None else None, '.0f')}"
            f"{'' if r['gpu_wait_share'] is None else ' %'} | "
            f"{_fmt(r['gpu_est_s'] / 60, '.2f') if 'gpu_est_s' in r else 'n/a'} |")
    foot = ""
    if any("gpu_est_s" in r for r in records):
        c = next(r["gpu_model"]["constants"] for r in records if "gpu_model" in r)
        foot = (f"\nH100 estimate: every aten operator priced as max({c['kernel_floor_s'] * 1e6:.0f} µs, FLOPs / "
                f"{c['flop_rate'] / 1e12:.0f} TFLOP/s, bytes / {c['bandwidth'] / 1e12:.1f} TB/s) on the device, "
                f"host = CPU time outside operators + {c['dispatch_s'] * 1e6:.0f} µs per operator, each segment "
                "max(device, host); stated rates, not a measurement (benchmarks/_gpu_model.py).\n")
    return head + "\n".join(lines) + "\n" + foot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", metavar="SLUG", help="measure only this chapter (repeatable)")
    ap.add_argument("--profile", default="full", choices=("full", "smoke", "fast"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=600.0, help="per chapter; slower ones are 'timed out'")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--child", metavar="SLUG", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.profile, args.steps, args.warmup, args.child_out)

    from cvtutor import papers

    slugs = args.only or [t.slug for t in papers.TUTORIALS if t.status == "done"]
    for s in slugs:
        papers.get(s)  # a typo fails here, clearly
    label = device_label()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for slug in slugs:
            out = Path(tmp) / f"{slug}.json"
            t0 = time.perf_counter()
            try:
                subprocess.run([sys.executable, __file__, "--child", slug, "--child-out", str(out), "--profile",
                                args.profile, "--steps", str(args.steps), "--warmup", str(args.warmup)],
                               timeout=args.max_seconds, check=False)
                rec = json.loads(out.read_text()) if out.is_file() else {
                    "slug": slug, "status": "error", "error": "the child process wrote no record"}
            except subprocess.TimeoutExpired:
                rec = {"slug": slug, "status": "timed out", "error": f"over {args.max_seconds:.0f} s"}
            rec["measure_wall_s"] = time.perf_counter() - t0
            records.append(estimate(rec))
            print(f"{slug}: {rec['status']} ({rec['measure_wall_s']:.0f} s)", file=sys.stderr, flush=True)
    md = markdown(records, label, args.profile, args.steps, args.warmup)
    print(md)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    stem = f"full_profile-{args.profile}-" + ("cpu" if label.startswith("CPU") else label.replace(" ", "_"))
    (outdir / f"{stem}.json").write_text(json.dumps({"device": label, "profile": args.profile, "steps": args.steps,
                                                     "warmup": args.warmup, "chapters": records}, indent=1, default=str))
    (outdir / f"{stem}.md").write_text(md)
    return 0 if all(r.get("status") == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
