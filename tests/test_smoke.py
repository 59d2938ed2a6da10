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
    if not hasattr(module.Config, "smoke"):  # the lead removes this skip once every chapter has one
        pytest.skip("no Config.smoke() yet")
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
