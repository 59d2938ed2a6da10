import numpy as np
import pytest
import torch

from cvtutor.metrics import pose


def _shifted(errors):
    """Predictions displaced along x by the given (n, J) errors."""
    e = np.asarray(errors, dtype=float)
    gt = np.random.default_rng(0).normal(size=(*e.shape, 3))
    pred = gt.copy()
    pred[..., 0] += e
    return pred, gt


def test_epe_per_joint_then_mean_with_mask():
    pred, gt = _shifted([[10, 20], [30, 60], [50, 100]])
    valid = np.array([[1, 1], [1, 0], [1, 1]], dtype=bool)
    # joint 0: mean(10, 30, 50) = 30; joint 1: mean(20, 100) = 60 -> 45 (not the pooled mean 42)
    assert pose.epe(pred, gt, valid) == pytest.approx(45.0)
    assert pose.epe(pred, gt) == pytest.approx((30 + 60) / 2)
    assert pose.epe(pred, gt, valid, reduce="median") == pytest.approx((30 + 60) / 2)
    np.testing.assert_allclose(pose.epe_per_joint(pred, gt, valid), [30, 60])


def test_constant_error_gives_a_step_pck_and_its_exact_auc():
    pred, gt = _shifted(np.full((4, 21), 35.0))
    t = pose.thresholds(20, 50, 31)
    curve = pose.pck_curve(pred, gt, t)
    np.testing.assert_array_equal(curve, (t >= 35).astype(float))
    # trapezoid by hand: PCK = 1 on [35, 50] (15 mm), the step between 34 and 35 adds half a mm
    assert pose.auc(pred, gt, 20, 50, 31) == pytest.approx(15.5 / 30)
    from sklearn.metrics import auc as sk_auc
    assert pose.auc(pred, gt, 20, 50, 31) == pytest.approx(sk_auc(t, curve) / 30)


def test_auc_per_joint_then_averaged_and_masked():
    pred, gt = _shifted([[0.0, 100.0], [0.0, 100.0]])
    assert pose.auc(pred, gt) == pytest.approx(0.5)  # joint 0 always within, joint 1 never
    valid = np.array([[1, 0], [1, 0]], dtype=bool)
    assert pose.auc(pred, gt, valid=valid) == pytest.approx(1.0)  # a never-valid joint is skipped
    assert pose.pck(pred, gt, 20.0) == pytest.approx(0.5)


def test_pck_2d_and_torch_inputs():
    gt = torch.zeros(3, 21, 2)
    pred = gt.clone()
    pred[0, :, 0] = 3.0
    assert pose.pck_2d(pred, gt, 2.0) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2"):
        pose.pck_2d(torch.zeros(3, 21, 3), torch.zeros(3, 21, 3), 2.0)


def test_evaluate_3d_and_bad_inputs():
    pred, gt = _shifted(np.full((5, 21), 10.0))
    out = pose.evaluate_3d(pred, gt)
    assert out["epe_mean"] == pytest.approx(10.0) and out["auc"] == pytest.approx(1.0) and out["steps"] == 31
    with pytest.raises(ValueError, match=r"\(n, J, D\)"):
        pose.epe(np.zeros((5, 21, 3)), np.zeros((5, 20, 3)))
    with pytest.raises(ValueError, match="valid must have shape"):
        pose.epe(pred, gt, valid=np.ones((5, 20), bool))
    with pytest.raises(ValueError, match="t_max > t_min"):
        pose.auc(pred, gt, 50, 20)
    with pytest.raises(ValueError, match="reduce"):
        pose.epe(pred, gt, reduce="max")
