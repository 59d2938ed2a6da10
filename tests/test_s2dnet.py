"""S2DNet (E37): Eq. (1)-(4), the two orders of Eq. (2), the baselines' pieces, the synthetic
HPatches world, the HPatches reader and the smoke profile."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvtutor.data.hpatches import read_homography, read_hpatches, read_sequence
from cvtutor.data.homography_pairs import (
    HomographyPairs,
    harris_keypoints,
    harris_response,
    pixel_grid,
)
from cvtutor.metrics.matching import (
    matching_errors,
    mean_matching_accuracy,
    mutual_nearest_neighbours,
)
from cvtutor.papers import s2dnet as S


def _levels(n=2, c=(3, 4, 5), size=16, strides=(1, 2, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(n, ci, size // s, size // s, generator=g, dtype=torch.float64)
        for ci, s in zip(c, strides)
    ]


def test_correlate_then_upsample_equals_upsample_then_correlate():
    fb = _levels()
    g = torch.Generator().manual_seed(1)
    desc = [torch.randn(2, 7, f.shape[1], generator=g, dtype=torch.float64) for f in fb]
    a = S.correspondence_map(desc, fb, (16, 16))
    b = S.s2dhm_map(desc, fb, (16, 16))
    assert a.shape == (2, 7, 16, 16)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_one_by_one_convolution_is_einsum():
    h = _levels(n=1, c=(6,), strides=(1,))[0]
    d = torch.randn(1, 3, 6, dtype=torch.float64)
    conv = F.conv2d(h, d[0][:, :, None, None])  # 1×1 conv, descriptors as weights
    torch.testing.assert_close(S.correspondence_map([d], [h], (16, 16)), conv)
    torch.testing.assert_close(conv[0, 1], torch.einsum("c,chw->hw", d[0, 1], h[0]))


def test_loss_is_cross_entropy_on_the_flattened_map_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    C = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    xy = torch.tensor([[[1.2, 3.4], [4.0, 0.0]]], dtype=torch.float64)
    valid = torch.tensor([[True, True]])
    loss = S.s2d_loss(C, xy, valid)
    idx = torch.tensor([3 * 5 + 1, 0 * 5 + 4])
    torch.testing.assert_close(loss, F.cross_entropy(C.view(2, 25), idx))
    loss.backward()
    expected = (torch.softmax(C.detach().view(2, 25), -1) - F.one_hot(idx, 25)) / 2
    torch.testing.assert_close(C.grad.view(2, 25), expected)
    assert torch.autograd.gradcheck(
        lambda c: S.s2d_loss(c, xy, valid), (C.detach().requires_grad_(),)
    )
    # an invalid keypoint does not count
    half = S.s2d_loss(C.detach(), xy, torch.tensor([[True, False]]))
    torch.testing.assert_close(half, F.cross_entropy(C.detach().view(2, 25)[:1], idx[:1]))


def test_log_prob_is_a_distribution_over_the_pixels():
    C = torch.randn(2, 3, 6, 7)
    lp = S.correspondence_log_prob(C)
    torch.testing.assert_close(lp.exp().sum((-2, -1)), torch.ones(2, 3))
    xy, prob = S.retrieve(C)
    assert ((prob >= 0) & (prob <= 1)).all()
    torch.testing.assert_close(prob, lp.exp().flatten(2).amax(-1))


def _onehot_features(size, scale=1.0):
    """Positional one-hot features: pixel q's feature is e_q (H·W channels), stride 1."""
    return [scale * torch.eye(size * size).view(size * size, size, size)[None]]


