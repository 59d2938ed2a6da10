"""ProxyBNN (E14): training samples per second of every scheme (the fast profile's binary MLP and
the full profile's Bi-Real ResNet-8 on 16-px images), basis constructions per second (ITQ, MSE),
and +-1 products per second as XNOR-popcount and as float matmul; CPU and CUDA when present.

Run: ``OMP_NUM_THREADS=1 python benchmarks/proxybnn.py [--steps 20]``. CPU rates are per CPU
second of this process (``time.process_time``); CUDA rates are wall-clock after a synchronise.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
import torch.nn.functional as F

from cvtutor.papers import proxybnn as P
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def train_rates(device: str, steps: int) -> list[dict]:
    """Forward + penalty + backward + Adam step of each scheme, ``steps`` batches per timed call."""
    rows = []
    nets = {
        "MLP 64-128-128-128-10 (fast)": (lambda s: P.BinaryMLP(64, 10, s, 128, 2), (128, 64)),
        "ResNet-8 16-32-64, 16 px (full)": (
            lambda s: P.BiRealResNet8(3, 20, s, 16),
            (256, 3, 16, 16),
        ),
    }
    for name, (make, shape) in nets.items():
        x = torch.rand(shape, device=device)
        y = torch.randint(0, 10, (shape[0],), device=device)
        for scheme in P.SCHEMES:
            model = make(scheme).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)

            def run(model=model, opt=opt):
                for _ in range(steps):
                    loss = F.cross_entropy(model(x), y)
                    if scheme in P.PROXY_SCHEMES:
                        loss = loss + 1e-5 * sum(
                            P.penalty(w.last_latent, w.n_filters) for w in P.proxy_layers(model)
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

            dt, peak = timed(run, device, cpu_time=True)
            rows.append(
                {
                    "device": device,
                    "what": f"train {name}",
                    "scheme": scheme,
                    "items_per_s": round(steps * shape[0] / dt),
                    "peak_MiB": round(peak),
                }
            )
    return rows


def basis_rates(device: str) -> list[dict]:
    """One basis construction (30 alternations) on a 128 x 128 (MLP) and 576 x 64 (conv) ``W'``."""
    rows = []
    for rows_, c in ((128, 128), (576, 64)):
        Wp = torch.tanh(0.1 * torch.randn(rows_, c, device=device))
        R0 = P.random_orthogonal(c, device="cpu").to(device)
        for name, fn in (
            ("ITQ", lambda: P.itq_basis(Wp, R0, 30)),
            ("MSE", lambda: P.mse_basis(Wp, 30)),
        ):
            dt, peak = timed(fn, device, cpu_time=True)
            rows.append(
                {
                    "device": device,
                    "what": f"{name} basis, W' {rows_} x {c}",
                    "scheme": "-",
                    "items_per_s": round(1 / dt, 1),
                    "peak_MiB": round(peak),
                }
            )
    return rows


def product_rates(device: str, k: int = 1024, m: int = 256, n: int = 256) -> list[dict]:
    """``m x n`` dot products of +-1 vectors of length ``k``: XNOR-popcount on packed bytes (as
    written, not a bit-serial kernel) and float32 matmul."""
    a = P.sgn(torch.randn(m, k, device=device))
    b = P.sgn(torch.randn(n, k, device=device))
    pa, pb = P.pack_signs(a), P.pack_signs(b)
    rows = []
    for name, fn in (
        ("xnor-popcount (packed)", lambda: P.xnor_popcount_dot(pa, pb, k)),
        ("float32 matmul", lambda: a @ b.T),
    ):
        dt, peak = timed(fn, device, cpu_time=True)
        rows.append(
            {
                "device": device,
                "what": f"+-1 products k={k}: {name}",
                "scheme": "-",
                "items_per_s": round(m * n / dt),
                "peak_MiB": round(peak),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        rows += train_rates(d, args.steps) + basis_rates(d) + product_rates(d)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
