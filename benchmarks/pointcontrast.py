"""PointContrast (E34) speed: rooms generated per second, view pairs per second (partial scans,
kd-tree correspondences, transforms), pre-training steps per second (PointInfoNCE and
hardest-contrastive) and fine-tuning steps per second of the voxel U-Net, at the fast
(32×32×8 grid, width 8) and full (64×64×16, width 16) sizes, on the CPU and on CUDA when present.
Run: ``python benchmarks/pointcontrast.py [--steps 3]``."""

from __future__ import annotations

import torch
from _timing import rate_table_main, timed, with_rates

from cvtutor.papers import pointcontrast as P


def bench(device: str, profile: str, steps: int) -> list[dict]:
    cfg = getattr(P.Config, profile)().replace(device=device)
    g = torch.Generator().manual_seed(0)
    n_rooms = 8
    rows = []
    dt, _ = timed(lambda: P.make_scenes(n_rooms, cfg.scene_points, g), "cpu")
    rows.append({"what": f"rooms ({cfg.scene_points} samples)", "items": n_rooms, "seconds": dt})
    scenes = P.make_scenes(n_rooms, cfg.scene_points, g)
    idx = torch.arange(cfg.pairs_per_step) % n_rooms
    dt, _ = timed(lambda: P.make_pairs(scenes, idx, cfg, g), "cpu")
    rows.append({"what": f"view pairs ({cfg.view_points} points)", "items": len(idx), "seconds": dt})
    for loss in ("nce", "hc"):
        c = cfg.replace(pretrain_steps=steps, loss=loss)
        dt, _ = timed(lambda c=c, loss=loss: P.pretrain(c, scenes, loss, 0), device)
        rows.append({"what": f"pre-training steps, {loss} (incl. pairs)", "items": steps,
                     "seconds": dt})
    data = P.seg_data(scenes, cfg.seg_points, g)
    c = cfg.replace(finetune_steps=steps)
    dt, _ = timed(lambda: P.finetune(c, None, data, 0), device)
    rows.append({"what": f"fine-tuning steps (batch {cfg.finetune_batch})", "items": steps,
                 "seconds": dt})
    return with_rates(rows, device, profile, digits=2)


if __name__ == "__main__":
    rate_table_main(bench, __doc__, "--steps", 3)
