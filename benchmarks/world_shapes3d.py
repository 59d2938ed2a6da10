"""3-D shape world speed: surface samples, occupancy queries, partial scans and heat geodesics per
second on the CPU (and CUDA when present), with peak memory.
Run: ``python benchmarks/world_shapes3d.py [--shapes 64] [--points 2048]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data import shapes3d
from cvtutor.data.shapes3d import meshes, transforms
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, n_shapes: int, n_points: int) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(0)
    shapes = shapes3d.make_classes(max(n_shapes // 10, 1), g, device)
    B = len(shapes)
    smp = shapes.sample(n_points, g)
    q = torch.rand(B, n_points, 3, generator=g, device=device) - 0.5
    eyes = transforms.sphere_cameras(B, g, device=device)
    sheet = meshes.grid_sheet(17, 17, device=device)
    verts = meshes.bend(
        sheet["uv"][None].expand(8, -1, -1), meshes.random_bends(8, g, device=device), 1.0
    )
    cases = {
        "surface samples": (lambda: shapes.sample(n_points, g), B * n_points),
        "occupancy queries": (lambda: shapes.occupancy(q), B * n_points),
        "scans (64 px)": (lambda: transforms.scan(smp["points"], smp["normals"], eyes, size=64), B),
        "heat geodesics (289 verts, all sources)": (
            lambda: meshes.heat_geodesic(verts, sheet["faces"], torch.arange(289, device=device)),
            8,
        ),
        "category shapes built": (
            lambda: shapes3d.make_classes(max(n_shapes // 10, 1), g, device),
            B,
        ),
    }
    rows = []
    for name, (fn, items) in cases.items():
        dt, peak = timed(fn, device)
        rows.append(
            {
                "device": device,
                "what": name,
                "items": items,
                "seconds": round(dt, 4),
                "items_per_s": round(items / dt, 1),
                "peak_MiB": round(peak, 1),
                "peak_kind": "cuda allocated" if device.startswith("cuda") else "process max RSS",
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", type=int, default=64)
    ap.add_argument("--points", type=int, default=2048)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [
        r for d in devices for r in bench(d, args.shapes * (8 if d == "cuda" else 1), args.points)
    ]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
