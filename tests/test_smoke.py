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
    md = fp.markdown([rec, {"slug": "slow", "status": "timed out", "error": "over 5 s"}], "CPU (x, 1 threads)",
                     "full", 3, 1)
    assert "estimated on CPU" in md and "| fake | ok | 2 | 2000 |" in md and "| slow | timed out" in md

    def broken(config):
        raise KeyError("rows")

    monkeypatch.setattr(papers, "load", lambda slug: types.SimpleNamespace(Config=Config, run=broken))
    try:
        fp.child("fake", "full", 3, 1, str(out))
    finally:
        runtime.set_deterministic(False)
    rec = json.loads(out.read_text())
    assert rec["status"] == "error" and "KeyError" in rec["error"]
