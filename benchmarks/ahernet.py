"""AherNet speed: Algorithm 1 iterations per second (the four passes: L_reg, L_cls + L_prop on the
untrimmed set, the generators' and the ConvNet's updates on synthetic moments) and detection
(s_f, decoding, 1-D NMS) videos per second, for the fast and full layouts, on the CPU (and CUDA
when present). Run: ``python benchmarks/ahernet.py [--steps 20]``."""

from __future__ import annotations

from _timing import rate_table_main, timed, with_rates

from cvtutor.papers import ahernet as A


def bench(device: str, profile: str, steps: int) -> list[dict]:
    cfg = getattr(A.Config, profile)().replace(device=device, steps=steps, pretrain_steps=0)
    if profile == "full" and not device.startswith("cuda"):
        cfg = cfg.replace(videos_a=200, moments_b=400, videos_b_train=50, videos_test=50)
    data = A.make_data(cfg, 0)
    rows = []
    dt, _ = timed(lambda: A.train_ahernet(cfg, data, 0, "AherNet"), device)
    rows.append({"what": f"Algorithm 1 iterations (batch {cfg.batch})", "items": steps, "seconds": dt})
    net = A.train_ahernet(cfg.replace(steps=1), data, 0, "AherNet")[0]
    x = data["B_test"]["features"]
    dt, _ = timed(lambda: A.detect(net, x, nms=cfg.nms), device)
    rows.append({"what": "videos detected (s_f, Eq. 5, NMS)", "items": len(x), "seconds": dt})
    return with_rates(rows, device, profile)


if __name__ == "__main__":
    rate_table_main(bench, __doc__, "--steps", 20)
