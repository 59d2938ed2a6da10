"""A stated-rate model of what a run would cost on one H100-class GPU, measured on the CPU.

No GPU is lent to every session, so ``benchmarks/full_profile.py`` also prices each chapter's
``full`` run with this model while it runs on the CPU. A :class:`GpuCostModel` is a
``TorchDispatchMode``: every aten operator the run executes passes through it and is priced as

    kernel_s(op) = max(KERNEL_FLOOR_S, flops(op) / FLOP_RATE, bytes(op) / BANDWIDTH)

(a roofline with a launch floor; views and metadata ops launch no kernel and cost nothing on the
device), with ``flops`` from :data:`torch.utils.flop_counter.flop_registry` (matmuls,
convolutions, attention; other ops are priced by the bytes they read and write). The host side of
the same work is what the CPU spent outside torch operators (Python, numpy, scipy, gudhi...),
measured as process CPU time, plus a fixed eager-mode cost per operator:

    host_s = cpu_outside_ops + n_ops * DISPATCH_S

and a segment of the run (one training phase, or everything outside training) is estimated as
``max(kernel_s, host_s)``: CUDA launches are asynchronous, so the slower of the two sides bounds
the wall time. The constants are stated, not measured (no GPU here); the first GPU session
(``benchmarks/device_check.sh``) puts the measured times beside these estimates, which is how they
get checked. Tensors are priced at their CPU dtype (float32), while the GPU runs matmuls and
convolutions in bf16 autocast: on that side the model errs slow.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

#: Sustained matmul/conv rate assumed for small models: ~10 % of an H100's dense bf16 peak.
FLOP_RATE = 100e12
#: Sustained memory bandwidth assumed: ~60 % of an H100's 3.35 TB/s.
BANDWIDTH = 2.0e12
#: The shortest kernel (launch latency on the device side).
KERNEL_FLOOR_S = 3e-6
#: Host cost of one eager operator on a GPU machine (Python, dispatcher, launch).
DISPATCH_S = 10e-6

CONSTANTS = {"flop_rate": FLOP_RATE, "bandwidth": BANDWIDTH, "kernel_floor_s": KERNEL_FLOOR_S,
             "dispatch_s": DISPATCH_S}

_METADATA = {torch.ops.aten.size.default, torch.ops.aten.sym_size.default, torch.ops.aten.stride.default,
             torch.ops.aten.numel.default, torch.ops.aten.dim.default, torch.ops.prim.device.default,
             torch.ops.aten.is_contiguous.default, torch.ops.aten.storage_offset.default}


def _nbytes(tree: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tree_leaves(tree) if isinstance(t, torch.Tensor))


def op_cost(func: Any, args: tuple, kwargs: dict, out: Any) -> tuple[float, float, int]:
    """``(kernel_s, flops, bytes)`` of one executed operator under the stated rates."""
    if func in _METADATA or getattr(func, "is_view", False):
        return 0.0, 0.0, 0
    packet = func._overloadpacket
    flops = 0.0
    if packet in flop_registry:
        try:
            flops = float(flop_registry[packet](*args, **kwargs, out_val=out))
        except Exception:  # a formula that does not fit this overload: price by bytes only
            flops = 0.0
    nbytes = _nbytes((args, kwargs)) + _nbytes(out)
    return max(KERNEL_FLOOR_S, flops / FLOP_RATE, nbytes / BANDWIDTH), flops, nbytes


class GpuCostModel(TorchDispatchMode):
    """Count and price every operator run under it; :meth:`snapshot` gives running totals.

    Use as a context manager around the work to price. On entry :func:`calibrate` measures this
    mode's own per-operator bookkeeping, which is subtracted from the host side (``calibrate=False``
    skips it: used by :func:`calibrate` itself).
    """

    def __init__(self, calibrate: bool = True) -> None:
        super().__init__()
        self.calibrate = calibrate
        self.n_ops = 0
        self.kernel_s = 0.0
        self.flops = 0.0
        self.bytes = 0.0
        self.op_cpu_s = 0.0
        self.overhead_s = 0.0
        self.cpu0 = time.process_time()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        t0 = time.process_time()
        out = func(*args, **kwargs)
        self.op_cpu_s += time.process_time() - t0
        k, f, b = op_cost(func, args, kwargs, out)
        self.n_ops += 1
        self.kernel_s += k
        self.flops += f
        self.bytes += b
        return out

    def __enter__(self):
        if self.calibrate:
            self.overhead_s = calibrate()
        self.cpu0 = time.process_time()
        return super().__enter__()

    def snapshot(self) -> dict[str, float]:
        """Running totals: operators, device seconds, FLOPs, bytes, CPU seconds in and out of ops."""
        cpu = time.process_time() - self.cpu0
        return {"n_ops": self.n_ops, "kernel_s": self.kernel_s, "flops": self.flops, "bytes": self.bytes,
                "op_cpu_s": self.op_cpu_s, "cpu_s": cpu, "overhead_s": self.overhead_s}


def calibrate(n: int = 3000) -> float:
    """This mode's bookkeeping per operator, in CPU seconds (with the mode minus without)."""
    x = torch.ones(4)

    def work():
        t0 = time.process_time()
        for _ in range(n):
            x.add(1.0)
        return time.process_time() - t0

    work()
    base = min(work() for _ in range(3))
    with GpuCostModel(calibrate=False):
        timed = min(work() for _ in range(3))
    # the op's own CPU time is inside `base`, and inside probe.op_cpu_s when run under the mode
    return max(0.0, (timed - base) / n)


def diff(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """``b - a`` for two snapshots (the work done between them)."""
    return {k: b[k] - a[k] if k != "overhead_s" else b[k] for k in b}


def estimate_s(seg: dict[str, float]) -> dict[str, float]:
    """Device and host seconds of a segment (a :func:`diff` of snapshots) and their max."""
    host_outside = max(0.0, seg["cpu_s"] - seg["op_cpu_s"] - seg["n_ops"] * seg["overhead_s"])
    host = host_outside + seg["n_ops"] * DISPATCH_S
    return {"kernel_s": seg["kernel_s"], "host_s": host, "host_outside_ops_s": host_outside,
            "est_s": max(seg["kernel_s"], host)}
