"""Sample-steps per second on one CPU thread for reference blocks, to size ``Config.fast()``.

    OMP_NUM_THREADS=1 python benchmarks/fast_budget.py [--seconds 2] [--write benchmarks/results/fast_budget.md]

A sample-step is one sample through forward + backward + an Adam step, at the batch size shown.
Each block is timed for about ``--seconds`` of CPU time (process time) after one warm-up step. On a machine that is busy with
other work the numbers are low; the table says what the machine was doing when you pass --note.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class SmallCNN(nn.Module):
    def __init__(self, c: int = 16, n_out: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4 * c, n_out))

    def forward(self, x):
        return self.net(x)


class UNet(nn.Module):
    """A two-level U-Net (16/32/64 channels)."""

    def __init__(self, c: int = 16):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU())

        self.d1, self.d2, self.mid = block(1, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.u2, self.u1 = block(4 * c + 2 * c, 2 * c), block(2 * c + c, c)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        a = self.d1(x)
        b = self.d2(F.max_pool2d(a, 2))
        m = self.mid(F.max_pool2d(b, 2))
        b = self.u2(torch.cat([F.interpolate(m, scale_factor=2), b], 1))
        return self.out(self.u1(torch.cat([F.interpolate(b, scale_factor=2), a], 1)))


class Depthwise(nn.Module):
    """A MobileNet-style block stack: depthwise 3x3 + pointwise 1x1, 32 channels at 32 px."""

    def __init__(self, c: int = 32, depth: int = 4):
        super().__init__()
        layers = [nn.Conv2d(3, c, 3, padding=1)]
        for _ in range(depth):
            layers += [nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

    def forward(self, x):
        return self.net(x)


class GRUHead(nn.Module):
    def __init__(self, d: int = 32, h: int = 64):
        super().__init__()
        self.gru, self.head = nn.GRU(d, h, batch_first=True), nn.Linear(h, 10)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


def blocks():
    """(name, model, input maker, batch size, loss) for each reference block."""
    from cvtutor.nn.centernet import CenterNet
    from cvtutor.nn.pointnets import ResPELEncoder
    from cvtutor.nn.resnet_mini import ResNetMini

    def cls_loss(out, b):
        return F.cross_entropy(out, torch.zeros(len(out), dtype=torch.long))

    return [
        ("small CNN, 16 px (16/32/64 ch)", SmallCNN(), lambda b: torch.randn(b, 3, 16, 16), 64, cls_loss),
        ("small CNN, 32 px (16/32/64 ch)", SmallCNN(), lambda b: torch.randn(b, 3, 32, 32), 64, cls_loss),
        ("ResNetMini width 8, 32 px", ResNetMini(3, 10, 8), lambda b: torch.randn(b, 3, 32, 32), 64, cls_loss),
        ("U-Net 16/32/64 ch, 32 px", UNet(), lambda b: torch.randn(b, 1, 32, 32), 16,
         lambda out, b: out.pow(2).mean()),
        ("depthwise block x4, 32 ch, 32 px", Depthwise(), lambda b: torch.randn(b, 3, 32, 32), 64, cls_loss),
        ("GRU 32->64, 20 steps", GRUHead(), lambda b: torch.randn(b, 20, 32), 64, cls_loss),
        ("PointNet (ResPEL width 64), 512 points", ResPELEncoder(10, 64, 3), lambda b: torch.randn(b, 512, 3), 32,
         cls_loss),
        ("CenterNet width 32, 48 px", CenterNet(3), lambda b: torch.randn(b, 3, 48, 48), 16,
         lambda out, b: sum(v.pow(2).mean() for v in out.values())),
    ]


def measure(model, make, batch, loss_fn, seconds: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = make(batch)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), batch).backward()
        opt.step()

    step()  # warm-up
    n, t0 = 0, time.process_time()  # CPU time: robust to a loaded machine
    while True:
        step()
        n += 1
        dt = time.process_time() - t0
        if dt >= seconds and n >= 2:
            return n * batch / dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--write", metavar="MD", help="also write the table to this Markdown file")
    ap.add_argument("--note", default="", help="what the machine was doing (e.g. 'loaded: 8 jobs on 2 cores')")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for name, model, make, batch, loss_fn in blocks():
        rate = measure(model, make, batch, loss_fn, args.seconds)
        rows.append((name, batch, rate))
        print(f"{name}: {rate:,.0f} sample-steps/s", file=sys.stderr, flush=True)
    head = (f"# Sample-steps per second on one CPU thread\n\n{time.strftime('%Y-%m-%d', time.gmtime())}, "
            f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
            f"{'; ' + args.note if args.note else ''}. Forward + backward + Adam step, timed by CPU time (process_time, so other jobs on the machine inflate it less) for "
            f"{args.seconds:g} CPU-s after one warm-up step.\n\n")
    table = "| block | batch | sample-steps/s |\n|---|---|---|\n" + "\n".join(
        f"| {n} | {b} | {r:,.0f} |" for n, b, r in rows) + "\n"
    print(head + table)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(head + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