def test_positional_one_hot_features_retrieve_the_same_pixel():
    size = 6
    f = _onehot_features(size)
    xy = torch.tensor([[[0.0, 0.0], [2.0, 3.0], [5.0, 1.0], [4.0, 4.0]]])
    C = S.correspondence_map(S.sparse_descriptors(f, xy, (1,)), f, (size, size))
    got, p1 = S.retrieve(C)
    torch.testing.assert_close(got, xy)
    _, p_big = S.retrieve(
        S.correspondence_map(
            S.sparse_descriptors(_onehot_features(size, 4.0), xy, (1,)),
            _onehot_features(size, 4.0),
            (size, size),
        )
    )
    assert (p_big > p1).all() and (p_big > 0.99).all()  # a sharper map: confidence → 1


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_level_coordinates_on_a_map_encoding_its_pixel_coordinates(stride):
    size = 16
    hm = size // stride
    j = torch.arange(hm, dtype=torch.float64)
    centre = stride * j + (stride - 1) / 2  # image pixel at each cell centre
    fmap = torch.stack([centre[None].expand(hm, hm), centre[:, None].expand(hm, hm)])[
        None
    ]  # (x, y)
    xy = torch.tensor([[[5.0, 9.0], [7.3, 6.6], [centre[1], centre[2]]]], dtype=torch.float64)
    d = S.sparse_descriptors([fmap], xy, (stride,))[0]
    torch.testing.assert_close(d, xy)  # bilinear reproduces a linear map
    assert S.level_coordinates(torch.tensor([0.0]), 4).item() == pytest.approx(-0.375)


def test_cyclic_check_on_an_integer_shift():
    size, shift = 8, (2, 1)
    fa = _onehot_features(size)
    fb = [torch.roll(fa[0], shifts=(shift[1], shift[0]), dims=(2, 3))]  # B = A moved by (dx, dy)
    xy_a = torch.tensor([[[1.0, 1.0], [3.0, 2.0], [4.0, 5.0]]])
    C = S.correspondence_map(S.sparse_descriptors(fa, xy_a, (1,)), fb, (size, size))
    xy_b, _ = S.retrieve(C)
    torch.testing.assert_close(xy_b, xy_a + torch.tensor(shift, dtype=torch.float32))
    assert S.cyclic_check(fa, fb, xy_a, xy_b, (1,)).all()
    bad = xy_b.clone()
    bad[0, 1] += torch.tensor([1.0, 0.0])
    assert S.cyclic_check(fa, fb, xy_a, bad, (1,)).tolist() == [[True, False, True]]


def test_mma_hand_example():
    err = torch.tensor([[0.5, 1.5, 3.2]])
    mma, n = mean_matching_accuracy(err, torch.ones(1, 3, dtype=torch.bool), (1, 2, 4))
    torch.testing.assert_close(mma, torch.tensor([1 / 3, 2 / 3, 1.0]))
    assert n.tolist() == [3]
    # a pair without matches is left out; kept matches only
    err2 = torch.tensor([[0.5, 9.0, 9.0], [0.1, 0.1, 0.1]])
    keep2 = torch.tensor([[True, True, False], [False, False, False]])
    mma2, n2 = mean_matching_accuracy(err2, keep2, (1,))
    assert mma2.tolist() == [0.5] and n2.tolist() == [2, 0]
    H = torch.eye(3)[None]
    torch.testing.assert_close(
        matching_errors(H, torch.zeros(1, 1, 2), torch.tensor([[[3.0, 4.0]]])),
        torch.tensor([[5.0]]),
    )


def test_mutual_nearest_neighbours_hand_case():
    s = torch.tensor([[[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.0, 0.1, 0.7]]])
    idx, ok = mutual_nearest_neighbours(s)
    assert idx.tolist() == [[0, 0, 2]] and ok.tolist() == [[True, False, True]]
    _, ok2 = mutual_nearest_neighbours(s, valid_b=torch.tensor([[False, True, True]]))
    assert ok2.tolist() == [[False, True, True]]


def test_confidence_filter_is_monotone_and_checks_tau():
    prob = torch.rand(100)
    counts = [int(S.confident(prob, t).sum()) for t in (0.0, 0.1, 0.2, 0.5, 0.9)]
    assert counts == sorted(counts, reverse=True)
    with pytest.raises(ValueError, match="tau"):
        S.confident(prob, 1.0)


def test_hardest_negative_loss_is_zero_for_a_clear_peak_and_positive_otherwise():
    C = torch.full((1, 1, 12, 12), -1.0)
    C[0, 0, 5, 6] = 1.0
    xy = torch.tensor([[[6.0, 5.0]]])
    v = torch.ones(1, 1, dtype=torch.bool)
    assert S.hardest_negative_loss(C, xy, v).item() == 0.0  # d+ = 0, d- = 2 > margin
    C[0, 0, 0, 0] = 1.0  # a far negative as similar
    assert S.hardest_negative_loss(C, xy, v).item() == pytest.approx(1.0, abs=1e-3)


