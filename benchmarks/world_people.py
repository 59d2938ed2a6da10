"""Body-world and geometry-core speed: crowd scenes per second (every view rendered) at 64 and
128 px, and batched triangulation / Levenberg–Marquardt / rotated-IoU items per second, on the CPU
(and CUDA when present). Run: ``python benchmarks/world_people.py [--n 16]``."""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data import geometry as G
from cvtutor.data.bodies import BodyWorld
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench_world(device: str, size: int, n: int, people: int = 6, views: int = 4) -> dict:
    world = BodyWorld(n_people=people, n_views=views, image_size=size, seed=0, device=device)
    dt = timed(lambda: world.sample(n), device)[0]
    return {
        "device": device,
        "what": f"BodyWorld.sample ({people} people, {views} views, {size} px)",
        "items": n,
        "seconds": round(dt, 3),
        "items_per_s": round(n / dt, 1),
    }


def bench_geometry(device: str, n: int) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(0)
    R, t, _ = G.camera_ring(8, 6.0, 2.0, target=(0.0, 0.0, 1.0), device=device)
    K = G.intrinsics(128, 150.0, device=device)
    X = torch.randn(n, 3, generator=g, device=device) * 0.5 + torch.tensor(
        [0, 0, 1.0], device=device
    )
    uv = G.project(G.world_to_camera(X[None], R, t), K).permute(1, 0, 2)  # (n, 8, 2)
    P = G.projection_matrix(K, R, t).expand(n, 8, 3, 4)

    def res(x):
        return (G.project(G.world_to_camera(x[:, None, None], R, t)[..., 0, :], K) - uv).reshape(
            len(x), -1
        )

    boxes = torch.cat(
        [
            torch.rand(n, 3, generator=g, device=device) * 4,
            1 + torch.rand(n, 3, generator=g, device=device),
            torch.rand(n, 1, generator=g, device=device) * 6.28,
        ],
        -1,
    )
    rows = []
    for name, fn in (
        ("triangulate_dlt (8 views)", lambda: G.triangulate_dlt(P, uv)),
        (
            "levenberg_marquardt (3 params, 16 residuals, 5 iters)",
            lambda: G.levenberg_marquardt(res, X + 0.01, iters=5),
        ),
        ("iou_3d (rotated boxes)", lambda: G.iou_3d(boxes, boxes.roll(1, 0))),
    ):
        dt = timed(fn, device)[0]
        rows.append(
            {
                "device": device,
                "what": name,
                "items": n,
                "seconds": round(dt, 4),
                "items_per_s": round(n / dt, 1),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16, help="scenes per world measurement (CUDA: 8x)")
    ap.add_argument("--items", type=int, default=20000, help="items per geometry measurement")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        rows += [bench_world(d, s, args.n * (8 if d == "cuda" else 1)) for s in (64, 128)]
        rows += bench_geometry(d, args.items)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
