"""ProxyBNN (E14): each equation against a brute force, autograd or an independent library;
bad input; the CIFAR reader on a fixture; the smoke profile."""

import itertools

import numpy as np
import pytest
import torch
from fixture_files import write_cifar10
from scipy.linalg import orthogonal_procrustes

from cvtutor.data.imageclass.readers import DataLayoutError
from cvtutor.papers import proxybnn as P

g = torch.Generator().manual_seed(0)


def _rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, generator=g, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Eq. (2) and the reshape
# ---------------------------------------------------------------------------------------------
def test_reshape_is_an_exact_inverse_and_groups_each_filter():
    w = _rand(5, 3, 2, 2)
    rows = P.to_rows(w)
    assert rows.shape == (5 * 2 * 2, 3)
    assert torch.equal(P.from_rows(rows, w.shape), w)
    # filter 1's rows are rows 4..7: its spatial positions, one column per input channel
    assert torch.equal(rows[4:8], w[1].permute(1, 2, 0).reshape(4, 3))
    lin = _rand(4, 6)
    assert torch.equal(P.from_rows(P.to_rows(lin), lin.shape), lin)
    with pytest.raises(ValueError, match="expected rows"):
        P.from_rows(rows, (5, 3, 3, 3))
    with pytest.raises(ValueError, match=r"\(n, c, h, w\)"):
        P.to_rows(_rand(2, 3, 4))


def test_proxy_weights_is_tanh_times_basis_and_checks_shapes():
    W, R = _rand(6, 4), _rand(4, 4)
    assert torch.allclose(P.proxy_weights(W, R), torch.tanh(W) @ R)
    with pytest.raises(ValueError, match=r"R \(c, c1\)"):
        P.proxy_weights(W, _rand(3, 4))
    W.requires_grad_(True)
    R.requires_grad_(True)
    assert torch.autograd.gradcheck(P.proxy_weights, (W, R))


# ---------------------------------------------------------------------------------------------
# Eqs. (5)-(6): the closed forms against a brute force
# ---------------------------------------------------------------------------------------------
def test_closed_form_b_and_alpha_match_brute_force():
    n, k = 2, 8  # two filters of hwc = 8 weights: 256 codes each
    Z = _rand(n * 2, 4)  # rows of filter i: 2i, 2i + 1 (hw = 2, c = 4)
    alpha, B = P.closed_form_binary(Z, n)
    alphas = np.linspace(0, 3, 3001)
    for i in range(n):
        z = Z[2 * i : 2 * i + 2].flatten().numpy()
        best = (np.inf, None, None)
        for code in itertools.product((-1.0, 1.0), repeat=k):
            b = np.array(code)
            err = ((z[None] - alphas[:, None] * b[None]) ** 2).sum(1)
            j = int(err.argmin())
            if err[j] < best[0] - 1e-12:
                best = (err[j], b, alphas[j])
        assert np.array_equal(B[2 * i : 2 * i + 2].flatten().numpy(), best[1])
        assert abs(float(alpha[i]) - best[2]) <= 1e-3
        assert abs(float(alpha[i]) - np.abs(z).mean()) < 1e-12  # ||Z_i||_1 / (hwc)


def test_sgn_of_zero_is_plus_one_and_filters_must_divide():
    assert P.sgn(torch.tensor([0.0, -0.0, 2.0, -1e-9])).tolist() == [1.0, 1.0, 1.0, -1.0]
    with pytest.raises(ValueError, match="dividing its rows"):
        P.closed_form_binary(_rand(5, 3), 2)


def test_quantization_error_zero_on_binary_z_and_equals_manual():
    alpha = torch.tensor([0.5, 2.0], dtype=torch.float64)
    B = P.sgn(_rand(2, 6))
    Z = (alpha[:, None] * B).reshape(4, 3)
    assert P.quantization_error(Z, 2) == 0.0
    Z2 = _rand(4, 3)
    a2, B2 = P.closed_form_binary(Z2, 2)
    manual = (
        sum(((Z2[2 * i : 2 * i + 2] - a2[i] * B2[2 * i : 2 * i + 2]) ** 2).sum() for i in range(2))
        / 12
    )
    assert abs(P.quantization_error(Z2, 2) - float(manual)) < 1e-12


