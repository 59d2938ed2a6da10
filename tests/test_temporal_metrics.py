"""Temporal metrics against hand cases and transcriptions of the official evaluation code.

The references below are transcriptions (loops kept as in the originals) of:
ActivityNet ``Evaluation/utils.py`` (``interpolated_prec_rec``, ``segment_iou``) and
``Evaluation/eval_detection.py`` (``compute_average_precision_detection``), github.com/activitynet/
ActivityNet; AVVP ``utils/eval_metrics.py`` (``segment_level``, ``event_level``, ``extract_event``,
``event_wise_metric``), github.com/YapengTian/AVVP-ECCV20; DAVIS ``f_measure`` / ``seg2bmap`` and
``db_statistics`` (davis-2017 toolkit), with SciPy's dilation by scikit-image's disk.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from cvtutor.metrics import temporal as tm


# --- ActivityNet reference (transcribed) -------------------------------------------------------
def ref_interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def ref_segment_iou(target, candidates):
    tt1 = np.maximum(target[0], candidates[:, 0])
    tt2 = np.minimum(target[1], candidates[:, 1])
    inter = (tt2 - tt1).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    return inter.astype(float) / union


def ref_compute_average_precision_detection(ground_truth, prediction, tiou_thresholds):
    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    sort_idx = prediction["score"].values.argsort()[::-1]  # (int() below: pandas 2 rows are float)
    prediction = prediction.loc[sort_idx].reset_index(drop=True)
    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))
    ground_truth_gbvn = ground_truth.groupby("video-id")
    for idx, this_pred in prediction.iterrows():
        try:
            ground_truth_videoid = ground_truth_gbvn.get_group(this_pred["video-id"])
        except Exception:
            fp[:, idx] = 1
            continue
        this_gt = ground_truth_videoid.reset_index()
        tiou_arr = ref_segment_iou(
            this_pred[["t-start", "t-end"]].values.astype(float),
            this_gt[["t-start", "t-end"]].values.astype(float),
        )
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, int(this_gt.loc[jdx]["index"])] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, int(this_gt.loc[jdx]["index"])] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
    ap = np.zeros(len(tiou_thresholds))
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = ref_interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
    return ap


def _fixture(rng, n_videos=6, n_gt=12, n_pred=40, n_classes=1):
    vid = rng.integers(0, n_videos, n_gt)
    s = rng.uniform(0, 80, n_gt)
    gt = pd.DataFrame(
        {
            "video_id": vid,
            "label": rng.integers(0, n_classes, n_gt),
            "t_start": s,
            "t_end": s + rng.uniform(2, 20, n_gt),
        }
    )
    # predictions: jittered GT copies (some) and random segments (others), random videos
    k = rng.integers(0, n_gt, n_pred)
    jitter = rng.normal(0, 3, (n_pred, 2))
    near = rng.random(n_pred) < 0.6
    ps = np.where(near, gt["t_start"].to_numpy()[k] + jitter[:, 0], rng.uniform(0, 80, n_pred))
    pe = np.where(near, gt["t_end"].to_numpy()[k] + jitter[:, 1], ps + rng.uniform(1, 20, n_pred))
    pe = np.maximum(pe, ps + 0.1)
    pv = np.where(near, gt["video_id"].to_numpy()[k], rng.integers(0, n_videos + 2, n_pred))
    pl = np.where(near, gt["label"].to_numpy()[k], rng.integers(0, n_classes, n_pred))
    pred = pd.DataFrame(
        {"video_id": pv, "label": pl, "t_start": ps, "t_end": pe, "score": rng.random(n_pred)}
    )
    return gt, pred


def _dashed(df):
    return df.rename(columns={"video_id": "video-id", "t_start": "t-start", "t_end": "t-end"})


@pytest.mark.parametrize("seed", range(8))
def test_activitynet_ap_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    gt, pred = _fixture(rng)
    thr = np.linspace(0.5, 0.95, 10)
    ours = tm.average_precision_detection(gt, pred, thr)
    ref = ref_compute_average_precision_detection(_dashed(gt), _dashed(pred), thr)
    assert np.allclose(ours, ref, atol=1e-12)


def test_all_point_ap_matches_reference_and_is_not_101_points():
    rng = np.random.default_rng(0)
    for _ in range(20):
        tp = rng.random(30) < 0.5
        prec = np.cumsum(tp) / np.arange(1, 31)
        rec = np.cumsum(tp) / 25
        assert np.isclose(tm.all_point_ap(prec, rec), ref_interpolated_prec_rec(prec, rec))
    # one TP then one FP with 2 GT: all-point AP = 0.5; COCO's 101 points give 51/101
    assert tm.all_point_ap([1.0, 0.5], [0.5, 0.5]) == 0.5


def test_map_perfect_detections_and_missing_class():
    rng = np.random.default_rng(1)
    gt, _ = _fixture(rng, n_classes=3, n_gt=20)
    perfect = gt.assign(score=rng.random(len(gt)))
    res = tm.mean_average_precision(gt, perfect)
    assert np.allclose(res["ap"].to_numpy(), 1.0) and res["average_map"] == 1.0
    only_two = perfect[perfect["label"] != gt["label"].iloc[0]]
    res = tm.mean_average_precision(gt, only_two)
    assert (res["ap"].loc[gt["label"].iloc[0]] == 0).all()
    assert np.isclose(res["average_map"], 2 / 3)
    with pytest.raises(ValueError, match="missing the column"):
        tm.mean_average_precision(gt.drop(columns="label"), perfect)


def test_tiou_and_nms_by_hand():
    a = np.array([[0.0, 10.0], [5.0, 15.0]])
    b = np.array([[0.0, 10.0], [10.0, 20.0], [2.0, 4.0]])
    expect = np.array([[1.0, 0.0, 0.2], [5 / 15, 5 / 15, 0.0]])
    assert np.allclose(tm.tiou(a, b), expect)
    for i in range(2):
        assert np.allclose(tm.tiou(a[i : i + 1], b)[0], ref_segment_iou(a[i], b))
    # segments by score: A [0,10] .9, B [1,11] .8 (tIoU(A,B)=9/11), C [9,20] .7 (tIoU(A,C)=1/20),
    # D [12,19] .6 (tIoU(C,D)=7/11): at 0.5, A suppresses B; C survives; C suppresses D
    seg = np.array([[0.0, 10], [1, 11], [9, 20], [12, 19]])
    keep = tm.nms_1d(seg, [0.9, 0.8, 0.7, 0.6], 0.5)
    assert keep.tolist() == [0, 2]
    assert tm.nms_1d(seg, [0.9, 0.8, 0.7, 0.6], 0.85).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="ending before"):
        tm.tiou([[3.0, 1.0]], b)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        tm.nms_1d(np.zeros((3, 3)), [1, 2, 3], 0.5)


def test_average_recall_at_an():
    gt = pd.DataFrame({"video_id": [0, 0, 1], "t_start": [0.0, 20, 5], "t_end": [10.0, 30, 15]})
    props = pd.DataFrame(
        {
            "video_id": [0, 0, 0, 1],
            "t_start": [20.0, 0, 50, 6],
            "t_end": [30.0, 10, 60, 15],
            "score": [0.9, 0.5, 0.8, 0.3],
        }
    )
    ar = tm.average_recall_at_an(gt, props, [1, 2, 3])
    # top-1 per video: [20,30] (GT 2, tIoU 1) and [6,15] (GT 3, tIoU 0.9) -> recall 2/3 at
    # t <= 0.9, 1/3 above; top-3 adds [0,10] for GT 1
    assert np.isclose(ar.loc[1, 0.5], 2 / 3) and np.isclose(ar.loc[1, 0.95], 1 / 3)
    assert np.isclose(ar.loc[3, 0.9], 1.0) and np.isclose(ar.loc[3, 0.95], 2 / 3)
    assert ar.loc[1, "AR"] == ar.loc[2, "AR"] < ar.loc[3, "AR"]  # [50,60] outranks [0,10]
    y = ar["AR"].to_numpy()
    assert np.isclose(tm.ar_auc(ar), ((y[0] + y[1]) / 2 + (y[1] + y[2]) / 2) / 3)


# --- AVVP reference (transcribed) -------------------------------------------------------------
def ref_extract_event(seq, T):
    x, i = [], 0
    while i < T:
        if seq[i] == 1:
            start = i
            if i + 1 == T:
                x.append((start, T))
                break
            for j in range(i + 1, T):
                if seq[j] != 1:
                    i = j + 1
                    x.append((start, j))
                    break
                i = j + 1
                if i == T:
                    x.append((start, T))
                    break
        else:
            i += 1
    return [np.isin(np.arange(T), np.arange(s, e)).astype(float) for s, e in x]


def ref_event_wise_metric(event_p, event_gt):
    tp = fp = fn = 0
    if event_p is not None:
        for x1 in event_p:
            if event_gt is not None:
                flag = True
                for x2 in event_gt:
                    if np.sum(x1 * x2) >= 0.5 * np.sum(x1 + x2 - x1 * x2):
                        tp += 1
                        flag = False
                        break
                if flag:
                    fp += 1
            else:
                fp += 1
    if event_gt is not None:
        for x1 in event_gt:
            if event_p is not None:
                flag = True
                for x2 in event_p:
                    if np.sum(x1 * x2) >= 0.5 * np.sum(x1 + x2 - x1 * x2):
                        flag = False
                        break
                if flag:
                    fn += 1
            else:
                fn += 1
    return tp, fp, fn


def ref_f(TP, FP, FN):
    F = [
        2 * TP[i] / (2 * TP[i] + FN[i] + FP[i])
        for i in range(len(TP))
        if (TP + FP)[i] != 0 or (TP + FN)[i] != 0
    ]
    return 1.0 if len(F) == 0 else sum(F) / len(F)


def ref_segment_level(SO, GT):
    TP = np.sum(SO * GT, axis=1)
    FN = np.sum((1 - SO) * GT, axis=1)
    FP = np.sum(SO * (1 - GT), axis=1)
    return ref_f(TP, FP, FN)


def ref_event_level(SO, GT):
    C, T = SO.shape
    TP, FP, FN = np.zeros(C), np.zeros(C), np.zeros(C)
    for n in range(C):
        ep = ref_extract_event(SO[n], T) if SO[n].sum() != 0 else None
        eg = ref_extract_event(GT[n], T) if GT[n].sum() != 0 else None
        TP[n], FP[n], FN[n] = ref_event_wise_metric(ep, eg)
    return ref_f(TP, FP, FN)


def test_avvp_f_matches_the_reference():
    rng = np.random.default_rng(0)
    gt = (rng.random((30, 6, 10)) < 0.25).astype(int)
    gt[:, 3:] = 0  # many true negatives
    gt[0] = 0
    pred = np.where(rng.random(gt.shape) < 0.15, 1 - gt, gt)
    pred[0] = 0  # an all-negative video: F = 1 by AVVP's convention
    seg = tm.f_score(*tm.segment_counts(pred, gt))
    ev = tm.f_score(*tm.event_counts(pred, gt))
    assert np.allclose(seg, [ref_segment_level(p, g) for p, g in zip(pred, gt)])
    assert np.allclose(ev, [ref_event_level(p, g) for p, g in zip(pred, gt)])
    assert seg[0] == 1.0 and ev[0] == 1.0
    # Event@AV pools the audio and visual counts before the F
    pred_v = np.where(rng.random(gt.shape) < 0.2, 1 - gt, gt)
    ca, cv = tm.segment_counts(pred, gt), tm.segment_counts(pred_v, gt)
    pooled = tm.f_score(*(a + v for a, v in zip(ca, cv)))
    ref = [
        ref_f(
            *(
                np.sum(p * g, 1) + np.sum(q * g, 1),
                np.sum(p * (1 - g), 1) + np.sum(q * (1 - g), 1),
                np.sum((1 - p) * g, 1) + np.sum((1 - q) * g, 1),
            )
        )
        for p, q, g in zip(pred, pred_v, gt)
    ]
    assert np.allclose(pooled, ref)


def test_avvp_by_hand_and_sklearn():
    assert tm.extract_events([1, 1, 0, 1]) == [(0, 2), (3, 4)]
    # IoU exactly 0.5 counts: GT [0,4), pred [0,2)
    g = np.zeros((1, 1, 10), int)
    g[0, 0, :4] = 1
    p = np.zeros_like(g)
    p[0, 0, :2] = 1
    assert [x.item() for x in tm.event_counts(p, g)] == [1, 0, 0]
    rng = np.random.default_rng(3)
    gt = rng.random((1, 4, 10)) < 0.5
    pr = rng.random((1, 4, 10)) < 0.5
    per_class = [f1_score(gt[0, c], pr[0, c], zero_division=0) for c in range(4)]
    assert np.isclose(tm.f_score(*tm.segment_counts(pr, gt))[0], np.mean(per_class))
    with pytest.raises(ValueError, match="0/1"):
        tm.segment_counts(np.full((1, 2, 3), 2), np.zeros((1, 2, 3)))


# --- DAVIS ---------------------------------------------------------------------------------
def ref_seg2bmap(seg):
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def ref_f_measure(fg, gt, bound_th=0.008):
    from scipy.ndimage import binary_dilation

    def disk(r):  # skimage.morphology.disk: the pixels with x^2 + y^2 <= r^2
        y, x = np.mgrid[-r : r + 1, -r : r + 1]
        return x**2 + y**2 <= r**2

    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fb, gb = ref_seg2bmap(fg), ref_seg2bmap(gt)
    fg_dil = binary_dilation(fb, disk(int(bound_pix)))
    gt_dil = binary_dilation(gb, disk(int(bound_pix)))
    gt_match, fg_match = gb * fg_dil, fb * gt_dil
    n_fg, n_gt = fb.sum(), gb.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = fg_match.sum() / n_fg, gt_match.sum() / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_j_and_f_against_reference_and_perfect_masks():
    rng = np.random.default_rng(0)
    gt = np.zeros((6, 60, 80), bool)
    for i in range(6):
        y, x = rng.integers(5, 30), rng.integers(5, 40)
        gt[i, y : y + 20, x : x + 25] = True
    pred = np.roll(gt, shift=(2, 3), axis=(1, 2))
    pred[3] = False
    pred[4] |= rng.random((60, 80)) < 0.02
    f = tm.boundary_f(pred, gt).numpy()
    assert np.allclose(f, [ref_f_measure(p, g) for p, g in zip(pred, gt)])
    assert np.allclose(tm.boundary_f(gt, gt).numpy(), 1.0)
    assert torch.equal(tm.region_similarity(gt, gt), torch.ones(6, dtype=torch.float64))
    assert torch.equal(tm.boundary_map(gt[0]), torch.from_numpy(ref_seg2bmap(gt[0]))[None])
    j = tm.region_similarity(pred, gt).numpy()
    assert np.allclose(j, (pred & gt).sum((1, 2)) / (pred | gt).sum((1, 2)))
    empty = np.zeros((1, 8, 8), bool)
    assert (
        tm.region_similarity(empty, empty).item() == 1.0
        and tm.boundary_f(empty, empty).item() == 1.0
    )
    with pytest.raises(ValueError, match="same shape"):
        tm.region_similarity(gt, gt[:2])


def test_recall_and_decay_as_davis():
    def ref(per_frame):
        M = np.nanmean(per_frame)
        O = np.nanmean(per_frame > 0.5)
        ids = (np.round(np.linspace(1, len(per_frame), 5) + 1e-10) - 1).astype(np.uint8)
        D_bins = [per_frame[ids[i] : ids[i + 1] + 1] for i in range(4)]
        return M, O, np.nanmean(D_bins[0]) - np.nanmean(D_bins[3])

    x = np.linspace(1.0, 0.2, 21)
    s = tm.sequence_statistics(x)
    assert np.allclose([s["mean"], s["recall"], s["decay"]], ref(x))
    assert s["decay"] > 0 and np.isclose(s["recall"], 13 / 21)
