"""The translation world's chapter: every check holds in the fast profile; smoke runs full's code
paths and its results are JSON-storable."""
from cvtutor import report
from cvtutor.papers import world_translation as wt


def test_fast_run_every_finding_holds():
    r = wt.run(wt.Config.fast())
    f = r["findings"]
    assert set(f["kind"]) <= {"sanity check", "construction"}
    assert f["holds"].all(), f[~f["holds"]]
    assert r["fid_noise"]["noise std"].tolist() == list(wt.Config.fast().noise_levels)


def test_smoke_profile_is_full_at_toy_size(tmp_path):
    cfg = wt.Config.smoke()
    assert wt.Config.for_profile("smoke") == cfg and cfg.size == wt.Config.full().size
    r = wt.run(cfg)
    f = r["findings"]
    assert f[f["kind"] == "construction"]["holds"].all()
    report.save_results(r, tmp_path / "r.json",
                        report.run_metadata("world_translation", "smoke", "cpu", 0))
