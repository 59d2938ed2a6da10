import json
import time

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


# ---------------------------------------------------------------------------------------------
# every claim operator at its boundary, with NaN on each side, ties and each sign
# ---------------------------------------------------------------------------------------------
NAN = float("nan")


@pytest.mark.parametrize("op, a, b, expected", [
    ("<", 1.0, 2.0, True), ("<", 2.0, 2.0, False), ("<", 3.0, 2.0, False),
    ("<=", 1.0, 2.0, True), ("<=", 2.0, 2.0, True), ("<=", 3.0, 2.0, False),
    (">", 1.0, 2.0, False), (">", 2.0, 2.0, False), (">", 3.0, 2.0, True),
    (">=", 1.0, 2.0, False), (">=", 2.0, 2.0, True), (">=", 3.0, 2.0, True),
    ("<", -3.0, -2.0, True), ("<", -2.0, -3.0, False), (">", -2.0, -3.0, True), ("<=", -2.0, -2.0, True),
    ("<", -1.0, 1.0, True), (">", -1.0, 1.0, False), (">=", 0.0, -0.0, True), ("<", 0.0, -0.0, False),
])
def test_claim_operators_at_their_boundaries(op, a, b, expected):
    assert report.check_claim(f"A {op} B", {"A": a, "B": b}) is expected
    # the same claim against a number on the right
    assert report.check_claim(f"A {op} {b}", {"A": a}) is expected


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "~"])
@pytest.mark.parametrize("a, b", [(NAN, 1.0), (1.0, NAN), (NAN, NAN)])
def test_nan_on_either_side_never_holds(op, a, b):
    assert report.check_claim(f"A {op} B", {"A": a, "B": b}) is False


@pytest.mark.parametrize("a, b, tol, expected", [
    (1.0, 1.0, 0.05, True),        # a - b = 0, a + b = 2: a '+' would fail this
    (100.0, 105.0, 0.05, True),    # |a-b| = 5 = 0.05 * max(100, 105)... 5 <= 5.25
    (100.0, 95.0, 0.05, True),     # 5 <= 0.05 * 100 exactly at the boundary
    (100.0, 94.9, 0.05, False),    # 5.1 > 5
    (-100.0, -95.0, 0.05, True),   # magnitudes, not signed values, set the scale
    (-1.0, 1.0, 0.05, False),      # opposite signs: |a-b| = 2
    (0.0, 0.0, 0.05, True),        # the 1e-12 floor keeps 0 ~ 0 true
    (0.0, 1e-13, 0.05, False),     # 1e-13 > 0.05 * 1e-12
    (2.0, 2.2, 0.1, True), (2.0, 2.3, 0.1, False),
])
def test_approximate_claim_tolerance(a, b, tol, expected):
    assert report.check_claim("A ~ B", {"A": a, "B": b}, tol=tol) is expected
    assert report.check_claim("B ~ A", {"A": a, "B": b}, tol=tol) is expected


def test_approximate_default_tolerance_is_five_percent():
    assert report.check_claim("A ~ B", {"A": 100.0, "B": 104.9})
    assert not report.check_claim("A ~ B", {"A": 100.0, "B": 106.0})


def test_claim_parsing_spaces_negative_numbers_and_names():
    assert report.check_claim("  A<=B  ", {"A": 1.0, "B": 1.0})
    assert report.check_claim("A > -1", {"A": -0.5})
    assert not report.check_claim("A > -1", {"A": -1.5})
    assert report.check_claim("two words >= 3", {"two words": 3.0})
    with pytest.raises(ValueError, match="cannot read claim"):
        report.check_claim("A = B", {"A": 1.0, "B": 1.0})
    with pytest.raises(KeyError, match="neither a setting"):
        report.check_claim("A < C", {"A": 1.0})


def test_check_claim_returns_plain_bool():
    assert type(report.check_claim("A < B", {"A": np.float32(1), "B": np.float32(2)})) is bool


def test_compare_tolerance_is_passed_to_claims():
    t = report.PaperTable("T", "m", {"a": 1.0, "b": 1.02})
    df = report.compare(t, {"a": 1.0, "b": 1.08}, ["a ~ b"], tol=0.05)
    assert not bool(df.loc["a", "holds"])
    df = report.compare(t, {"a": 1.0, "b": 1.08}, ["a ~ b"], tol=0.1)
    assert bool(df.loc["a", "holds"])
    with pytest.raises(ValueError, match="paper's own numbers"):
        report.compare(t, {"a": 1.0}, ["a ~ b"], tol=0.01)