# ---------------------------------------------------------------------------------------------
# Eqs. (7)-(9): gradients
# ---------------------------------------------------------------------------------------------
def test_eq8_gradient_equals_autograd_of_the_ste_construction():
    n = 3
    Z = _rand(n * 4, 5).requires_grad_(True)
    G = _rand(n * 4, 5)
    out = P.psi(Z, n)
    alpha, B = P.closed_form_binary(Z.detach(), n)
    assert torch.allclose(out, (alpha[:, None] * B.reshape(n, -1)).reshape_as(Z))
    (custom,) = torch.autograd.grad((out * G).sum(), Z)
    Z2 = Z.detach().clone().requires_grad_(True)
    zf = Z2.reshape(n, -1)
    ste = (
        zf.abs().mean(1, keepdim=True) * P.sgn(zf).detach() + zf - zf.detach()
    )  # value alpha sgn(Z)
    (ref,) = torch.autograd.grad((ste.reshape_as(Z2) * G).sum(), Z2)
    assert torch.allclose(custom, ref)


def test_penalty_gradient_is_eq7s_second_term():
    Z = _rand(6, 4).requires_grad_(True)
    (grad,) = torch.autograd.grad(P.penalty(Z, 3), Z)
    alpha, B = P.closed_form_binary(Z.detach(), 3)
    target = (alpha[:, None] * B.reshape(3, -1)).reshape_as(Z)
    assert torch.allclose(grad, 2 * (Z.detach() - target))


def test_eq9_shape_correct_form_equals_autograd():
    W, R = _rand(12, 4).requires_grad_(True), _rand(4, 6).requires_grad_(True)
    G = _rand(12, 6)
    gW, gR = torch.autograd.grad((P.proxy_weights(W, R) * G).sum(), (W, R))
    mW, mR = P.proxy_gradients(W.detach(), R.detach(), G)
    assert mR.shape == R.shape == (4, 6)
    assert torch.allclose(mW, gW) and torch.allclose(mR, gR)
    # the printed (dL/dZ)^T W' is the transpose: (c1, c), not R's shape
    assert (G.T @ torch.tanh(W.detach())).shape == (6, 4)
    with pytest.raises(ValueError, match="grad_Z must be"):
        P.proxy_gradients(W.detach(), R.detach(), G.T)


def test_sign_activation_straight_through_is_clipped():
    x = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.5, 1.5], requires_grad=True)
    y = P.sign_activation(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 0]


def test_binary_layers_use_plus_minus_alpha_per_filter():
    conv = P.ProxyConv2d(3, 4, "orthogonal")
    w = conv.weight().detach()
    for i in range(4):
        vals = w[i].abs().unique()
        assert len(vals) == 1  # every weight of filter i is +-alpha_i
    assert P.ProxyLinear(5, 2, "fp32").weight().unique().numel() > 2
    with pytest.raises(ValueError, match="scheme must be one of"):
        P.ProxyWeight((2, 2), "gaussian")


# ---------------------------------------------------------------------------------------------
# Sec. 3.3: the bases
# ---------------------------------------------------------------------------------------------
def test_procrustes_equals_scipy_and_the_printed_eq12_is_an_increment():
    Wp = torch.tanh(_rand(40, 6)).float()
    R0 = P.random_orthogonal(6, torch.Generator().manual_seed(1))
    B = P.sgn(Wp @ R0)
    R = P.procrustes_step(Wp, B)
    ref, _ = orthogonal_procrustes(Wp.double().numpy(), B.double().numpy())
    assert np.allclose(R.numpy(), ref, atol=1e-5)
    assert torch.allclose(P.itq_step_as_printed(Wp, R0), R, atol=1e-5)


def test_itq_stays_orthogonal_is_non_increasing_and_preserves_distances():
    Wp = torch.tanh(_rand(200, 8)).float()
    R, hist = P.itq_basis(Wp, P.random_orthogonal(8, torch.Generator().manual_seed(2)), iters=20)
    assert torch.allclose(R.T @ R, torch.eye(8), atol=1e-5)
    assert all(b <= a + 1e-4 for a, b in zip(hist, hist[1:]))
    assert hist[-1] < hist[0]
    assert torch.allclose(torch.pdist(Wp @ R), torch.pdist(Wp), atol=1e-4)


def test_mse_step_equals_lstsq_and_is_non_increasing():
    Wp = torch.tanh(_rand(50, 5)).float()
    R0 = torch.eye(5)
    B = P.sgn(Wp @ R0)
    ref = np.linalg.lstsq(Wp.double().numpy(), B.double().numpy(), rcond=None)[0]
    assert np.allclose(P.mse_step(Wp, R0).numpy(), ref, atol=1e-4)
    _, hist = P.mse_basis(Wp, iters=10)
    assert all(b <= a + 1e-3 for a, b in zip(hist, hist[1:]))