def test_network_levels_and_adaptation_layers():
    net = S.S2DNet(((8, 2), (8, 1), (8, 1)), (0, 2), adapt=8, adapt_mid=8)
    out = net(torch.randn(2, 1, 16, 16))
    assert net.strides == (1, 4) and [tuple(o.shape) for o in out] == [(2, 8, 16, 16), (2, 8, 4, 4)]
    layer = S.AdaptationLayer(8, 4, 6)
    assert [type(m).__name__ for m in layer] == ["Conv2d", "ReLU", "Conv2d", "BatchNorm2d"]
    assert layer[0].kernel_size == (1, 1) and layer[2].kernel_size == (5, 5)
    unit = S.S2DNet(((8, 1), (8, 1)), (0, 1), adapt=8, adapt_mid=8, normalize=True)(
        torch.randn(1, 1, 8, 8)
    )
    torch.testing.assert_close(unit[0].norm(dim=1), torch.full((1, 8, 8), 1 / math.sqrt(2)))


def test_bad_inputs_raise_clear_errors():
    net = S.S2DNet(((8, 1), (8, 1), (8, 1)), (0, 1, 2), adapt=8, adapt_mid=8)
    with pytest.raises(ValueError, match="multiples of the coarsest stride"):
        net(torch.randn(1, 1, 10, 10))
    with pytest.raises(ValueError, match="taps"):
        S.S2DNet(((8, 1),), (0, 1))
    with pytest.raises(ValueError, match=r"xy must be \(n, K, 2\)"):
        S.sparse_descriptors(_levels(), torch.zeros(2, 3), (1, 2, 4))
    with pytest.raises(ValueError, match="one descriptor per level"):
        S.correspondence_map([torch.zeros(2, 3, 3)], _levels(), (16, 16))
    with pytest.raises(ValueError, match="target_xy"):
        S.s2d_loss(
            torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2), torch.ones(1, 2, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="kind"):
        HomographyPairs(16).sample(2, "night")
    with pytest.raises(ValueError, match="size"):
        HomographyPairs(8)
    with pytest.raises(ValueError, match=r"\(n, 1, H, W\)"):
        harris_response(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="loss"):
        S.train(S.Config.smoke(), "triplet", 0)
    with pytest.raises(ValueError, match="errors and keep"):
        mean_matching_accuracy(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.bool), (1,))


def test_harris_finds_the_corners_of_a_square():
    img = torch.zeros(1, 1, 32, 32)
    img[..., 10:22, 8:20] = 1.0
    xy, valid = harris_keypoints(img, 8)
    found = xy[valid]
    corners = torch.tensor([[8.0, 10.0], [19.0, 10.0], [8.0, 21.0], [19.0, 21.0]])
    assert len(found) >= 4
    dist = torch.cdist(corners, found).amin(1)
    assert (dist <= 1.5).all(), dist
    # the response agrees in rank with scikit-image's Harris
    from skimage.feature import corner_harris

    ref = torch.as_tensor(corner_harris(img[0, 0].double().numpy(), k=0.05, sigma=1.0))
    ours = harris_response(img.double())[0]
    top = ours.flatten().topk(4).indices
    assert (ref.flatten()[top] > 0.5 * ref.max()).all()


def test_homography_pairs_are_seeded_and_exact():
    a = HomographyPairs(32, seed=3).sample(4)
    b = HomographyPairs(32, seed=3).sample(4)
    for k in a:
        assert torch.equal(a[k], b[k])
    assert a["image_a"].shape == (4, 1, 32, 32) and a["viewpoint"].tolist() == [
        False,
        True,
        False,
        True,
    ]
    gen = HomographyPairs(32, seed=0)
    tex = gen.textures(2)
    H = gen.homographies(2, torch.tensor([0.2, 0.2]))
    q = pixel_grid(32).expand(2, -1, -1, -1)
    from cvtutor.data.geometry import apply_homography

    img_b = gen.render(tex, apply_homography(torch.linalg.inv(H)[:, None], q))
    p_a = torch.tensor([[10.3, 12.7], [20.0, 5.5]])
    direct = gen.render(tex, p_a[:, None, None].expand(2, 1, 1, 2))  # T at p_A
    p_b = apply_homography(H, p_a[:, None])[:, 0]  # H·p_A in B
    at_b = gen.render(tex, apply_homography(torch.linalg.inv(H)[:, None], p_b[:, None, None]))
    torch.testing.assert_close(direct, at_b, atol=1e-4, rtol=0)  # B(H p_A) = A(p_A)
    assert img_b.shape == (2, 32, 32)


