"""Tests of cvtutor.metrics.detection (IoU, matching, AP against pycocotools) and of TIDE."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cvtutor import report
from cvtutor.data import detection_sim as S
from cvtutor.data import coco
from cvtutor.metrics import detection as D
from cvtutor.papers import tide as T

ROOT = Path(__file__).resolve().parents[1]


def make_set(gt_rows, det_rows, n_images=None, n_classes=3):
    """GT rows (image, class, x, y, w, h[, crowd]) and detection rows (image, class, x, y, w, h, score)."""
    gt = pd.DataFrame([[i + 1, *r[:6], r[6] if len(r) > 6 else 0] for i, r in enumerate(gt_rows)],
                      columns=list(D.GT_COLUMNS))
    dets = pd.DataFrame([[i + 1, *r] for i, r in enumerate(det_rows)], columns=list(D.DET_COLUMNS))
    images = range(1, (n_images or max([r[0] for r in gt_rows + det_rows] + [1])) + 1)
    return D.make_detection_set(gt, dets, images=images, categories={k: f"c{k}" for k in range(1, n_classes + 1)})


# ---------------------------------------------------------------------------------------------
# IoU
# ---------------------------------------------------------------------------------------------
def test_iou_hand_cases():
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 5, 5], [2, 2, 4, 4]]
    iou = D.box_iou(a, b)[0]
    np.testing.assert_allclose(iou, [1.0, 50 / 150, 0.0, 25 / 100, 16 / 100])
    # crowd overlap = intersection / detection area
    crowd = D.box_iou([[0, 0, 4, 4]], [[0, 0, 100, 100]], crowd=[True])
    assert crowd[0, 0] == pytest.approx(1.0)


def test_iou_against_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(0, 50, (20, 2)), rng.uniform(1, 40, (20, 2))]
    b = np.c_[rng.uniform(0, 50, (15, 2)), rng.uniform(1, 40, (15, 2))]
    crowd = rng.random(15) < 0.3
    ref = mask_utils.iou(a.tolist(), b.tolist(), crowd.astype(np.uint8).tolist())
    np.testing.assert_allclose(D.box_iou(a, b, crowd), ref, atol=1e-12)


def test_iou_rejects_bad_boxes():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        D.box_iou([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="negative"):
        D.box_iou([[0, 0, -1, 1]], [[0, 0, 1, 1]])


# ---------------------------------------------------------------------------------------------
# AP
# ---------------------------------------------------------------------------------------------
def test_ap_hand_cases():
    assert D.average_precision([0.9], [True], 1) == pytest.approx(1.0)
    # TP, FP, TP with 3 GT: P = 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3 at recalls 1/3, 1/3, 2/3.
    # Recall points 0..0.33 read 1 (34 points), 0.34..0.66 read 2/3 (33 points), the rest 0.
    ap = D.average_precision([0.9, 0.8, 0.7], [True, False, True], 3)
    assert ap == pytest.approx((34 + 33 * 2 / 3) / 101)
    assert np.isnan(D.average_precision([0.5], [False], 0))
    assert D.average_precision([], [], 4) == 0.0


def test_interpolated_precision_is_monotone():
    p = np.random.default_rng(1).random(50)
    env = D.interpolated_precision(p)
    assert np.all(np.diff(env) <= 0) and np.all(env >= p)


def random_dataset(seed, n_img=25, n_cls=4):
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []
    for im in range(1, n_img + 1):
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 200, 2)
            w, h = rng.uniform(5, 80, 2)
            c = int(rng.integers(1, n_cls + 1))
            gt_rows.append((im, c, x, y, w, h, int(rng.random() < 0.1)))
            for _ in range(rng.integers(0, 3)):
                cd = c if rng.random() < 0.8 else int(rng.integers(1, n_cls + 1))
                det_rows.append((im, cd, x + rng.normal(0, 4), y + rng.normal(0, 4), w * rng.uniform(.8, 1.2),
                                 h * rng.uniform(.8, 1.2), float(rng.random())))
        for _ in range(rng.integers(0, 3)):
            det_rows.append((im, int(rng.integers(1, n_cls + 1)), *rng.uniform(0, 200, 2), *rng.uniform(5, 80, 2),
                             float(rng.random())))
    return make_set(gt_rows, det_rows, n_images=n_img, n_classes=n_cls)


@pytest.mark.parametrize("seed", [0, 1])
def test_ap_matches_pycocotools(seed):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = random_dataset(seed)
    ours = D.mean_average_precision(data)
    gt_json, res_json = coco.to_coco_json(data)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(res_json), "bbox")
        ev.params.maxDets = [100]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, 0]  # (IoU thresholds, recall points, classes)
    ref = np.where(prec > -1, prec, np.nan).mean(axis=1) * 100  # AP per (threshold, class)
    np.testing.assert_allclose(ours["per_class"].to_numpy(), ref.T, atol=1e-9)
    assert ours["map"] == pytest.approx(np.nanmean(ref), abs=1e-9)
    assert 5 < ours["map"] < 95  # a non-trivial case


def test_max_dets_per_image_or_per_class():
    # image 1: three class-1 boxes and one class-2 box; a cap of 2 per image keeps the two best
    # across classes (ties keep the earlier row), a cap of 2 per (image, class) keeps three.
    dets = [(1, 1, 0, 0, 5, 5, 0.5), (1, 2, 0, 0, 5, 5, 0.9), (1, 1, 9, 9, 5, 5, 0.5),
            (1, 1, 20, 0, 5, 5, 0.7), (2, 1, 0, 0, 5, 5, 0.1)]
    data = make_set([(1, 1, 0, 0, 5, 5)], dets)
    np.testing.assert_array_equal(D.top_per_image(data.dets, 2), [1, 3, 4])
    per_image = D.match_all(data, 0.5, 2, max_dets_per="image")
    per_class = D.match_all(data, 0.5, 2)
    assert sorted(per_image[(1, 1)].det_index) == [3]
    assert sorted(per_class[(1, 1)].det_index) == [0, 3]
    with pytest.raises(ValueError, match="max_dets_per must be"):
        D.match_all(data, 0.5, 2, max_dets_per="images")
    with pytest.raises(ValueError, match="max_dets must be >= 1"):
        D.top_per_image(data.dets, 0)


# ---------------------------------------------------------------------------------------------
# COCO JSON reading and the command line
# ---------------------------------------------------------------------------------------------
def coco_files(tmp_path, gt=None, res=None):
    gt = gt or {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
                                {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 20]}]}
    res = res if res is not None else [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.8}]
    gp, rp = tmp_path / "gt.json", tmp_path / "res.json"
    gp.write_text(json.dumps(gt))
    rp.write_text(json.dumps(res))
    return gp, rp


def test_load_coco_json_round_trip(tmp_path):
    data = coco.load_coco_json(*coco_files(tmp_path))
    assert len(data.gt) == 2 and len(data.dets) == 2 and data.categories == {1: "a", 2: "b"}
    assert data.images == (1, 2)
    again = coco.load_coco_json(*coco.to_coco_json(data))
    pd.testing.assert_frame_equal(again.gt, data.gt)


@pytest.mark.parametrize("gt_change, res_change, message", [
    (lambda g: g.pop("categories"), None, r"missing the key\(s\) \['categories'\]"),
    (lambda g: g["annotations"][0].pop("bbox"), None, r"annotations\[0\] is missing the key\(s\) \['bbox'\]"),
    (lambda g: g["annotations"][1].update(bbox=[0, 0, -3, 4]), None, "negative width or height"),
    (lambda g: g["annotations"][1].update(image_id=7), None, "image id 7"),
    (None, lambda r: r[0].pop("score"), r"results\[0\] is missing the key\(s\) \['score'\]"),
    (None, lambda r: r[1].update(bbox=[1, 1, 5, -1]), r"results\[1\].*negative"),
    (None, lambda r: r[1].update(image_id=99), "image id 99, which the ground truth does not have"),
    (None, lambda r: r[1].update(category_id=42), "category ids \\[42\\]"),
])
def test_malformed_files_name_the_problem(tmp_path, gt_change, res_change, message):
    gp, rp = coco_files(tmp_path)
    gt, res = json.loads(gp.read_text()), json.loads(rp.read_text())
    if gt_change:
        gt_change(gt)
    if res_change:
        res_change(res)
    gp, rp = coco_files(tmp_path, gt, res)
    with pytest.raises(ValueError, match=message):
        coco.load_coco_json(gp, rp)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert T.main([str(gp), str(rp)]) == 2
    assert "error:" in err.getvalue()


def test_cli_prints_summary(tmp_path, capsys):
    gp, rp = coco_files(tmp_path)
    assert T.main([str(gp), str(rp), "--name", "toy"]) == 0
    out = capsys.readouterr().out
    # class a: 1 GT, 1 perfect detection -> AP 100; class b: its GT gets a class-1 box at IoU 1 (Cls error).
    assert "box AP @ 50: 50.00" in out and "Cls" in out and "FP" in out


def test_cli_json_and_mode(tmp_path, capsys):
    gp, rp = coco_files(tmp_path)
    for mode in ("coco", "tidecv"):
        assert T.main([str(gp), str(rp), "--mode", mode, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)  # one JSON object, nothing else on stdout
        assert set(out) == {"ap", "main", "special", "counts"}
        assert list(out["main"]) == list(T.ERROR_TYPES)
        assert list(out["special"]) == list(T.SPECIAL_TYPES)
        assert out["ap"] == pytest.approx(50.0) and out["main"]["Cls"] == pytest.approx(50.0)
        assert out["counts"] == {"Cls": 1, "Loc": 0, "Both": 0, "Dupe": 0, "Bkg": 0, "Miss": 0}
    assert T.main([str(gp), str(rp), "--mode", "tidecv"]) == 0
    assert "tidecv" in capsys.readouterr().out
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as bad:
        T.main([str(gp), str(rp), "--mode", "voc"])
    assert bad.value.code == 2 and "invalid choice: 'voc'" in err.getvalue()
    with contextlib.redirect_stderr(err):
        assert T.main([str(gp), str(tmp_path / "missing.json"), "--json"]) == 2
        assert T.main([str(gp), str(rp), "--pos", "0.05", "--json"]) == 2
    assert "does not exist" in err.getvalue() and "bg_threshold <= pos_threshold" in err.getvalue()


def test_cli_as_module(tmp_path):
    """One real ``python -m`` call (slow: it imports torch), on a results file that does not exist."""
    gp, _ = coco_files(tmp_path)
    bad = subprocess.run([sys.executable, "-m", "cvtutor.papers.tide", str(gp), str(tmp_path / "nope.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr, bad.stderr


# ---------------------------------------------------------------------------------------------
# TIDE: error types and oracles on constructed cases
# ---------------------------------------------------------------------------------------------
GT_BOX = (100, 100, 50, 50)


def errors_of(data):
    run = T.classify_errors(data)
    return run, T.main_errors(run)


def test_perfect_detection_has_no_error():
    run, main = errors_of(make_set([(1, 1, *GT_BOX)], [(1, 1, *GT_BOX, 0.9)]))
    assert run.ap == pytest.approx(100.0)
    assert (main.abs() < 1e-12).all() and (T.special_errors(run).abs() < 1e-12).all()


@pytest.mark.parametrize("name, det", [
    ("Cls", (1, 2, 100, 100, 50, 50, 0.9)),   # IoU 1, wrong class
    ("Loc", (1, 1, 125, 100, 50, 50, 0.9)),   # IoU 1/3, right class
    ("Both", (1, 2, 125, 100, 50, 50, 0.9)),  # IoU 1/3, wrong class
    ("Bkg", (1, 1, 300, 300, 50, 50, 0.9)),   # IoU 0
])
def test_each_oracle_fixes_exactly_its_error(name, det):
    """Image 1 holds one error of the given type (and its GT), image 2 correct detections of
    classes 1 and 2 scored 0.5 (below the error). Only the oracle of that type may change AP."""
    gt = [(1, 1, *GT_BOX), (2, 1, *GT_BOX), (2, 2, 300, 300, 50, 50)]
    data = make_set(gt, [det, (2, 1, *GT_BOX, 0.5), (2, 2, 300, 300, 50, 50, 0.5)])
    run, main = errors_of(data)
    counts = run.counts()
    assert counts[name] == 1 and counts.drop([name, "Miss"]).sum() == 0
    others = main.drop(name)
    if name in ("Cls", "Loc"):  # the GT is covered by the error, so it is no Miss
        assert counts["Miss"] == 0
        assert (others.abs() < 1e-12).all()
        assert T.apply_oracles(run, [name]) == pytest.approx(100.0)
    else:  # Both and Bkg leave their GT missed; only Miss and the type's own oracle matter
        assert counts["Miss"] == 1
        assert (others.drop("Miss").abs() < 1e-12).all() and main["Miss"] > 0
    assert main[name] > 0
    assert T.apply_oracles(run, T.ERROR_TYPES) == pytest.approx(100.0)


def test_cls_oracle_hand_value():
    """1 GT of class 1 and one class-2 box at IoU 1: AP (class 1) = 0, Cls oracle -> 100."""
    run, main = errors_of(make_set([(1, 1, *GT_BOX)], [(1, 2, *GT_BOX, 0.9)]))
    assert run.ap == pytest.approx(0.0)
    assert main["Cls"] == pytest.approx(100.0)
    assert main.drop("Cls").abs().max() < 1e-12


def test_dupe_hand_values():
    # two GT; TP a (0.9), its duplicate (0.8), TP b (0.7): P = 1, 1/2, 2/3; R = 1/2, 1/2, 1
    # AP = (51 * 1 + 50 * 2/3) / 101; the Dupe oracle gives 100.
    gt = [(1, 1, *GT_BOX), (2, 1, *GT_BOX)]
    dets = [(1, 1, *GT_BOX, 0.9), (1, 1, 102, 100, 50, 50, 0.8), (2, 1, *GT_BOX, 0.7)]
    run, main = errors_of(make_set(gt, dets))
    ap = 100 * (51 + 50 * 2 / 3) / 101
    assert run.ap == pytest.approx(ap)
    assert main["Dupe"] == pytest.approx(100 - ap)
    assert main.drop("Dupe").abs().max() < 1e-12
    # a duplicate scored below every TP does not change the interpolated precision: dAP = 0
    dets[1] = (1, 1, 102, 100, 50, 50, 0.1)
    run, main = errors_of(make_set(gt, dets))
    assert run.counts()["Dupe"] == 1 and main["Dupe"] == pytest.approx(0.0)


def test_miss_oracle_stretches_recall():
    # 2 GT, one found (score 0.9, plus an FP at 0.8 on the other image's background), one missed.
    gt = [(1, 1, *GT_BOX), (2, 1, *GT_BOX)]
    dets = [(1, 1, *GT_BOX, 0.9), (2, 1, 400, 400, 20, 20, 0.8)]
    run, main = errors_of(make_set(gt, dets))
    assert run.counts()["Miss"] == 1
    assert run.ap == pytest.approx(100 * 51 / 101)
    assert main["Miss"] == pytest.approx(100 - 100 * 51 / 101)  # N_GT 2 -> 1: recall 1 at precision 1
    assert T.delta_ap(run, "FN") == pytest.approx(main["Miss"])


def test_cls_and_loc_errors_on_one_gt_give_one_tp():
    # a Cls error (0.9) and a Loc error (0.8) both point to the same GT: either oracle alone turns
    # its error into the TP; together only the higher-scoring one becomes the TP.
    dets = [(1, 2, *GT_BOX, 0.9), (1, 1, 125, 100, 50, 50, 0.8)]
    run, main = errors_of(make_set([(1, 1, *GT_BOX)], dets))
    assert list(run.dets["error"]) == ["Cls", "Loc"] or sorted(run.dets["error"]) == ["Cls", "Loc"]
    assert T.apply_oracles(run, ["Cls"]) == pytest.approx(100.0)
    assert T.apply_oracles(run, ["Cls", "Loc"]) == pytest.approx(100.0)
    cls, scores, tp, _, n_gt = T._oracle_points(run, ["Cls", "Loc"])
    assert tp.sum() == 1 and scores[tp][0] == 0.9 and n_gt[1] == 1


def test_global_claim_lets_an_unfixed_loc_error_block_the_cls_oracle():
    # the Loc error (0.9) outscores the Cls error (0.8) on the same GT: the Cls oracle alone turns
    # its error into a TP (below the Loc FP) in coco mode; tidecv's winner is the unfixed Loc error.
    dets = [(1, 1, 125, 100, 50, 50, 0.9), (1, 2, *GT_BOX, 0.8)]
    data = make_set([(1, 1, *GT_BOX)], dets)
    coco, tc = T.classify_errors(data), T.classify_errors(data, mode="tidecv")
    assert list(tc.dets.sort_values("score")["claims"]) == [False, True]
    assert T.apply_oracles(coco, ["Cls"]) == pytest.approx(50.0)  # precision 1/2 at recall 1
    assert T.apply_oracles(tc, ["Cls"]) == pytest.approx(0.0)  # class 2 emptied: dropped
    assert T.apply_oracles(tc, ["Loc"]) == pytest.approx(50.0)  # class 1: 100; 2 (FP, no GT): 0
    assert coco.classes == (1,) and tc.classes == (1, 2)


def test_conventions_and_their_names():
    assert T.conventions("coco") == T.Conventions() and T.conventions("tidecv").name == "tidecv"
    assert T.Conventions(clamp=True).name == "custom"
    assert set(T.DIVERGENCES) == set(T.Conventions.__dataclass_fields__)
    data = make_set([(1, 1, *GT_BOX)], [(1, 1, *GT_BOX, 0.9)])
    with pytest.raises(ValueError, match="mode must be one of"):
        T.classify_errors(data, mode="voc")
    run = T.classify_errors(data)
    assert T.with_conventions(run, T.Conventions(clamp=True)).ap == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"differ in \['strict_crowd'\].*classify again"):
        T.with_conventions(run, T.Conventions(strict_crowd=True))


def test_coco_like_variant_and_divergence_table():
    data, _ = T.simulated_set(S.random_scenes(30, 5, seed=0), T.BASE_RATES, 30, 5, seed=1)
    files = T.coco_like_variant(data, seed=2)
    assert 5 not in set(files.gt["category_id"]) and 4 not in set(files.dets["category_id"])
    assert files.gt["iscrowd"].any() and (files.dets["score"] == files.dets["score"].round(2)).all()
    effects = T.divergence_effects(T.convention_summaries(files))
    assert list(effects.index) == [*T.DIVERGENCES, "all (tidecv)"]
    assert effects.loc["zero_no_gt", "AP"] < 0  # class 5 (detections, no GT) now counts with AP 0
    table = T.divergence_table({"files": effects})
    assert table.loc["zero_no_gt", "files: on"] == "AP"
    with pytest.raises(ValueError, match="crowd_fraction"):
        T.coco_like_variant(data, crowd_fraction=1.0)


def test_crowd_detections_are_ignored():
    gt = [(1, 1, *GT_BOX), (1, 1, 300, 300, 100, 100, 1)]
    dets = [(1, 1, *GT_BOX, 0.5), (1, 1, 310, 310, 30, 30, 0.9)]
    run, main = errors_of(make_set(gt, dets))
    assert run.ap == pytest.approx(100.0) and len(run.dets) == 1


def test_unknown_oracle_raises():
    run, _ = errors_of(make_set([(1, 1, *GT_BOX)], [(1, 1, *GT_BOX, 0.9)]))
    with pytest.raises(ValueError, match="unknown oracle"):
        T.apply_oracles(run, ["Clss"])


# ---------------------------------------------------------------------------------------------
# TIDE on simulated detectors
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simulated():
    gt = S.random_scenes(120, 5, seed=3)
    data, injected = T.simulated_set(gt, T.BASE_RATES.replace(bkg=0.8), 120, 5, seed=4)
    return T.classify_errors(data), injected


def test_completeness_eq3(simulated):
    run, _ = simulated
    c = T.completeness(run)
    assert c["AP"] < 95
    assert c["all six oracles"] == pytest.approx(100.0)
    assert c["FP + FN oracles"] == pytest.approx(100.0)


def test_individual_errors_are_nonnegative_and_below_the_gap(simulated):
    run, _ = simulated
    main = T.main_errors(run)
    assert (main >= -1e-9).all() and (main <= 100 - run.ap + 1e-9).all()


def test_progressive_depends_on_order_individual_does_not(simulated):
    run, _ = simulated
    a = T.progressive_errors(run, T.COCO_ORDER)
    b = T.progressive_errors(run, T.SWAPPED_ORDER)
    # progressive weights telescope to 100 - AP whatever the order
    assert a["progressive_dAP"].sum() == pytest.approx(100 - run.ap)
    assert b["progressive_dAP"].sum() == pytest.approx(100 - run.ap)
    assert abs(a.loc["Bkg", "progressive_dAP"] - b.loc["Bkg", "progressive_dAP"]) > 1e-3
    pd.testing.assert_series_equal(a.loc[list(T.ERROR_TYPES), "individual_dAP"],
                                   b.loc[list(T.ERROR_TYPES), "individual_dAP"])
    # Eq. (4) by hand for the second step of the COCO order
    assert a.loc["Both", "progressive_dAP"] == pytest.approx(
        T.apply_oracles(run, ["Loc", "Both"]) - T.apply_oracles(run, ["Loc"]))


def test_injected_errors_are_recovered(simulated):
    run, injected = simulated
    found, expected = run.counts(), T.expected_counts(injected)
    for k in T.ERROR_TYPES:
        assert abs(found[k] - expected[k]) <= max(2, 0.05 * expected[k]), (k, found[k], expected[k])
    assert (found[["Cls", "Loc", "Dupe", "Bkg"]] == expected[["Cls", "Loc", "Dupe", "Bkg"]]).all()


def test_raised_error_type_is_the_one_that_grows():
    cfg = T.Config.fast().replace(n_images=80)
    rec = T.dominant_error_recovery(cfg, seed=0)
    for k in ("Cls", "Loc", "Dupe", "Bkg", "Miss"):
        assert rec.loc[k, "largest growth"] == k


def test_fine_analysis_finds_the_size_difference():
    df = T.size_comparison(T.Config.fast().replace(n_images=120), seed=0).set_index(["detector", "size"])
    a, b = "A (better on M)", "B (better on L)"
    for t in ("Cls", "Loc"):
        assert df.loc[(a, "M"), t] < df.loc[(b, "M"), t]
        assert df.loc[(a, "L"), t] > df.loc[(b, "L"), t]


def test_fine_analysis_bins_add_up_for_miss(simulated):
    """Miss fixes only lower N_GT, and each missed GT lies in exactly one bin, so fixing all bins
    together equals fixing all misses."""
    run, _ = simulated
    all_bins = lambda f: np.ones(len(f), bool)  # noqa: E731
    assert T.apply_oracles(run, ["Miss"], all_bins) == pytest.approx(T.apply_oracles(run, ["Miss"]))


def test_simulator_rates_are_validated():
    with pytest.raises(ValueError, match="must be <= 1"):
        S.ErrorRates(cls=0.5, loc=0.6)
    with pytest.raises(ValueError, match="probability"):
        S.ErrorRates(dupe=1.5)


def test_simulator_is_seeded():
    gt = S.random_scenes(10, seed=1)
    a, _ = S.simulate_detector(gt, seed=2)
    b, _ = S.simulate_detector(gt, seed=2)
    pd.testing.assert_frame_equal(a, b)


def test_summary_figure_and_table(simulated):
    run, _ = simulated
    s = T.summarize(run, name="sim")
    fig = T.summary_figure([s, s])
    assert len(fig.data) == 6
    table = T.summary_table([s])
    assert table.loc["sim", "AP"] == pytest.approx(run.ap)
    assert "Main errors" in T.format_summary(s)


# ---------------------------------------------------------------------------------------------
# TIDE on a trained detector
# ---------------------------------------------------------------------------------------------
def test_trained_detector_pipeline():
    cfg = T.Config.fast().replace(det_size=32, det_train_images=64, det_test_images=12, det_width=8,
                                  det_dilations=(1,), det_steps=6, det_early=3, det_batch=8, det_topk=5)
    res = T.trained_detector_comparison(cfg, "cpu", seed=0, progress=False)
    assert list(res["history"]["step"]) == list(range(1, 7))
    assert {"loss", "heatmap", "size", "offset"} <= set(res["history"].columns)
    data = res["data"]
    assert len(data.dets) == 12 * 5 and set(data.dets["image_id"]) <= set(range(1, 13))
    assert data.dets["category_id"].between(1, cfg.n_classes).all() and (data.dets[["w", "h"]] >= 0).all().all()
    assert list(res["table"].index) == ["CenterNet, step 3", "CenterNet, step 6", "Improvement"]
    assert res["table"].loc["Improvement", "AP"] == pytest.approx(res["summary"]["ap"] - res["early"]["ap"])
    # Eq. (3) holds on a real detector's output too
    c = T.completeness(T.classify_errors(data))
    assert c["all six oracles"] == pytest.approx(100.0) and c["FP + FN oracles"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="det_early"):
        T.train_detector(cfg.replace(det_early=6), "cpu")
    with pytest.raises(ValueError, match="split"):
        T.detector_scenes(cfg, "val")


def test_cli_plot_is_self_contained(tmp_path):
    """``--plot`` writes an HTML file that opens offline: plotly.js inside it, no CDN."""
    gp, rp = coco_files(tmp_path)
    out = tmp_path / "summary.html"
    assert T.main([str(gp), str(rp), "--plot", str(out)]) == 0
    html = out.read_text()
    assert "<script src=" not in html  # nothing loaded from elsewhere (the bundle names URLs in its own code)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # the library itself is embedded


def test_type_colours_are_distinct():
    assert len(set(T.TYPE_COLORS.values())) == len(T.TYPE_COLORS) == len(T.ERROR_TYPES) + len(T.SPECIAL_TYPES)


def test_smoke_profile_runs_every_full_path():
    full, smoke = T.Config.full(), T.Config.smoke()
    assert len(smoke.seeds) >= 2 and smoke.det_dilations == full.det_dilations
    assert smoke.det_max_objects == full.det_max_objects
    res = T.run(smoke)
    assert set(res["recovery"]["seed"]) == set(smoke.seeds)
    for key in ("summary", "completeness", "recovery", "sweep", "progressive", "table2", "table2_compare", "size",
                "density", "detector_history", "detector_summary", "detector_table2", "findings",
                "modes"):
        assert key in res, key
    assert set(res["findings"]["kind"]) <= set(report.KINDS)
