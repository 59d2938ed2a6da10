"""E32 speed: scenes matched per second by feet assignment and by the epipolar-constraint baseline
(every view pair, multi-view resolution) at N = 5..60 people, and people reconstructed per second by
the batched MLE + MAP solver, on the CPU (and CUDA when present; the assignment itself runs in
scipy on the CPU). Run: ``python benchmarks/crowd_3d_pose_mvg.py [--scenes 8]``."""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data import geometry as G
from cvtutor.papers import crowd_3d_pose_mvg as C
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench_matching(n_people: int, scenes: int) -> list[dict]:
    cfg = C.Config.fast()
    world = C.make_world(cfg, n_people, seed=0, device="cpu")
    dets = C.detections(world.sample(scenes, "test"), cfg.min_visible, seed=0)
    K, R, t = C._cams(world)
    H_inv = torch.linalg.inv(G.ground_plane_homography(K, R, t))
    F = {(j, k): G.fundamental_matrix(K, R[j], t[j], K, R[k], t[k])
         for j in range(cfg.n_views) for k in range(j + 1, cfg.n_views)}
    rows = []
    for name, fn in (("feet assignment", lambda: [C.match_feet(d, H_inv, cfg.k, cfg.feet_gate)
                                                   for d in dets]),
                     ("EC matching", lambda: [C.match_epipolar(d, F, cfg.ec_gate) for d in dets])):
        dt = timed(fn, "cpu", cpu_time=True)[0]
        rows.append({"device": "cpu", "what": f"{name}, N = {n_people}", "items": scenes,
                     "seconds": round(dt, 4), "items_per_s": round(scenes / dt, 1)})
    return rows


def bench_map(device: str, people: int, iters: int = 15) -> dict:
    cfg = C.Config.fast()
    world = C.make_world(cfg, 20, seed=0, device="cpu")
    K, R, t = (x.to(device) for x in C._cams(world))
    g = torch.Generator().manual_seed(0)
    X = world.pose(world.draw(people // 20 + 1, "test"))["joints"].double().reshape(-1, 23, 3)
    X = X[:people].to(device)
    uv = G.project(G.world_to_camera(X[:, None], R, t), K)
    uv = uv + torch.randn(uv.shape, generator=g, dtype=uv.dtype).to(device)
    inv = torch.ones(uv.shape[:3], dtype=uv.dtype, device=device)
    b_ref, sigma_l = (x.to(device) for x in C.bone_prior(world, 8))
    X0 = C.vanilla_triangulation(G.projection_matrix(K, R, t), uv,
                                 torch.ones(people, len(R), dtype=torch.bool, device=device))

    def solve():
        mle = C.map_estimate(X0, uv, inv, (K, R, t), iters=iters)["X"]
        return C.map_estimate(mle, uv, inv, (K, R, t), b_ref, sigma_l, iters)["X"]

    dt = timed(solve, device, cpu_time=True)[0]
    return {"device": device, "what": f"DLT + MLE + MAP ({iters} + {iters} LM iterations)",
            "items": people, "seconds": round(dt, 4), "items_per_s": round(people / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=8, help="scenes per matching measurement")
    ap.add_argument("--people", type=int, default=400, help="people per MAP measurement")
    args = ap.parse_args()
    rows = [r for n in (5, 10, 20, 40, 60) for r in bench_matching(n, args.scenes)]
    for d in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        rows.append(bench_map(d, args.people * (8 if d == "cuda" else 1)))
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
