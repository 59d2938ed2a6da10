"""The body-pose metrics of metrics/pose.py: closed forms and pycocotools as the reference."""
import numpy as np
import pytest
import torch

from cvtutor.data import geometry as G
from cvtutor.metrics import pose


def _poses(n=8, J=17, seed=0):
    return np.random.default_rng(seed).normal(size=(n, J, 3)) * 300


def test_mpjpe_family_closed_forms():
    gt = _poses()
    shift = gt + np.array([100.0, 0, 0])  # a translated copy
    assert pose.mpjpe(shift, gt) == pytest.approx(0, abs=1e-9)  # root-aligned
    assert pose.abs_mpjpe(shift, gt) == pytest.approx(100)
    off = gt.copy()
    off[:, 3, 2] += 70  # one joint of 17 off by 70 mm
    assert pose.mpjpe(off, gt) == pytest.approx(70 / 17)
    valid = np.ones(gt.shape[:2], bool)
    valid[:, 3] = False
    assert pose.mpjpe(off, gt, valid=valid) == pytest.approx(0, abs=1e-9)


def test_pa_mpjpe_zero_for_a_similarity_copy():
    gt = _poses()
    R = G.so3_exp(torch.tensor([[0.3, -1.2, 0.5]], dtype=torch.float64))[0].numpy()
    copy = 0.7 * gt @ R.T + np.array([10.0, -40, 3000])
    assert pose.pa_mpjpe(copy, gt) < 1e-6 and pose.mpjpe(copy, gt) > 10
    noisy = gt + np.random.default_rng(1).normal(size=gt.shape) * 20
    assert (
        pose.pa_mpjpe(noisy, gt) <= pose.mpjpe(noisy, gt, root=None) + 1e-9
    )  # alignment never hurts


def test_pck3d_auc_pcp_pckh():
    gt = _poses(J=4)
    pred = gt.copy()
    pred[:, 1, 0] += 100  # within 150
    pred[:, 2, 0] += 200  # beyond
    assert pose.pck3d(pred, gt) == pytest.approx(3 / 4)
    # errors {0, 0, 100, 200}: 3DPCK(t) = 1/2 + [t ≥ 100]/4 + [t ≥ 200]/4 on [0, 150]
    t = np.linspace(0, 150, 31)
    curve = 0.5 + 0.25 * (t >= 100)
    assert pose.auc3d(pred, gt) == pytest.approx(np.trapezoid(curve, t) / 150)
    bones = [(0, 1), (0, 3)]
    lengths = np.linalg.norm(gt[:, 0] - gt[:, 1], axis=-1)
    expect = ((100 <= 0.5 * lengths).mean() + 1) / 2
    assert pose.pcp(pred, gt, bones) == pytest.approx(expect)
    uv, uv_gt = pred[..., :2], gt[..., :2]
    assert pose.pckh(uv, uv_gt, np.full(8, 250.0)) == pytest.approx(3 / 4)  # 100 ≤ 125 < 200
    assert pose.pckh(uv, uv_gt, np.full(8, 150.0)) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="one entry per sample"):
        pose.pckh(uv, uv_gt, np.ones(3))


def test_depth_order_accuracy():
    gt = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert pose.depth_order_accuracy(gt * 2 + 5, gt) == 1.0
    assert pose.depth_order_accuracy(-gt, gt) == 0.0
    swapped = np.array([[2.0, 1.0, 3.0, 4.0]])  # one pair of six in the wrong order
    assert pose.depth_order_accuracy(swapped, gt) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match=r"\(n, P\)"):
        pose.depth_order_accuracy(gt[0], gt[0])


def _coco_people(n=6, seed=0):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(100, 400, size=(n, 1, 2))
    uv = centre + rng.normal(size=(n, 17, 2)) * 30
    vis = np.full((n, 17), 2)
    vis[0, :3] = 0  # unlabelled joints
    area = np.full(n, 90.0 * 90.0)
    return uv, vis, area


def test_oks_matches_pycocotools_and_ap_is_one_on_ground_truth():
    from pycocotools.cocoeval import COCOeval

    uv, vis, area = _coco_people()
    image = np.array([0, 0, 1, 1, 2, 2])
    res = pose.coco_keypoint_ap(uv, vis, image, area, uv, np.ones(6), image)
    assert res["AP"] == pytest.approx(1.0) and res["AR"] == pytest.approx(1.0)
    noisy = uv + np.random.default_rng(2).normal(size=uv.shape) * 8
    ours = pose.oks(noisy, uv, vis, area)
    # COCOeval.computeOks on the same pair (one gt, one detection per image)
    ev = COCOeval(iouType="keypoints")
    for k in range(6):
        g = {
            "keypoints": np.concatenate([uv[k], vis[k][:, None]], 1).reshape(-1).tolist(),
            "area": area[k],
            "bbox": [0, 0, 1, 1],
        }
        d = {
            "keypoints": np.concatenate([noisy[k], np.ones((17, 1))], 1).reshape(-1).tolist(),
            "score": 1.0,
        }
        ev._gts = {(0, 1): [g]}
        ev._dts = {(0, 1): [d]}
        ev.params.maxDets = [20]
        assert ev.computeOks(0, 1)[0, 0] == pytest.approx(ours[k])
    res = pose.coco_keypoint_ap(uv, vis, image, area, noisy, np.ones(6), image)
    assert 0 < res["AP"] < 1
    with pytest.raises(ValueError, match=r"\(N, 17, 2\)"):
        pose.coco_keypoint_ap(uv[:, :5], vis, image, area, uv, np.ones(6), image)
