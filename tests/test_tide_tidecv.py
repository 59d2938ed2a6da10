"""``mode="tidecv"`` against the authors' own package, ``tidecv`` 1.0.1 (a dev dependency).

Random COCO-style sets stress every place where ``tidecv``'s conventions differ from COCO's
(``cvtutor.papers.tide.DIVERGENCES``): overlapping objects, near-duplicate and mislocalised boxes,
class confusions, crowd regions, images without GT or without detections, a rare class, a class
with detections but no GT, scores rounded so that ties are common, and a per-image ``max_dets``
cap that binds. Both tools read the same files; ``tidecv`` through its own COCO readers.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pandas as pd
import pytest

from cvtutor.data import coco
from cvtutor.metrics import detection as D
from cvtutor.papers import tide as T

tidecv = pytest.importorskip("tidecv")

TOL = 1e-4  # AP points


def stress_set(seed: int, n_img: int = 40) -> D.DetectionSet:
    """A random COCO-style set with 8 classes: 1-4 common (with crowd regions, overlapping
    neighbours, class confusions), 5 rare (one GT), 6 with detections but no GT, 7 with exactly 20
    GT (so recalls land on the grid points 0.35, 0.70, 0.95 where COCO's linspace is one ulp off),
    8 with one GT that nothing detects. Images 1-3 have no GT, image 4 only a crowd region, the last
    image no detection; scores are rounded to 2 decimals, so ties across images are common."""
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []

    def det(im, c, box, score):
        det_rows.append((im, c, *box, round(float(score), 2)))

    for im in range(1, n_img + 1):
        for _ in range(0 if im <= 3 else int(rng.integers(1, 7))):
            x, y = rng.uniform(0, 150, 2)
            w, h = rng.uniform(8, 90, 2)
            c = int(rng.integers(1, 5))
            iscrowd = int(im == 4 or rng.random() < 0.12)
            gt_rows.append((im, c, x, y, w, h, iscrowd))
            if rng.random() < 0.2:  # an overlapping neighbour of the same or another class
                gt_rows.append((im, int(rng.integers(1, 5)), x + rng.uniform(-0.4, 0.4) * w,
                                y + rng.uniform(-0.4, 0.4) * h, w * rng.uniform(0.7, 1.3), h, 0))
            if im == n_img:
                continue
            for _ in range(int(rng.integers(0, 4))):  # TPs, near-duplicates, Loc and Cls errors
                jitter = rng.choice([1.0, 3.0, 12.0])
                cd = c if rng.random() < 0.85 else int(rng.integers(1, 7))
                box = (x + rng.normal(0, jitter), y + rng.normal(0, jitter),
                       w * rng.uniform(0.7, 1.3), h * rng.uniform(0.7, 1.3))
                det(im, cd, box, rng.uniform(0.2, 1.0))
            if iscrowd and rng.random() < 0.7:  # a box inside the crowd region
                corner = (x + rng.uniform(0, 0.3) * w, y + rng.uniform(0, 0.3) * h)
                det(im, c, (*corner, 0.5 * w, 0.5 * h), rng.random())
        if im != n_img:
            for _ in range(int(rng.integers(0, 3))):  # background boxes, any class (6 included)
                det(im, int(rng.integers(1, 7)), (*rng.uniform(0, 200, 2), *rng.uniform(5, 60, 2)),
                    rng.uniform(0.0, 0.6))
    for im in range(5, 25):  # class 7: 20 GT, apart from the others
        gt_rows.append((im, 7, 300.0, 300.0, 40.0, 40.0, 0))
        if rng.random() < 0.85:
            det(im, 7, (300 + rng.normal(0, 2), 300 + rng.normal(0, 2), 40.0, 40.0), rng.random())
        if rng.random() < 0.3:
            det(im, 7, (310.0, 310.0, 40.0, 40.0), rng.random())
    gt_rows.append((n_img - 1, 5, 10.0, 10.0, 30.0, 30.0, 0))  # the rare class
    det(n_img - 1, 5, (12.0, 11.0, 29.0, 30.0), 0.5)
    gt_rows.append((n_img - 2, 8, 250.0, 10.0, 30.0, 30.0, 0))  # found by nothing
    gt = pd.DataFrame([[i + 1, *r] for i, r in enumerate(gt_rows)], columns=list(D.GT_COLUMNS))
    dets = pd.DataFrame([[i + 1, *r] for i, r in enumerate(det_rows)], columns=list(D.DET_COLUMNS))
    return D.make_detection_set(gt, dets, images=range(1, n_img + 1),
                                categories={k: f"c{k}" for k in range(1, 9)})


def write_coco(data: D.DetectionSet, tmp_path) -> tuple[str, str]:
    """GT and results files in COCO format, with the fields ``tidecv``'s reader needs (file name,
    image size, a polygon segmentation)."""
    gt, res = coco.to_coco_json(data)
    for im in gt["images"]:
        im.update(file_name=f"{im['id']}.jpg", width=400, height=400)
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    gp, rp = tmp_path / "gt.json", tmp_path / "results.json"
    gp.write_text(json.dumps(gt))
    rp.write_text(json.dumps(res))
    return str(gp), str(rp)


def tidecv_summary(gt_path: str, res_path: str, pos: float = 0.5, bkg: float = 0.1,
                   max_dets: int = 100) -> dict:
    """``tidecv``'s numbers in the layout of ``T.summarize``."""
    from tidecv import TIDE, datasets

    with contextlib.redirect_stdout(io.StringIO()):
        gt, preds = datasets.COCO(gt_path), datasets.COCOResult(res_path)
        gt.max_dets = max_dets
        tide = TIDE(pos_threshold=pos, background_threshold=bkg)
        run = tide.evaluate(gt, preds, mode=TIDE.BOX, name="run")
        main = tide.get_main_errors()["run"]
        special = tide.get_special_errors()["run"]
    counts = {e.short_name: n for e, n in run.count_errors().items()}
    return {"ap": run.ap, "main": main, "counts": counts,
            "special": {"FP": special["FalsePos"], "FN": special["FalseNeg"]}}


