"""GraphMemVOS speed: sprite videos generated per second, recurrence-training steps per second
(N + 1 frames, K episodes of Eqs. 2-8, the decoder, backward) of the graph memory, the no-memory
ablation and the STM-like baseline, and sequential inference (object-frames per second), for the
fast and full layouts, on the CPU (and CUDA when present).
Run: ``python benchmarks/graph_memory_vos.py [--n 16]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _timing import rate_table_main, timed, with_rates

from cvtutor.papers import graph_memory_vos as G


def bench(device: str, profile: str, n: int) -> list[dict]:
    cfg = getattr(G.Config, profile)().replace(device=device)
    rows = []
    dt, _ = timed(lambda: G.videos(cfg, n, "train", 0, device), device)
    rows.append({"what": f"videos generated ({cfg.size} px, T={cfg.frames})", "items": n,
                 "seconds": dt})
    d = G.videos(cfg, max(n, cfg.batch), "train", 0, device)
    for memory in G.MEMORIES:
        net = G.make_model(cfg, memory).to(device)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        g = torch.Generator().manual_seed(0)

        def step(net=net, opt=opt, g=g):
            sup, sm, sl, q, t = G.recurrence_clips(
                {k: v[: cfg.batch] for k, v in d.items()}, cfg.N, g, cfg.n_sprites, True
            )
            logits, _ = net(q, G.encode_support(net, sup, sm, sl), cfg.K)
            loss = F.cross_entropy(logits, t)
            opt.zero_grad()
            loss.backward()
            opt.step()

        dt, _ = timed(step, device)
        rows.append({"what": f"training steps, {memory} (batch {cfg.batch})", "items": 1,
                     "seconds": dt})
    net = G.make_model(cfg).to(device).eval()
    ev = {k: v[:n] for k, v in d.items()}
    dt, _ = timed(lambda: G.evaluate(net, ev, cfg.N, cfg.K, cfg.n_sprites), device)
    rows.append({"what": "sequential inference (object-frames)",
                 "items": n * (cfg.frames - 1) * cfg.n_sprites, "seconds": dt})
    return with_rates(rows, device, profile)


if __name__ == "__main__":
    rate_table_main(bench, __doc__, "--n", 16)