def test_compare_every_column_by_hand():
    df = report.compare(TABLE, ours={"RGB": 18.0, "KD": 16.5}, claims=["KD < RGB", "KD > 10"])
    assert df.index.tolist() == ["RGB", "Depth", "KD"]
    assert df["paper"].tolist() == [20.0, 10.0, 15.0]
    assert df.loc["RGB", "diff"] == -2.0 and df.loc["KD", "diff"] == 1.5
    assert np.isnan(df.loc["Depth", "diff"])
    assert df.loc["KD", "claim"] == "KD < RGB; KD > 10"
    assert df.loc["RGB", "claim"] == ""
    assert bool(df.loc["KD", "holds"]) is True
    assert str(df["holds"].dtype) == "boolean"
    # one of two claims failing makes the row fail
    df = report.compare(TABLE, ours={"RGB": 18.0, "KD": 16.5}, claims=["KD < RGB", "KD < 16"])
    assert bool(df.loc["KD", "holds"]) is False


def test_compare_plain_mapping_has_no_attrs():
    df = report.compare({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 3.0}, ["a < b"])
    assert "ref" not in df.attrs and bool(df.loc["a", "holds"])
    assert df.attrs == {}


def test_claim_against_a_number_needs_only_its_setting():
    df = report.compare(TABLE, ours={"KD": 14.0}, claims=["KD < 16"])
    assert bool(df.loc["KD", "holds"]) is True
    df = report.compare(TABLE, ours={"KD": 17.0}, claims=["KD < 16"])
    assert bool(df.loc["KD", "holds"]) is False


def test_rank_numbering_is_one_based_and_follows_direction():
    df = report.compare(TABLE, ours={"RGB": 9.0, "Depth": 1.0, "KD": 5.0}, claims=["lower is better"])
    assert df.loc["Depth", "claim"] == "rank 1 (lower is better)"
    assert df.loc["KD", "claim"] == "rank 2 (lower is better)"
    assert df.loc["RGB", "claim"] == "rank 3 (lower is better)"
    acc = report.PaperTable("T", "acc", {"a": 0.9, "b": 0.8, "c": 0.7})
    df = report.compare(acc, {"a": 0.95, "b": 0.85, "c": 0.5}, ["Higher is better"])
    assert df["claim"].tolist() == [f"rank {i} (higher is better)" for i in (1, 2, 3)]
    assert df["holds"].all()
    df = report.compare(acc, {"a": 0.5, "b": 0.85, "c": 0.95}, ["higher is better"])
    assert df["holds"].tolist() == [False, True, False]


def test_rank_claim_over_the_measured_subset_only():
    df = report.compare(TABLE, ours={"RGB": 9.0, "KD": 5.0}, claims=["lower is better"])
    # among the two measured settings KD is first and RGB second, as in the paper
    assert df.loc["KD", "claim"] == "rank 1 (lower is better)" and df.loc["RGB", "claim"] == "rank 2 (lower is better)"
    assert bool(df.loc["KD", "holds"]) and bool(df.loc["RGB", "holds"])
    assert df.loc["Depth", "holds"] is pd.NA and df.loc["Depth", "claim"] == ""


def test_rank_ties_share_a_rank():
    # a tie in our run does not reproduce the paper's strict order
    df = report.compare(TABLE, ours={"RGB": 5.0, "Depth": 1.0, "KD": 5.0}, claims=["lower is better"])
    assert df["holds"].tolist() == [False, True, True]
    tied = report.PaperTable("T", "m", {"a": 1.0, "b": 1.0, "c": 2.0})
    df = report.compare(tied, {"a": 3.0, "b": 3.0, "c": 4.0}, ["lower is better"])
    assert df["claim"].tolist() == ["rank 1 (lower is better)", "rank 1 (lower is better)", "rank 3 (lower is better)"]
    assert df["holds"].all()
    df = report.compare(tied, {"a": 3.0, "b": 2.0, "c": 4.0}, ["lower is better"])
    assert df["holds"].tolist() == [False, True, True]


def test_rank_and_row_claims_combine():
    df = report.compare(TABLE, ours={"RGB": 9.0, "Depth": 1.0, "KD": 5.0}, claims=["lower is better", "KD > 6"],
                        strict=False)
    assert df.loc["KD", "claim"] == "KD > 6; rank 2 (lower is better)"
    assert bool(df.loc["KD", "holds"]) is False  # the rank holds, the other claim not
    assert bool(df.loc["RGB", "holds"]) is True


def test_unparsable_claim_in_compare():
    with pytest.raises(ValueError, match="cannot read claim"):
        report.compare(TABLE, ours={"KD": 1.0}, claims=["KD is best"])


# ---------------------------------------------------------------------------------------------
# findings: claims_table, say, paragraph, findings_summary
# ---------------------------------------------------------------------------------------------
def test_claims_table_forms_and_errors():
    df = report.claims_table({"x": ("sanity check", None), "y": ("paper claim", np.bool_(True))})
    assert df.loc["x", "holds"] is pd.NA and bool(df.loc["y", "holds"]) is True
    assert "detail" not in df.columns
    assert df.index.name == "finding" and str(df["holds"].dtype) == "boolean"
    assert list(report.KINDS) == ["paper claim", "sanity check", "construction"]
    for bad in [(True,), ("paper claim", True, "d", "e"), [True, True], True]:
        with pytest.raises(ValueError, match="expected \\(kind, holds\\)"):
            report.claims_table({"a": bad})
    with pytest.raises(ValueError, match="is not one of"):
        report.claims_table({"a": ("paper", True)})
    with pytest.raises(TypeError, match="holds must be a bool or None"):
        report.claims_table({"a": ("paper claim", 1)})
    with pytest.raises(ValueError, match="at least one finding"):
        report.claims_table({})


