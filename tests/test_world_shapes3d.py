"""The world chapter's module: its checks hold in the smoke and fast profiles and store as JSON."""

import pytest

from cvtutor import report
from cvtutor.papers import world_shapes3d as ws


def test_profiles():
    assert ws.Config.for_profile("smoke") == ws.Config.smoke()
    assert ws.Config.full().n_points > ws.Config.fast().n_points
    assert ws.PAPER == {}


@pytest.mark.parametrize("profile", ["smoke", "fast"])
def test_every_check_holds_and_results_store(profile, tmp_path):
    res = ws.run(ws.Config.for_profile(profile))
    f = res["findings"]
    assert set(f["kind"]) <= set(report.KINDS) and set(f["kind"]) <= {
        "sanity check",
        "construction",
    }
    learned = f.index.str.startswith("a plain PointNet")
    assert f["holds"][~learned].all(), f[
        ~f["holds"]
    ]  # smoke trains ten steps: learning is not checked
    if profile == "fast":
        assert f["holds"][learned].all()
    path = report.save_results(
        res, tmp_path / "r.json", report.run_metadata("world_shapes3d", profile, "cpu", 0)
    )
    back, _ = report.load_results(path)
    assert set(back) == set(res)
