"""The image-classification world's data: image sets and corruptions (ground truth, determinism)."""

import pytest
import torch

from cvtutor.data.imageclass import corruptions as C
from cvtutor.data.imageclass import sets


def test_digits16_shapes_range_and_fixed_split():
    for size in (16, 32):
        d = sets.digits16(size)
        assert d["train"].x.shape == (1347, 1, size, size) and d["test"].x.shape == (
            450,
            1,
            size,
            size,
        )
        assert d["train"].x.min() >= 0 and d["train"].x.max() <= 1
        assert d["train"].n_classes == 10 and set(d["test"].y.tolist()) == set(range(10))
    a, b = sets.digits16(16), sets.digits16(16)
    assert torch.equal(a["train"].x, b["train"].x) and torch.equal(a["test"].y, b["test"].y)
    # upsampling keeps the 8x8 image: 2x2 average pooling of the 16 px image is close to it
    # (bilinear interpolation mixes each pixel with a quarter of its neighbours, so not equal)
    from cvtutor.data.digits import load_digits

    x8 = load_digits()["x_train"].reshape(-1, 1, 8, 8)
    back = torch.nn.functional.avg_pool2d(a["train"].x, 2)
    assert (back - x8).abs().mean() < 0.1 and torch.equal(a["train"].y, load_digits()["y_train"])
    with pytest.raises(ValueError, match="size must be one of"):
        sets.digits16(24)


@pytest.mark.parametrize("fine", [False, True])
def test_shapes_textures_balance_range_determinism(fine):
    s = sets.shapes_textures(320, seed=5, fine=fine)
    assert s.x.shape == (320, 3, 32, 32) and s.x.dtype == torch.float32
    assert s.n_classes == 16 and torch.equal(s.y.bincount(), torch.full((16,), 20))
    assert s.x.min() >= 0 and s.x.max() <= 1
    again = sets.shapes_textures(320, seed=5, fine=fine)
    assert torch.equal(s.x, again.x) and torch.equal(s.y, again.y)
    other = sets.shapes_textures(320, seed=6, fine=fine)
    assert not torch.equal(s.x, other.x)


def test_shapes_textures_twenty_classes_and_bad_input():
    s = sets.shapes_textures(100, n_shapes=5, n_textures=4, seed=0)
    assert s.n_classes == 20 and s.classes[-1] == "ring/dots"
    assert torch.equal(s.y.bincount(), torch.full((20,), 5))
    with pytest.raises(ValueError, match="n_shapes must be in"):
        sets.shapes_textures(10, n_shapes=6)
    with pytest.raises(ValueError, match="n must be positive"):
        sets.shapes_textures(0)


def test_shape_sdfs_are_negative_inside_and_positive_far_away():
    far = torch.tensor([[3.0, 3.0]])
    for name in sets.SHAPES:
        inside = torch.tensor([[0.7, 0.0]] if name == "ring" else [[0.0, 0.0]])
        assert sets.shape_sdf(name, far)[0] > 0 and sets.shape_sdf(name, inside)[0] < 0, name
    assert sets.shape_sdf("ring", torch.zeros(1, 2))[0] > 0  # the ring's hole
    # closed forms: the disc's SDF is |q| - 0.9, the square's inside distance min(0.8 - |qx|, ...)
    q = torch.randn(100, 2)
    assert torch.allclose(sets.shape_sdf("disc", q), q.norm(dim=-1) - 0.9)
    with pytest.raises(ValueError, match="shape must be one of"):
        sets.shape_sdf("star", q)


def test_fine_classes_differ_only_in_a_small_part_coarse_ones_in_the_whole_object():
    n = 64
    kw = dict(seed=1, noise=0.0, clutter=0)
    lab = torch.zeros(n, dtype=torch.long)

    def changed(fine, a, b):
        x = sets.shapes_textures(n, fine=fine, labels=lab + a, **kw).x
        y = sets.shapes_textures(n, fine=fine, labels=lab + b, **kw).x
        return ((x - y).abs().amax(1) > 1e-6).float().mean().item()

    fine_moved = changed(True, 0, 1)  # disc mark: top-left -> top-right corner
    fine_shape = changed(True, 0, 4)  # top-left mark: disc -> square
    coarse = changed(False, 0, 8)  # solid disc -> solid triangle
    assert 0 < fine_moved < 0.08 and 0 < fine_shape < 0.03 and coarse > 2 * fine_moved
    with pytest.raises(ValueError, match="labels must be"):
        sets.shapes_textures(4, labels=torch.tensor([0, 1, 2, 16]))


@pytest.mark.parametrize("kind", sets.OOD_KINDS)
def test_ood_sets_range_shape_determinism(kind):
    for size, ch in ((16, 1), (32, 3)):
        x = sets.ood_images(kind, 40, size, ch, seed=2)
        assert x.shape == (40, ch, size, size) and x.min() >= 0 and x.max() <= 1
        assert torch.equal(x, sets.ood_images(kind, 40, size, ch, seed=2))
    if kind == "constant":
        assert x.std((2, 3)).max() < 0.05
    with pytest.raises(ValueError, match="kind must be one of"):
        sets.ood_images("faces", 4)