def test_pnp_is_exact_without_noise():
    df = S.pnp_noise_study(S.Config.smoke().replace(sigmas=(0.0, 4.0), pnp_trials=2))
    zero = df[df.sigma == 0.0]
    assert (zero["position_error_m"] < 1e-6).all() and (zero["rotation_error_deg"] < 1e-5).all()


def _write_sequence(folder, H=None, size=(12, 10)):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(1, 7):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{k}.ppm")
    for k in range(2, 7):
        np.savetxt(folder / f"H_1_{k}", np.eye(3) if H is None else H)


def test_hpatches_reader_on_fixture_files(tmp_path):
    H = np.array([[1.0, 0.1, 2.0], [0.0, 0.9, -1.0], [1e-4, 0.0, 1.0]])
    _write_sequence(tmp_path / "i_test", H)
    _write_sequence(tmp_path / "v_other")
    (tmp_path / "notes").mkdir()
    seqs = read_hpatches(tmp_path)
    assert [s["name"] for s in seqs] == ["i_test", "v_other"]
    s = seqs[0]
    assert (
        s["kind"] == "illumination"
        and len(s["images"]) == 6
        and s["images"][0].shape == (12, 10, 3)
    )
    np.testing.assert_allclose(s["H"][2], H)
    assert [x["name"] for x in read_hpatches(tmp_path, kinds=("viewpoint",))] == ["v_other"]


def test_hpatches_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="layout"):
        read_hpatches(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no i_"):
        read_hpatches(tmp_path)
    _write_sequence(tmp_path / "v_broken")
    (tmp_path / "v_broken" / "4.ppm").unlink()
    with pytest.raises(FileNotFoundError, match="4.ppm"):
        read_sequence(tmp_path / "v_broken")
    with pytest.raises(ValueError, match="i_<name>"):
        read_sequence(tmp_path / "x_seq")
    (tmp_path / "H_bad").write_text("1 0\n0 1\n")
    with pytest.raises(ValueError, match="3x3"):
        read_homography(tmp_path / "H_bad")


def test_paper_numbers():
    assert S.PAPER["table4"].values["S2DNet"] < S.PAPER["table4"].values["S2DHM"]
    assert S.PAPER["tau_best"] == 0.2
    assert S.PAPER["table2_aachen"].values["S2DNet"] == 68.4


def test_ce_training_learns_to_match_on_a_tiny_problem():
    cfg = S.Config.fast().replace(
        size=32, n_train=32, n_test=4, k_train=16, k_test=16, steps=60, batch=8
    )
    tr = S.training_set(cfg, 0)
    te = S.test_set(cfg, 0)
    model, hist = S.train(cfg, "ce", 0, tr)
    assert hist["loss"].iloc[-5:].mean() < hist["loss"].iloc[:5].mean() - 1.0
    torch.manual_seed(0)
    acc = {}
    for name, net in (("trained", model), ("untrained", S.make_model(cfg).eval())):
        err = matching_errors(te["H"], te["xy_a"], S.match_s2d(net, te)["xy_b"])
        acc[name] = float((err[te["valid_a"]] <= 3).float().mean())
    assert acc["trained"] > acc["untrained"] + 0.15, acc


def test_smoke_profile_runs_every_full_path():
    full, smoke = S.Config.full(), S.Config.smoke()
    assert (
        smoke.taps == full.taps and len(smoke.blocks) == len(full.blocks) and len(smoke.seeds) >= 2
    )
    res = S.run(smoke)
    assert set(res) >= {
        "mma",
        "table1",
        "peaks",
        "history",
        "pnp",
        "cost",
        "tau_sweep",
        "compare_table4",
        "example",
        "findings",
    }
    assert set(res["mma"]["seed"]) == set(smoke.seeds)
    assert set(res["mma"]["method"]) >= {
        "S2DNet (CE)",
        "contrastive",
        "random features",
        "S2DNet descriptors, S2S (MNN)",
        "SIFT, S2S (MNN)",
    }


def test_cli_smoke(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvtutor",
            "run",
            "s2dnet",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
