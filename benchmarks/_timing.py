"""The one timer of the benchmark scripts: run ``fn`` once to warm up, then time a second call.

On CUDA the clock is wall time between two synchronisations and the peak is the device's allocated
memory; on the CPU the clock is wall time, or this process's CPU time with ``cpu_time=True`` (other
jobs on a shared machine inflate it less), and the peak is the process's maximum resident set.
Scripts in this folder import it as ``from _timing import timed`` (their folder is on ``sys.path``);
:func:`with_rates` and :func:`rate_table_main` give the scripts that print a rate table their rows and command line.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], device: str, cpu_time: bool = False) -> tuple[float, float]:
    """``(seconds, peak MiB)`` of one call of ``fn`` after a warm-up call, on ``device``."""
    cuda = str(device).startswith("cuda")
    fn()  # warm-up (kernels, caches, lazily built tables)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    clock = time.process_time if (cpu_time and not cuda) else time.perf_counter
    t0 = clock()
    fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = clock() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return seconds, peak


def with_rates(rows: list[dict], device: str, profile: str, digits: int = 1) -> list[dict]:
    """Each row ``{"what", "items", "seconds"}`` gets its ``device``, ``profile`` and
    ``items_per_s``; seconds rounded to 0.1 ms. Returns the rows."""
    for r in rows:
        r.update(device=device, profile=profile, items_per_s=round(r["items"] / r["seconds"], digits))
        r["seconds"] = round(r["seconds"], 4)
    return rows


def rate_table_main(bench: Callable[[str, str, int], list[dict]], description: str | None,
                    option: str = "--n", default: int = 32) -> None:
    """The command line of a script whose ``bench(device, profile, size)`` returns
    :func:`with_rates` rows: one integer option, every device (CPU, CUDA when present) and both
    profiles (``fast``, ``full``), one printed table."""
    import argparse

    import pandas as pd

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument(option, type=int, default=default)
    size = getattr(ap.parse_args(), option.lstrip("-").replace("-", "_"))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for d in devices for p in ("fast", "full") for r in bench(d, p, size)]
    cols = ["device", "profile", "what", "items", "seconds", "items_per_s"]
    print(pd.DataFrame(rows)[cols].to_string(index=False))


def print_phases(records: list[dict], batch_size: int | None = None, width: int = 24) -> float:
    """Print each :func:`cvtutor.train.measure_phases` record (ms/step, and samples/s with
    ``batch_size``) and return the extrapolated fit time ``Σ planned_steps · s_per_step`` (s)."""
    total = 0.0
    for r in records:
        total += r["planned_steps"] * r["s_per_step"]
        rate = f" {batch_size / r['s_per_step']:8.0f} samples/s" if batch_size else ""
        print(f"  {r['desc']:<{width}} {r['s_per_step'] * 1e3:8.1f} ms/step{rate}")
    return total