def test_random_orthogonal_is_orthogonal_and_seeded():
    a = P.random_orthogonal(7, torch.Generator().manual_seed(3))
    assert torch.allclose(a.T @ a, torch.eye(7), atol=1e-5)
    assert torch.equal(a, P.random_orthogonal(7, torch.Generator().manual_seed(3)))


def test_toy_example_orthogonal_preserves_distances():
    toy = P.toy_example(300, iters=20)["table"]
    assert toy.loc["Orthogonal", "distance correlation"] == pytest.approx(1.0, abs=1e-6)
    assert toy.loc["MSE", "error per point"] <= toy.loc["Orthogonal", "error per point"]


# ---------------------------------------------------------------------------------------------
# XNOR-popcount
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [8, 13, 64])
def test_xnor_popcount_equals_float_dot(k):
    a, b = P.sgn(_rand(5, k)), P.sgn(_rand(3, k))
    out = P.xnor_popcount_dot(P.pack_signs(a), P.pack_signs(b), k)
    assert torch.equal(out, (a @ b.T).long())


def test_xnor_bad_input():
    with pytest.raises(ValueError, match=r"\+1 / -1"):
        P.pack_signs(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="packed"):
        P.xnor_popcount_dot(
            torch.zeros(2, 2, dtype=torch.uint8), torch.zeros(2, 3, dtype=torch.uint8), 16
        )


# ---------------------------------------------------------------------------------------------
# data, models, training
# ---------------------------------------------------------------------------------------------
def test_cifar_pickles_feed_the_resnet(tmp_path):
    write_cifar10(tmp_path, n=10)
    cfg = P.Config.smoke().replace(dataset="cifar10", data_root=str(tmp_path))
    data = P.load_data(cfg)
    assert data["x_train"].shape == (50, 3, 32, 32) and data["x_test"].shape == (10, 3, 32, 32)
    assert data["n_classes"] == 10
    model = P.make_model(cfg, "orthogonal", data)
    assert model(data["x_test"]).shape == (10, 10)
    with pytest.raises(DataLayoutError, match="cifar-10-batches-py"):
        P.load_data(cfg.replace(data_root=str(tmp_path / "absent")))
    with pytest.raises(ValueError, match="data_root"):
        P.load_data(cfg.replace(data_root=None))


def test_image_folder_feeds_the_resnet(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("ant", "bee"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
                Image.fromarray(img).save(tmp_path / split / cls / f"{i}.png")
    cfg = P.Config.smoke().replace(dataset="folder", data_root=str(tmp_path))
    data = P.load_data(cfg)
    assert data["x_train"].shape == (6, 3, 16, 16) and data["y_test"].tolist() == [0, 0, 1, 1]
    assert P.make_model(cfg, "random", data)(data["x_test"]).shape == (4, 2)
    (tmp_path / "test" / "cat").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "test" / "cat" / "0.png")
    with pytest.raises(ValueError, match="same class folders"):
        P.load_data(cfg)


def test_bad_config_values_raise():
    with pytest.raises(ValueError, match="dataset must be one of"):
        P.load_data(P.Config.fast().replace(dataset="imagenet"))
    with pytest.raises(ValueError, match="scheme must be one of"):
        P.train_scheme("hashing", P.load_data(P.Config.fast()), P.Config.fast())
    data = P.load_data(P.Config.fast())
    with pytest.raises(ValueError, match="resnet8"):
        P.make_model(P.Config.fast().replace(model="resnet8"), "mse", data)


def test_training_constructs_the_basis_after_warmup():
    cfg = P.Config.fast().replace(epochs=2, warmup_epochs=1, hidden=16)
    data = P.load_data(cfg)
    model, hist = P.train_scheme("mse", data, cfg, seed=0)
    assert hist["step"].is_monotonic_increasing and {"ce", "penalty"} <= set(hist.columns)
    assert max(model.e10_constructed) < 1e-6  # W' (16 x 16) invertible: W'R = sgn(W'R) exactly
    model2, _ = P.train_scheme("mse", data, cfg, seed=0)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_smoke_run_returns_every_key():
    res = P.run(P.Config.smoke())
    for key in (
        "toy",
        "runs",
        "layers",
        "accuracy",
        "histories",
        "Z",
        "RtR",
        "sweeps",
        "compare_table2",
        "compare_table1_q",
        "compare_table1_acc",
        "compare_table3a",
        "compare_table3b",
        "xnor",
        "findings",
    ):
        assert key in res and res[key] is not None, key
    assert set(res["runs"]["scheme"]) == set(P.LABELS.values())
    assert set(res["sweeps"]["sweep"]) == {"gamma", "lr_ratio"}
    assert res["xnor"]["equal"]
