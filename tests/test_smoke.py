"""The smoke profile of every finished chapter: ``run(Config.smoke())`` runs ``full``'s every code
path at toy size, returns a dict, and its results survive a results-file round trip."""
import importlib
import json

import pytest

from cvtutor import papers, report, runtime

DONE = [t for t in papers.TUTORIALS if t.status == "done"]


@pytest.mark.parametrize("tutorial", DONE, ids=[t.slug for t in DONE])
def test_smoke_run(tutorial, tmp_path, monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    module = importlib.import_module(tutorial.module_name)
    try:
        rt = runtime.setup("smoke", seed=0, device="cpu", verbose=False)
        config = module.Config.for_profile("smoke")
        with report.Stopwatch() as sw:
            results = module.run(config)
    finally:
        runtime.set_deterministic(False)
    assert isinstance(results, dict) and results
    meta = report.run_metadata(tutorial.slug, rt.profile, rt.device, 0, wall_time_s=sw.seconds)
    path = report.save_results(results, tmp_path / f"{tutorial.slug}-smoke-seed0.json", meta)
    back, meta_back = report.load_results(path)
    assert set(back) == {str(k) for k in results}
    assert meta_back["profile"] == "smoke"
    json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# benchmarks/full_profile.py on a fake chapter (fast; the real chapters run in device_check.sh)
# ---------------------------------------------------------------------------------------------
def _load_full_profile():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "full_profile.py"
    spec = importlib.util.spec_from_file_location("full_profile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_full_profile_measures_and_extrapolates(tmp_path, monkeypatch):
    import time
    import types
    from dataclasses import dataclass

    import torch
    from torch import nn

    from cvtutor import train

    @dataclass
    class Config(runtime.ProfileConfig):
        steps: int = 1000

        @classmethod
        def fast(cls):
            return cls(3)

        @classmethod
        def full(cls):
            return cls(1000)

    def run(config):
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.randn(32, 4)
        for desc in ("phase A", "phase B"):
            train.fit(model, opt, train.minibatches(x, batch_size=8), lambda m, b, s: {"loss": m["model"](b[0]).pow(2).mean()},
                      steps=config.steps, progress=False, desc=desc)
        time.sleep(0.05)  # non-fit work
        return {"ok": 1}

    fp = _load_full_profile()
    monkeypatch.setattr(papers, "load", lambda slug: types.SimpleNamespace(Config=Config, run=run))
    out = tmp_path / "rec.json"
    try:
        assert fp.child("fake", "full", 3, 1, str(out)) == 0
    finally:
        runtime.set_deterministic(False)
    rec = fp.estimate(json.loads(out.read_text()))
    assert rec["status"] == "ok", rec
    assert [p["desc"] for p in rec["phases"]] == ["phase A", "phase B"]
    assert [p["planned_steps"] for p in rec["phases"]] == [1000, 1000]
    assert [p["measured_steps"] for p in rec["phases"]] == [4, 4]
    assert rec["non_fit_s"] >= 0.05
    expected = rec["non_fit_s"] + sum(1000 * p["s_per_step"] for p in rec["phases"])
    assert rec["total_est_s"] == pytest.approx(expected)
    assert rec["gpu_wait_share"] is None and rec["peak_mem_mb"] is None
    # on a CPU the run is also priced by the stated-rate GPU model: each phase per step, plus non-fit
    assert all(p["probe"]["n_ops"] > 0 and p["gpu_est_s_per_step"] > 0 for p in rec["phases"])
    assert rec["gpu_est_s"] == pytest.approx(rec["gpu_model"]["non_fit"]["est_s"] + sum(
        1000 * p["gpu_est_s_per_step"] for p in rec["phases"]))
    assert rec["gpu_model"]["non_fit"]["host_outside_ops_s"] >= 0.0  # time.sleep is not CPU time
    md = fp.markdown([rec, {"slug": "slow", "status": "timed out", "error": "over 5 s"}], "CPU (x, 1 threads)",
                     "full", 3, 1)
    assert "estimated on CPU" in md and "| fake | ok | 2 | 2000 |" in md and "| slow | timed out" in md
    assert "H100 estimate" in md and f"| {rec['gpu_est_s'] / 60:.2f} |" in md

    def broken(config):
        raise KeyError("rows")

    monkeypatch.setattr(papers, "load", lambda slug: types.SimpleNamespace(Config=Config, run=broken))
    try:
        fp.child("fake", "full", 3, 1, str(out))
    finally:
        runtime.set_deterministic(False)
    rec = json.loads(out.read_text())
    assert rec["status"] == "error" and "KeyError" in rec["error"]


# ---------------------------------------------------------------------------------------------
# benchmarks/_gpu_model.py: the stated-rate pricing of operators
# ---------------------------------------------------------------------------------------------
def _load_gpu_model():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "_gpu_model.py"
    spec = importlib.util.spec_from_file_location("_gpu_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_model_prices_operators_by_roofline():
    import torch

    gm = _load_gpu_model()
    a, b = torch.randn(512, 1024), torch.randn(1024, 2048)
    with gm.GpuCostModel() as model:
        before = model.snapshot()
        c = a @ b  # 2*512*1024*2048 FLOPs: compute-bound under the stated rates
        mid = model.snapshot()
        v = c.t()  # a view: no kernel
        after_view = model.snapshot()
        d = c + 1.0  # elementwise: priced by bytes (read c, write d)
        end = model.snapshot()
    mm = gm.diff(before, mid)
    assert mm["n_ops"] == 1 and mm["flops"] == 2 * 512 * 1024 * 2048
    assert mm["kernel_s"] == pytest.approx(max(gm.KERNEL_FLOOR_S, mm["flops"] / gm.FLOP_RATE,
                                               mm["bytes"] / gm.BANDWIDTH))
    assert mm["bytes"] == 4 * (512 * 1024 + 1024 * 2048 + 512 * 2048)
    view = gm.diff(mid, after_view)
    assert view["n_ops"] == 1 and view["kernel_s"] == 0.0 and view["bytes"] == 0
    add = gm.diff(after_view, end)
    assert add["flops"] == 0 and add["kernel_s"] == pytest.approx(max(gm.KERNEL_FLOOR_S, 2 * c.numel() * 4 / gm.BANDWIDTH))
    seg = gm.estimate_s(gm.diff(before, end))
    assert seg["est_s"] == max(seg["kernel_s"], seg["host_s"])
    assert seg["host_s"] >= 3 * gm.DISPATCH_S
    assert torch.equal(d, c + 1.0) and v.shape == (2048, 512)  # results are untouched


def test_gpu_model_sees_backward_and_a_measured_probe():
    import torch
    from torch import nn

    from cvtutor import train

    gm = _load_gpu_model()
    model = nn.Linear(64, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(128, 64)
    with gm.GpuCostModel() as cost:
        with train.measure_phases(steps=4, warmup=1, probe=cost.snapshot) as rec:
            train.fit(model, opt, lambda s: x, lambda m, b, s: {"loss": m["model"](b).square().mean()},
                      steps=50, progress=False)
    probe = rec[0]["probe"]
    assert rec[0]["timed_steps"] == 4 and rec[0]["planned_steps"] == 50
    # per step: the forward addmm and the weight-gradient mm, 2*128*64*32 FLOPs each (x needs no grad)
    assert probe["flops"] == pytest.approx(4 * 2 * (2 * 128 * 64 * 32))
    assert probe["cpu_s"] >= probe["op_cpu_s"] > 0
