import json

import numpy as np
import pandas as pd
import pytest

from cvtutor import report

TABLE = report.PaperTable("Table 1", "EPE (mm)", {"RGB": 20.0, "Depth": 10.0, "KD": 15.0}, better="lower")


def test_compare_columns_and_holds():
    df = report.compare(TABLE, ours={"RGB": 30.0, "Depth": 12.0, "KD": 25.0}, claims=["KD < RGB", "Depth < KD"])
    assert list(df.columns) == ["paper", "ours", "diff", "claim", "holds"]
    assert df.loc["KD", "diff"] == pytest.approx(10.0)
    assert bool(df.loc["KD", "holds"]) is True
    assert bool(df.loc["Depth", "holds"]) is True
    assert df.loc["RGB", "holds"] is pd.NA
    assert df.attrs["ref"] == "Table 1"


def test_claim_that_fails_in_our_run_is_false():
    df = report.compare(TABLE, ours={"RGB": 20.0, "KD": 21.0}, claims=["KD < RGB"])
    assert bool(df.loc["KD", "holds"]) is False


def test_claim_with_unmeasured_setting_does_not_hold():
    df = report.compare(TABLE, ours={"KD": 1.0}, claims=["KD < RGB"])
    assert bool(df.loc["KD", "holds"]) is False
    assert np.isnan(df.loc["RGB", "ours"])


def test_numeric_and_approximate_claims():
    t = report.PaperTable("T", "acc", {"a": 0.97})
    assert bool(report.compare(t, {"a": 0.965}, ["a ~ 0.97"], tol=0.01).loc["a", "holds"])
    assert not bool(report.compare(t, {"a": 0.90}, ["a ~ 0.97"], tol=0.01).loc["a", "holds"])
    assert bool(report.compare(t, {"a": 0.99}, ["a > 0.5"]).loc["a", "holds"])


def test_ranking_claim():
    df = report.compare(TABLE, ours={"RGB": 9.0, "Depth": 1.0, "KD": 5.0}, claims=["lower is better"])
    assert df["holds"].all()
    df = report.compare(TABLE, ours={"RGB": 1.0, "Depth": 2.0, "KD": 3.0}, claims=["lower is better"])
    assert df["holds"].tolist() == [False, False, False]
    df = report.compare(TABLE, ours={"RGB": 9.0, "Depth": 5.0, "KD": 1.0}, claims=["lower is better"])
    assert df["holds"].tolist() == [True, False, False]


def test_claim_false_in_the_paper_is_an_error():
    with pytest.raises(ValueError, match="does not hold on the paper's own numbers"):
        report.compare(TABLE, ours={"KD": 1.0}, claims=["RGB < KD"])
    df = report.compare(TABLE, ours={"KD": 1.0, "RGB": 2.0}, claims=["RGB < KD"], strict=False)
    assert not bool(df.loc["RGB", "holds"])


@pytest.mark.parametrize("claim, match", [("KD << RGB", "neither a setting"), ("KD", "cannot read claim"),
                                          ("XX < RGB", "not a setting")])
def test_bad_claims_are_clear(claim, match):
    with pytest.raises((ValueError, KeyError), match=match):
        report.compare(TABLE, ours={"KD": 1.0, "RGB": 2.0}, claims=[claim])


def test_unknown_settings_in_ours():
    with pytest.raises(KeyError, match="lacks"):
        report.compare(TABLE, ours={"ResNet": 1.0})


def test_paper_table_validation():
    with pytest.raises(ValueError, match="better"):
        report.PaperTable("T", "m", {"a": 1.0}, better="smaller")
    with pytest.raises(ValueError, match="at least one value"):
        report.PaperTable("T", "m", {})


def test_style_marks():
    df = report.compare(TABLE, ours={"RGB": 30.0, "KD": 25.0}, claims=["KD < RGB"])
    html = report.style(df).to_html()
    assert "✓" in html and "–" in html and "Table 1" in html


def test_claims_table():
    df = report.claims_table({"a helps": ("paper claim", True), "b hurts": ("construction", False, "-2")})
    assert df["holds"].tolist() == [True, False]
    assert df["kind"].tolist() == ["paper claim", "construction"]
    assert df["detail"].tolist() == ["", "-2"]
    with pytest.raises(ValueError, match="kind"):
        report.claims_table({"a": (True, True)})


def test_results_round_trip(tmp_path):
    df = report.compare(TABLE, ours={"RGB": 30.0, "KD": 25.0}, claims=["KD < RGB"])
    meta = report.run_metadata("demo", "fast", "cpu", 3, wall_time_s=1.5)
    results = {"table": df, "acc": np.float32(0.5), "curve": np.arange(3), "nested": {"x": [1, 2.5, None]}}
    path = report.save_results(results, tmp_path / "r.json", meta)
    back, meta_back = report.load_results(path)
    for key in ("slug", "profile", "device", "seed", "cvtutor_version", "git_commit", "torch_version",
                "wall_time_s"):
        assert key in meta_back
    assert meta_back["seed"] == 3 and meta_back["wall_time_s"] == 1.5
    pd.testing.assert_frame_equal(back["table"][["paper", "ours", "diff"]], df[["paper", "ours", "diff"]],
                                  check_names=False)
    assert back["table"].index.name == "setting"
    assert back["acc"] == 0.5 and back["curve"] == [0, 1, 2] and back["nested"] == {"x": [1, 2.5, None]}
    json.loads(path.read_text())  # plain JSON


def test_results_errors(tmp_path):
    with pytest.raises(ValueError, match="metadata needs the keys"):
        report.save_results({}, tmp_path / "r.json", {"slug": "x"})
    meta = report.run_metadata("demo", "fast", "cpu", 0)
    with pytest.raises(TypeError, match="cannot store a object"):
        report.save_results({"bad": object()}, tmp_path / "r.json", meta)
    with pytest.raises(FileNotFoundError):
        report.load_results(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a cvtutor results file"):
        report.load_results(tmp_path / "other.json")
