"""Image-classification world: images generated per second at 16 and 32 px on the CPU (and CUDA
when present) for every set, and corrupted images per second at severity 3.

Run: ``OMP_NUM_THREADS=1 python benchmarks/world_images.py [--n 2048] [--corruptions]``. CPU
rates are per CPU second of this process (``time.process_time``), so other jobs on the machine
inflate them less;
CUDA rates are wall-clock after a synchronise.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data.imageclass import corruptions, sets
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def generators(device: str, n: int) -> list[dict]:
    jobs = {
        ("ShapesTextures", 32): lambda: sets.shapes_textures(n, 32, seed=0, device=device),
        ("ShapesTextures", 16): lambda: sets.shapes_textures(n, 16, seed=0, device=device),
        ("ShapesTextures fine", 32): lambda: sets.shapes_textures(
            n, 32, seed=0, device=device, fine=True
        ),
    }
    for kind in sets.OOD_KINDS:
        for size in (16, 32):
            jobs[(f"ood {kind}", size)] = lambda k=kind, s=size: sets.ood_images(
                k, n, s, 3, seed=0, device=device
            )
    rows = [
        {
            "device": device,
            "set": name,
            "size": size,
            "n": n,
            "images_per_s": round(n / timed(fn, device, cpu_time=True)[0]),
        }
        for (name, size), fn in jobs.items()
    ]
    for size in (16, 32):  # a fixed set of 1,797 images: the rate of the upsampling alone
        dt = timed(lambda s=size: sets.digits16(s, device=device), device, cpu_time=True)[0]
        rows.append(
            {
                "device": device,
                "set": "digits16",
                "size": size,
                "n": 1797,
                "images_per_s": round(1797 / dt),
            }
        )
    return rows


def corruption_rates(device: str, n: int) -> list[dict]:
    x = sets.shapes_textures(n, 32, seed=0, device=device).x
    return [
        {
            "device": device,
            "set": f"corrupt: {name}",
            "size": 32,
            "n": n,
            "images_per_s": round(n / timed(lambda c=name: corruptions.corrupt(x, c, 3), device, cpu_time=True)[0]),
        }
        for name in corruptions.CORRUPTIONS
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--n", type=int, default=2048, help="images per timed call on the CPU (x8 on CUDA)"
    )
    ap.add_argument(
        "--corruptions", action="store_true", help="also time every corruption at severity 3"
    )
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        n = args.n * (8 if d == "cuda" else 1)
        rows += generators(d, n)
        if args.corruptions:
            rows += corruption_rates(d, min(n, 1024))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