def test_say_chooses_by_condition():
    assert report.say(True, "won by {g:.1f}", "lost by {g:.1f}", g=1.25) == "won by 1.2"
    assert report.say(False, "won", "lost by {g}", g=2) == "lost by 2"
    assert report.say(np.bool_(False), "won", "lost") == "lost"
    assert report.say(None, "won", "lost", "cannot tell") == "cannot tell"
    assert report.say(pd.NA, "won", "lost", if_unknown="n/a") == "n/a"
    out = report.say(True, "**yes**", "no")
    assert isinstance(out, report.Markdown) and out._repr_markdown_() == "**yes**"
    with pytest.raises(ValueError, match="no if_unknown"):
        report.say(None, "a", "b")
    with pytest.raises(TypeError, match="must be a bool or None"):
        report.say(1, "a", "b")
    with pytest.raises(KeyError, match="names \\{gap\\}"):
        report.say(True, "{gap}", "b")


def test_paragraph_joins_and_skips_empty():
    p = report.paragraph(" One. ", "", "  ", "Two.")
    assert p == "One. Two." and isinstance(p, report.Markdown)


def test_findings_summary_lines():
    a = report.claims_table({"KD helps": ("paper claim", True, "+3 mm"), "AP = coco": ("sanity check", False)})
    b = report.claims_table({"built so": ("construction", None)})
    md = report.findings_summary(a, b)
    assert md.splitlines() == [
        "- ✓ *paper claim*: KD helps (+3 mm): **holds**.",
        "- ✗ *sanity check*: AP = coco: **does not hold**.",
        "- – *construction*: built so: **not judged**.",
    ]
    with pytest.raises(ValueError, match="claims_table\\(\\) outputs"):
        report.findings_summary(pd.DataFrame({"holds": [True]}))
    with pytest.raises(ValueError, match="no findings"):
        report.findings_summary()


# ---------------------------------------------------------------------------------------------
# results files: NaN and numpy scalars, atomic write, metadata
# ---------------------------------------------------------------------------------------------
def test_encode_values(tmp_path):
    meta = report.run_metadata("demo", "fast", "cpu", np.int64(2))
    assert meta["seed"] == 2 and type(meta["seed"]) is int and meta["wall_time_s"] is None
    import torch

    res = {"nan": float("nan"), "i": np.int64(7), "f": np.float64(0.25), "t": torch.tensor(1.5), "na": pd.NA,
           "b": True, "s": "x", "tuple": (1, 2), "series": pd.Series([1.0, 2.0], name="v")}
    path = report.save_results(res, tmp_path / "sub" / "r.json", meta)
    assert not list((tmp_path / "sub").glob("*.tmp"))
    back, m = report.load_results(path)
    assert back["nan"] is None and back["i"] == 7 and back["f"] == 0.25 and back["t"] == 1.5
    assert back["na"] is None and back["b"] is True and back["s"] == "x" and back["tuple"] == [1, 2]
    assert back["series"]["v"].tolist() == [1.0, 2.0]
    assert m["slug"] == "demo" and m["profile"] == "fast"
    raw = json.loads(path.read_text())
    assert set(raw) == {"metadata", "results"}


def test_stopwatch():
    with report.Stopwatch() as sw:
        time.sleep(0.01)
    assert 0.01 <= sw.seconds < 5


def test_rank_claim_with_nan_in_ours_fails_that_row():
    df = report.compare(TABLE, ours={"RGB": 9.0, "Depth": NAN, "KD": 5.0}, claims=["lower is better"])
    assert bool(df.loc["Depth", "holds"]) is False


def test_paper_table_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        TABLE.ref = "Table 9"


@pytest.mark.parametrize("content", ['{"metadata": {}}', '{"results": {}}', '"text"'])
def test_results_file_needs_both_keys(tmp_path, content):
    (tmp_path / "r.json").write_text(content)
    with pytest.raises(ValueError, match="not a cvtutor results file"):
        report.load_results(tmp_path / "r.json")


def test_findings_summary_of_concatenated_tables_shows_no_nan_detail():
    a = report.claims_table({"x": ("sanity check", True)})
    b = report.claims_table({"y": ("paper claim", False, "+1.0")})
    text = report.findings_summary(pd.concat([a, b]))
    assert "nan" not in text and "(+1.0)" in text


def test_mean_std_formats_one_or_many_values():
    assert report.mean_std([1.0, 2.0, 3.0]) == "2.0 ± 1.0"  # sample std (ddof = 1)
    assert report.mean_std([2.5]) == "2.5"
    assert report.mean_std([1, 2], ".3g", ".2g") == "1.5 ± 0.71"
    with pytest.raises(ValueError, match="at least one"):
        report.mean_std([])
