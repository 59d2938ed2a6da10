"""PSNR/SSIM against scikit-image, segmentation metrics against scikit-learn, the Fréchet
distance against its closed form for Gaussians, FID-lite and diversity on hand-built sets."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import confusion_matrix as sk_confusion, jaccard_score

from cvtutor.metrics import generative, images, segmentation as seg


# ----------------------------------------------------------------------------- images
def _pair(seed=0, shape=(3, 3, 23, 31)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    return x, (x + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)


def test_psnr_matches_skimage_and_closed_form():
    x, y = _pair()
    ref = [peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1) for a, b in zip(x, y)]
    np.testing.assert_allclose(images.psnr(x, y).numpy(), ref, rtol=1e-10)
    z = torch.zeros(1, 1, 4, 4)
    assert images.psnr(z, z + 0.1).item() == pytest.approx(20.0, rel=1e-5)  # MSE 0.01
    assert images.psnr(z, z).item() == float("inf")


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage(channels):
    x, y = _pair(1, (2, channels, 20, 27))
    ref = [structural_similarity(a.numpy(), b.numpy(), data_range=1, channel_axis=0,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
           for a, b in zip(x, y)]
    np.testing.assert_allclose(images.ssim(x, y).numpy(), ref, rtol=1e-8)
    assert images.ssim(x, x).numpy() == pytest.approx(1.0)


def test_image_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        images.psnr(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="one shape"):
        images.ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 15))
    with pytest.raises(ValueError, match="at least 11 x 11"):
        images.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# ----------------------------------------------------------------------------- segmentation
def test_confusion_iou_accuracy_match_sklearn():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 5, (2, 17, 19), generator=g)
    p = torch.where(torch.rand(t.shape, generator=g) < 0.7, t, torch.randint(0, 5, t.shape,
                                                                            generator=g))
    t[0, :3] = 255                                                           # ignored pixels
    keep = t.reshape(-1) != 255
    tn, pn = t.reshape(-1)[keep].numpy(), p.reshape(-1)[keep].numpy()
    conf = seg.confusion_matrix(p, t, 5)
    np.testing.assert_array_equal(conf.numpy(), sk_confusion(tn, pn, labels=range(5)))
    assert seg.pixel_accuracy(conf) == pytest.approx((tn == pn).mean())
    np.testing.assert_allclose(seg.iou_per_class(conf).numpy(),
                               jaccard_score(tn, pn, average=None, labels=range(5)))
    assert seg.mean_iou(conf) == pytest.approx(jaccard_score(tn, pn, average="macro"))


def test_mean_iou_skips_absent_classes_and_rejects_bad_labels():
    t = torch.tensor([[0, 0, 1, 1]])
    conf = seg.confusion_matrix(t, t, 4)                  # classes 2, 3 absent: NaN, skipped
    assert seg.mean_iou(conf) == 1.0 and torch.isnan(seg.iou_per_class(conf)[2:]).all()
    with pytest.raises(ValueError, match=r"0\.\.3"):
        seg.confusion_matrix(t + 3, t, 4)
    with pytest.raises(ValueError, match="one shape"):
        seg.confusion_matrix(t, t[:, :2], 4)


def test_boundary_f_hand_cases():
    a = torch.zeros(1, 12, 12, dtype=torch.long)
    a[:, :, 6:] = 1                                       # a vertical edge between columns 5, 6
    assert seg.boundary_f(a, a).item() == 1.0
    shifted = torch.zeros_like(a)
    shifted[:, :, 8:] = 1                                 # 2 px away: within tolerance 2, not 1
    assert seg.boundary_f(shifted, a, tolerance=2).item() == 1.0
    assert seg.boundary_f(shifted, a, tolerance=1).item() == 0.0
    flat = torch.zeros_like(a)
    assert seg.boundary_f(flat, flat).item() == 1.0 and seg.boundary_f(flat, a).item() == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        seg.boundary_f(a, a, tolerance=-1)


# ----------------------------------------------------------------------------- generative
def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert generative.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # N(0, I) vs N(m, 4 I): |m|^2 + 3 (1 + 4 - 2 * 2) = |m|^2 + 3
    b = rng.normal(size=(4000, 3)) * 2 + np.array([1.0, 0, 0])
    assert generative.frechet_distance(a, b) == pytest.approx(4.0, rel=0.1)
    with pytest.raises(ValueError, match=r"\(n1, d\)"):
        generative.frechet_distance(a, b[:, :2])


def test_frechet_distance_exact_for_sample_moments():
    """With the samples' own moments the formula is exact: build two sets with chosen means and
    (diagonal) covariances and compare with the Gaussian closed form."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 2))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    a, b = z * [1.0, 2.0], z * [3.0, 1.0] + [0.5, -1.0]   # covariances diag(1, 4), diag(9, 1)
    want = 0.25 + 1.0 + (1 + 9 - 2 * 3) + (4 + 1 - 2 * 2)
    assert generative.frechet_distance(a, b, eps=0) == pytest.approx(want, rel=1e-9)


def test_diversity_hand_case():
    f = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert generative.diversity(f) == pytest.approx(5.0)
    assert generative.diversity(np.ones((4, 3))) == 0.0
    with pytest.raises(ValueError, match="N >= 2"):
        generative.diversity(np.ones((1, 3)))


def test_fid_lite_trains_freezes_and_separates_sets():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (128,), generator=g)
    imgs = torch.rand(128, 1, 16, 16, generator=g) * 0.2 + labels[:, None, None, None] * 0.6
    fid = generative.FIDLite.train(imgs, labels, steps=30, seed=0)
    assert not any(p.requires_grad for p in fid.net.parameters()) and not fid.net.training
    assert len(fid.history) == 30
    a, b = imgs[labels == 0], imgs[labels == 1]
    same = fid(a[: len(a) // 2], a[len(a) // 2:])
    assert fid(a, b) > 5 * same
    again = generative.FIDLite.train(imgs, labels, steps=30, seed=0)
    np.testing.assert_array_equal(fid.features(imgs[:8]), again.features(imgs[:8]))
    with pytest.raises(ValueError, match=r"labels \(N,\)"):
        generative.FIDLite.train(imgs, labels[:5])