def assert_agrees(ours: dict, ref: dict) -> None:
    assert ours["ap"] == pytest.approx(ref["ap"], abs=TOL)
    for group, keys in (("main", T.ERROR_TYPES), ("special", T.SPECIAL_TYPES)):
        for k in keys:
            assert ours[group][k] == pytest.approx(ref[group][k], abs=TOL), (group, k)
    assert ours["counts"] == {k: ref["counts"][k] for k in T.ERROR_TYPES}


SEEDS = range(4)


def max_dets_of(seed: int) -> int:
    return (100, 4)[seed % 2]  # a per-image cap that binds on odd seeds


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Per seed: the files, our reading of them and ``tidecv``'s summary (computed once)."""
    out = {}
    for seed in SEEDS:
        paths = write_coco(stress_set(seed), tmp_path_factory.mktemp(f"seed{seed}"))
        ref = tidecv_summary(*paths, max_dets=max_dets_of(seed))
        out[seed] = (paths, coco.load_coco_json(*paths), ref)
    return out


def figures(s: dict) -> np.ndarray:
    return np.array([s["ap"], *(s["main"][k] for k in T.ERROR_TYPES),
                     *(s["special"][k] for k in T.SPECIAL_TYPES),
                     *(s["counts"][k] for k in T.ERROR_TYPES)], float)


@pytest.mark.parametrize("seed", SEEDS)
def test_tidecv_mode_agrees_with_tidecv(seed, cases):
    _, data, ref = cases[seed]
    ours = T.summarize(T.classify_errors(data, max_dets=max_dets_of(seed), mode="tidecv"))
    assert_agrees(ours, ref)


def test_every_divergence_matters(cases):
    """The sets exercise each convention: with any one of them switched back to COCO's, some
    figure of some seed is off by more than the tolerance (so the agreement above is not luck)."""
    runs = {}

    def off(seed, data, ref, mixed):
        key = (seed, *(getattr(mixed, f) for f in T.CLASSIFY_FIELDS))
        if key not in runs:
            runs[key] = T.classify_errors(data, max_dets=max_dets_of(seed), mode=mixed)
        run = T.with_conventions(runs[key], mixed)
        return np.abs(figures(T.summarize(run)) - figures(ref)).max()

    for name in T.DIVERGENCES:
        mixed = dataclasses.replace(T.MODES["tidecv"], **{name: False})
        assert any(off(seed, *case[1:], mixed) > 10 * TOL for seed, case in cases.items()), name