def test_fast_profile_data_within_three_cpu_seconds():
    import time

    torch.set_num_threads(1)
    sets.digits16(16)  # scikit-learn's import is a one-time cost, not generation
    t = time.process_time()
    sets.digits16(16)
    sets.digits16(32)
    sets.shapes_textures(2000, seed=0)
    sets.shapes_textures(1000, seed=1)
    sets.shapes_textures(1000, seed=2, fine=True)
    for kind in sets.OOD_KINDS:
        sets.ood_images(kind, 500, 32, 3, seed=3)
    assert time.process_time() - t < 3.0


@pytest.fixture(scope="module")
def batches():
    return {
        "shapes": sets.shapes_textures(128, seed=3).x,
        "digits": sets.digits16(16)["test"].x[:128],
    }


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_corruption_in_range_deterministic_and_growing_with_severity(name, batches):
    for key, x in batches.items():
        dist = []
        for s in C.SEVERITIES:
            y = C.corrupt(x, name, s, seed=1)
            assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1, (name, key, s)
            dist.append((y - x).abs().mean().item())
        assert all(b > a for a, b in zip(dist, dist[1:])), (name, key, dist)
        assert dist[0] > 0
    x = batches["shapes"][:8]
    assert torch.equal(C.corrupt(x, name, 3, seed=4), C.corrupt(x, name, 3, seed=4))


def test_corruption_suites_and_closed_forms():
    assert len(C.TEST_CORRUPTIONS) == 13 and "speckle_noise" not in C.TEST_CORRUPTIONS
    assert set(C.CORRUPTIONS) == set(C.TEST_CORRUPTIONS) | {"speckle_noise"}
    x = torch.rand(4, 3, 16, 16)
    # contrast keeps each image's mean and scales its deviations by the factor
    y = C.corrupt(x, "contrast", 2)
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)
    assert torch.allclose(
        y - y.mean((1, 2, 3), keepdim=True), 0.5 * (x - x.mean((1, 2, 3), keepdim=True)), atol=1e-6
    )
    # brightness keeps hue and saturation: the ratio between channels is unchanged (where unclipped)
    dim = 0.5 * x
    b = C.corrupt(dim, "brightness", 1)
    assert torch.allclose(b / b.amax(1, keepdim=True), dim / dim.amax(1, keepdim=True), atol=1e-5)
    assert torch.allclose(b.amax(1), dim.amax(1) + 0.05, atol=1e-6)
    # a Gaussian blur of a constant image is the image
    assert torch.allclose(
        C.corrupt(torch.full((2, 1, 16, 16), 0.3), "gaussian_blur", 5),
        torch.full((2, 1, 16, 16), 0.3),
        atol=1e-6,
    )
    # impulse noise at severity 5 replaces about 7 % of the values with 0 or 1
    big = torch.full((8, 3, 32, 32), 0.5)
    frac = (C.corrupt(big, "impulse_noise", 5) != 0.5).float().mean()
    assert abs(frac - 0.07) < 0.01


def test_corruption_bad_input():
    with pytest.raises(ValueError, match="corruption must be one of"):
        C.corrupt(torch.rand(1, 3, 8, 8), "frost", 1)
    with pytest.raises(ValueError, match="severity must be one of"):
        C.corrupt(torch.rand(1, 3, 8, 8), "fog", 6)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        C.corrupt(torch.rand(3, 8, 8), "fog", 1)


def test_rand_augment_identity_per_image_and_closed_form_translation():
    from cvtutor.data.imageclass import augment

    x = sets.shapes_textures(16, seed=0).x
    assert torch.equal(augment.rand_augment(x, n_ops=3, magnitude=0, seed=1), x)  # M = 0
    assert torch.equal(augment.rand_augment(x, n_ops=2, magnitude=9, ops=("identity",)), x)
    same = x[:1].expand(32, -1, -1, -1)
    out = augment.rand_augment(same, n_ops=2, magnitude=9, seed=1)
    assert len({o.numpy().tobytes() for o in out}) > 16  # each image draws its own ops
    assert torch.equal(out, augment.rand_augment(same, n_ops=2, magnitude=9, seed=1))
    # translate_x at M = 10 moves a 10 px wide image by 0.3 * 10 = 3 px, left or right, zero fill
    img = torch.rand(8, 1, 10, 10)
    t = augment.rand_augment(img, n_ops=1, magnitude=10, ops=("translate_x",), seed=2)
    left = torch.zeros_like(img)
    left[..., :7] = img[..., 3:]
    right = torch.zeros_like(img)
    right[..., 3:] = img[..., :7]
    for i in range(8):
        assert min((t[i] - left[i]).abs().max(), (t[i] - right[i]).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="magnitude"):
        augment.rand_augment(x, magnitude=11)
    with pytest.raises(ValueError, match="ops must be"):
        augment.rand_augment(x, ops=("solarize",))


def test_torchvision_v2_policies_draw_one_op_per_batch_call():
    from cvtutor.data.imageclass import augment

    same = sets.shapes_textures(1, seed=0).x.expand(16, -1, -1, -1).contiguous()
    for fn in (augment.tv_rand_augment, augment.tv_auto_augment):
        batch = fn(same, seed=0, per_image=False)
        assert all(torch.equal(batch[0], b) for b in batch), fn.__name__  # one policy for the batch
        per = fn(same, seed=0, per_image=True)
        assert len({p.numpy().tobytes() for p in per}) > 1 and per.min() >= 0 and per.max() <= 1
        assert torch.equal(per, fn(same, seed=0, per_image=True))  # seeded
