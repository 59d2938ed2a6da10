"""The one timer of the benchmark scripts: run ``fn`` once to warm up, then time a second call.

On CUDA the clock is wall time between two synchronisations and the peak is the device's allocated
memory; on the CPU the clock is wall time, or this process's CPU time with ``cpu_time=True`` (other
jobs on a shared machine inflate it less), and the peak is the process's maximum resident set.
Scripts in this folder import it as ``from _timing import timed`` (their folder is on ``sys.path``).
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