def test_other_thresholds_and_the_threshold_range(cases, tmp_path):
    """t_f = 0.75, t_b = 0.2; and AP@[.5:.95] as tidecv's evaluate_range computes it."""
    from tidecv import TIDE, datasets

    paths, data, _ = cases[0]
    ours = T.summarize(data, 0.75, 0.2, mode="tidecv", coco_map=True)
    assert_agrees(ours, tidecv_summary(*paths, pos=0.75, bkg=0.2))
    with contextlib.redirect_stdout(io.StringIO()):
        tide = TIDE()
        tide.evaluate_range(datasets.COCO(paths[0]), datasets.COCOResult(paths[1]), mode=TIDE.BOX,
                            name="run")
    ref = np.mean([r.ap for r in tide.run_thresholds["run"]])
    assert ours["map_coco"] == pytest.approx(ref, abs=TOL)  # AP does not depend on t_b


def test_crowd_boundary_against_tidecv(tmp_path):
    """A box whose crowd overlap is exactly t_f = 0.5: COCO ignores it, tidecv counts it (a Bkg
    error here); a box inside the region is ignored by both, yet tidecv still bins it."""
    gt = pd.DataFrame({"id": [1, 2], "image_id": [1, 1], "category_id": [1, 1], "x": [0.0, 100.0],
                       "y": [0.0] * 2, "w": [20.0, 40.0], "h": [20.0, 40.0], "iscrowd": [0, 1]})
    dets = pd.DataFrame({"id": [1, 2, 3], "image_id": [1] * 3, "category_id": [1] * 3,
                         "x": [0.0, 120.0, 128.0], "y": [0.0, 0.0, 0.0], "w": [20.0, 40.0, 20.0],
                         "h": [20.0, 10.0, 10.0], "score": [0.9, 0.8, 0.7]})
    data = D.make_detection_set(gt, dets, categories={1: "a"})
    coco, tc = T.classify_errors(data), T.classify_errors(data, mode="tidecv")
    assert list(coco.dets["row"]) == [0] and list(tc.dets["ignored"]) == [False, False, True]
    assert list(tc.dets["error"]) == ["", "Bkg", "Bkg"] and coco.ap == pytest.approx(100.0)
    assert_agrees(T.summarize(tc), tidecv_summary(*write_coco(data, tmp_path)))


def test_command_line_json_agrees_with_tidecv(cases, capsys):
    paths, _, ref = cases[0]
    assert T.main([*paths, "--mode", "tidecv", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"ap", "main", "special", "counts"}
    assert_agrees(out, ref)


def test_where_tidecv_divides_by_zero(tmp_path):
    """No detection at all: the Miss and FN oracles leave no class to average. tidecv raises
    ZeroDivisionError (dbolya/tide#9); the tidecv mode reports nan (``null`` in ``--json``)."""
    from tidecv import TIDE, datasets

    gt = pd.DataFrame({"id": [1], "image_id": [1], "category_id": [1], "x": [0.0], "y": [0.0],
                       "w": [9.0], "h": [9.0], "iscrowd": [0]})
    data = D.make_detection_set(gt, pd.DataFrame(columns=list(D.DET_COLUMNS)), images=[1, 2])
    paths = write_coco(data, tmp_path)
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(ZeroDivisionError):
        tide = TIDE()
        tide.evaluate(datasets.COCO(paths[0]), datasets.COCOResult(paths[1]), mode=TIDE.BOX, name="run")
        tide.get_main_errors()
    ours = T.summarize(data, mode="tidecv")
    assert ours["ap"] == 0.0 and np.isnan(ours["main"]["Miss"]) and np.isnan(ours["special"]["FN"])
    assert ours["counts"]["Miss"] == 1
