#!/usr/bin/env bash
# One short GPU session measures the whole book: bash benchmarks/device_check.sh [OUT_DIR]
#  1. benchmarks/full_profile.py for every done chapter (all together <= 8 min on the GPU),
#  2. a determinism check: two short seeded runs on the device must give identical numbers.
set -u
OUT=${1:-benchmarks/results}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export CVTUTOR_PROGRESS=off
timeout 480 "$PY" benchmarks/full_profile.py --out "$OUT" --max-seconds 240 2>&1 | tee "$OUT/full_profile.log"
echo "full_profile exit: ${PIPESTATUS[0]}"
timeout 90 "$PY" - <<'PYEOF' 2>&1 | tee "$OUT/determinism.txt"
import torch
from torch import nn
from cvtutor import runtime, train

def short_run():
    rt = runtime.setup("fast", seed=3, verbose=False)
    dev = rt.device
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(256, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (256,), device=dev)
    hist = train.fit(model, opt, train.minibatches(x, y, batch_size=64, seed=1),
                     lambda m, b, s: {"loss": nn.functional.cross_entropy(m["model"](b[0]), b[1])},
                     steps=40, progress=False)
    return dev, hist["loss"].tolist(), [p.detach().cpu() for p in model.parameters()]

dev, h1, w1 = short_run()
_, h2, w2 = short_run()
same = h1 == h2 and all(torch.equal(a, b) for a, b in zip(w1, w2))
print(f"determinism on {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}): "
      f"{'identical' if same else 'DIFFERENT'} (40 steps, losses and weights)")
raise SystemExit(0 if same else 1)
PYEOF
echo "determinism exit: ${PIPESTATUS[0]}"
