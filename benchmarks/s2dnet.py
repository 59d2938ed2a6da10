"""S2DNet speed: synthetic HPatches pairs generated per second, training pair-steps per second
(cross-entropy, Eq. 1-2) and sparse-to-dense matching keypoints per second, for the fast and full
layouts, on the CPU (and CUDA when present). Run: ``python benchmarks/s2dnet.py [--n 64]``."""

from __future__ import annotations

import torch
from _timing import rate_table_main, timed, with_rates  # noqa: E402  (benchmarks/_timing.py, beside this script)

from cvtutor.papers import s2dnet as S


def bench(device: str, profile: str, n: int) -> list[dict]:
    cfg = getattr(S.Config, profile)().replace(device=device)
    if profile == "full" and not device.startswith("cuda"):
        cfg = cfg.replace(size=96)  # the full network at a size a CPU finishes
    rows = []
    dt, _ = timed(lambda: S.make_pairs(cfg, n, 0, device=device), device)
    rows.append({"what": f"pairs generated ({cfg.size} px)", "items": n, "seconds": dt})
    tr = S.training_set(cfg.replace(n_train=max(n, cfg.batch)), 0, device)
    net = S.make_model(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    b = cfg.batch
    size = (cfg.size, cfg.size)

    def step():
        feats = net(torch.cat([tr["image_a"][:b], tr["image_b"][:b]]))
        fa, fb = [f[:b] for f in feats], [f[b:] for f in feats]
        C = S.correspondence_map(S.sparse_descriptors(fa, tr["xy_a"][:b], net.strides), fb, size)
        loss = S.s2d_loss(C, tr["xy_b"][:b], tr["valid"][:b])
        opt.zero_grad()
        loss.backward()
        opt.step()

    dt, _ = timed(step, device)
    rows.append({"what": f"CE training pair-steps (batch {b})", "items": b, "seconds": dt})
    te = S.test_set(cfg.replace(n_test=max(1, n // 2)), 0, device)
    dt, _ = timed(lambda: S.match_s2d(net.eval(), te), device)
    rows.append(
        {
            "what": f"S2D matching + cyclic check ({cfg.k_test} kp/pair)",
            "items": int(te["xy_a"].shape[0] * te["xy_a"].shape[1]),
            "seconds": dt,
        }
    )
    return with_rates(rows, device, profile)


if __name__ == "__main__":
    rate_table_main(bench, __doc__, "--n", 64)
