"""Heatmap targets and decoders: closed forms and round trips."""
import pytest
import torch

from cvtutor.nn import heatmaps as HM

D = torch.float64


def test_gaussian_targets_peak_and_outside():
    uv = torch.tensor([[[11.0, 7.0], [40.0, 5.0]]], dtype=D)  # second joint outside a 32-px crop
    h = HM.gaussian_heatmaps(uv, 32, 16, 1.0)
    assert h.shape == (1, 2, 16, 16) and h[0, 1].abs().max() == 0
    assert h[0, 0, 3, 5] == 1.0  # heatmap pixel (5, 3) has its centre at (5.5, 3.5)·2 = (11, 7)
    g3 = HM.gaussian_heatmaps_3d(torch.tensor([[[2.5, 3.5, 1.5]]], dtype=D), (4, 6, 8), 1.0)
    assert g3.shape == (1, 1, 4, 6, 8) and g3[0, 0, 1, 3, 2] == 1.0
    with pytest.raises(ValueError, match=r"\(B, J, 3\)"):
        HM.gaussian_heatmaps_3d(torch.zeros(1, 1, 2), (4, 4, 4), 1.0)


def test_soft_argmax_recovers_subpixel_centres():
    xy = torch.tensor([[[13.3, 9.8], [12.05, 14.6]]], dtype=D)
    logits = torch.log(HM.gaussian_heatmaps(xy * 2, 64, 32, 1.5))  # heatmap units = image/2
    assert (HM.soft_argmax(logits) - xy).abs().max() < 1e-6
    xyz = torch.tensor([[[8.2, 8.7, 8.1]]], dtype=D)
    vol = torch.log(HM.gaussian_heatmaps_3d(xyz, (16, 17, 18), 1.0))
    assert (HM.soft_argmax(vol, dims=3) - xyz).abs().max() < 1e-6
    logits.requires_grad_(True)
    HM.soft_argmax(logits).sum().backward()
    assert logits.grad.abs().sum() > 0  # differentiable
    with pytest.raises(ValueError, match="dims"):
        HM.soft_argmax(torch.zeros(2, 3), dims=2)


def test_argmax_quarter_offset_beats_plain_argmax():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1, 200, 2, generator=g, dtype=D) * 20 + 6
    h = HM.gaussian_heatmaps(xy, 32, 32, 2.0)
    plain, peak = HM.argmax_decode(h, quarter_offset=False)
    quarter, _ = HM.argmax_decode(h)
    assert (plain - xy).abs().max() <= 0.5 + 1e-9 and (quarter - xy).abs().max() <= 0.25 + 1e-9
    assert (quarter - xy).abs().mean() < (plain - xy).abs().mean()
    assert torch.allclose(peak, h.flatten(2).amax(-1))


def test_flip_swaps_left_right_and_flip_test_is_consistent():
    pairs = [(1, 2)]
    uv = torch.tensor([[[8.0, 10.0], [5.0, 20.0], [25.0, 3.0]]], dtype=D)
    h = HM.gaussian_heatmaps(uv, 32, 16, 1.0)
    mirrored = uv.clone()
    mirrored[..., 0] = 32 - uv[..., 0]
    mirrored = mirrored[:, HM.flip_pairs_permutation(3, pairs)]
    assert torch.allclose(HM.flip_heatmaps(h, pairs), HM.gaussian_heatmaps(mirrored, 32, 16, 1.0))
    assert torch.equal(HM.flip_heatmaps(HM.flip_heatmaps(h, pairs), pairs), h)

    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=D)

    def oracle(x):  # a perfect model: the heatmaps of the person drawn in x, mirrored or not
        return h if torch.equal(x, img) else HM.gaussian_heatmaps(mirrored, 32, 16, 1.0)

    assert torch.allclose(HM.flip_test(oracle, img, pairs), h)
