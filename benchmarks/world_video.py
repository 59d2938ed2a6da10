"""Video-world generation speed: sprite clips, untrimmed feature videos and audio-visual clips per
second on the CPU (and CUDA when present), with peak memory.
Run: ``python benchmarks/world_video.py [--n 256] [--frames 16]``."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cvtutor.data.events import AudioVisualEvents
from cvtutor.data.temporal import UntrimmedFeatures
from cvtutor.data.video import SpriteVideos
from _timing import timed  # noqa: E402  (benchmarks/_timing.py, beside this script)


def bench(device: str, generator: str, size: int, n: int, frames: int) -> dict:
    if generator == "sprite clips":
        w = SpriteVideos(
            size=size,
            frames=frames,
            n_sprites=3,
            sprite_size=0.42 * size,
            branch_frame=frames // 2,
            p_leave=0.2,
            device=device,
        )
        fn = lambda: w.sample(n)  # noqa: E731
    elif generator == "untrimmed features":
        u = UntrimmedFeatures(length=128, max_duration=32, dim=64, device=device)
        fn = lambda: u.sample(n)  # noqa: E731
    else:
        e = AudioVisualEvents(audio_dim=128, visual_dim=512, device=device)
        fn = lambda: e.sample(n)  # noqa: E731
    dt, peak = timed(fn, device)
    return {
        "device": device,
        "generator": generator,
        "size": size if generator == "sprite clips" else None,
        "frames": frames if generator == "sprite clips" else None,
        "n": n,
        "seconds": round(dt, 3),
        "clips_per_s": round(n / dt, 1),
        "peak_MiB": round(peak, 1),
        "peak_kind": "cuda allocated" if device.startswith("cuda") else "process max RSS",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        n = args.n * (8 if d == "cuda" else 1)
        rows += [bench(d, "sprite clips", s, n, args.frames) for s in (32, 64)]
        rows += [
            bench(d, g, 0, n, args.frames) for g in ("untrimmed features", "audio-visual clips")
        ]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
