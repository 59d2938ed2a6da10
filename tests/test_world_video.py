import torch

from cvtutor import report
from cvtutor.papers import world_video as wv


def test_checks_detect_broken_worlds():
    cfg = wv.Config.fast().replace(n_videos=6)
    w = wv.sprite_world(cfg, colour_drift=0.0)
    b = w.sample(6, seed=0)
    assert wv.mask_agreement(b) == 1.0
    broken = dict(b, masks=torch.roll(b["masks"], 3, dims=-1))
    assert wv.mask_agreement(broken) < 0.9
    good = wv.flow_check(b)
    bad = wv.flow_check(dict(b, flow_back=torch.zeros_like(b["flow_back"])))
    assert good["warp_error"] < 0.25 * good["identity_error"]
    assert bad["warp_error"] > 0.5 * bad["identity_error"]


def test_smoke_profile_and_finding_kinds(tmp_path):
    cfg = wv.Config.smoke()
    assert wv.Config.for_profile("smoke") == cfg and cfg.size == wv.Config.full().size
    r = wv.run(cfg)
    f = r["findings"]
    assert set(f["kind"]) <= set(report.KINDS) and "paper claim" not in set(f["kind"])
    assert f["holds"].all(), f[~f["holds"]]
    assert r["checks"]["pixels"] > 0
    report.save_results(
        r, tmp_path / "r.json", report.run_metadata("world_video", "smoke", "cpu", 0)
    )
