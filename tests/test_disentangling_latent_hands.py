import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cvtutor import report
from cvtutor.data.hands import HandWorld
from cvtutor.papers import disentangling_latent_hands as D


def tiny_model(content: bool = True, size: int = 32) -> D.DVAE:
    torch.manual_seed(0)
    factors = {"cpose": (63, 3), "view": (9, 2)}
    if content:
        factors["content"] = (D.N_SCENES, 2)
    return D.DVAE(factors, image_size=size, hidden=16, depth=1, enc_width=8, dec_width=8)


def tiny_batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    b = HandWorld("stb", image_size=32, seed=seed, with_cloud=False).sample(n)
    return D.image_input(b["rgb"]), D.labels_from_batch(b)


# ---------------------------------------------------------------------------------------------
# Gaussian pieces
# ---------------------------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(D.kl_to_prior(mu, logvar), ref, atol=1e-5)
    assert torch.allclose(D.kl_to_prior(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_kl_of_product_posterior_is_sum_of_part_kls():
    model = tiny_model()
    _, labels = tiny_batch()
    mu, logvar = model.encode_labels(labels)
    parts = [model.label_encoders[k](labels[k]) for k in model.factors]
    assert torch.allclose(D.kl_to_prior(mu, logvar), sum(D.kl_to_prior(*p) for p in parts), atol=1e-5)


def test_reparameterize_moments_and_gradient():
    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    logvar = torch.log(torch.tensor([[0.25, 4.0]])).requires_grad_()
    g = torch.Generator().manual_seed(1)
    z = D.reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), g)
    assert torch.allclose(z.mean(0), mu[0], atol=0.02)
    assert torch.allclose(z.var(0), torch.tensor([0.25, 4.0]), rtol=0.02)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.full((1, 2), 200_000.0))


def test_gaussian_nll_matches_normal_log_prob():
    g = torch.Generator().manual_seed(2)
    y, m = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    ref = -torch.distributions.Normal(m, 0.3).log_prob(y).reshape(4, -1).sum(1)
    assert torch.allclose(D.gaussian_nll(y, m, 0.3), ref, atol=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        D.gaussian_nll(y, m[:, :2])
    with pytest.raises(ValueError, match="sigma must be positive"):
        D.gaussian_nll(y, m, 0.0)


def test_bad_mu_logvar_raise():
    with pytest.raises(ValueError, match=r"one shape"):
        D.kl_to_prior(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(TypeError, match="tensors"):
        D.reparameterize(np.zeros((2, 2)), torch.zeros(2, 2))


# ---------------------------------------------------------------------------------------------
# supp. Eq. 1-4 on a linear-Gaussian model (closed forms)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy():
    t = D.LinearGaussianToy(seed=3)
    y, x = t.sample(np.random.default_rng(4))
    return t, y, x


def test_eq1_decomposition_of_log_p_y(toy):
    t, y, x = toy
    rng = np.random.default_rng(5)
    for _ in range(5):
        r = t.terms(y, x, rng.normal(size=t.k), rng.uniform(0.1, 2.0, size=t.k))
        assert r["log_p_y"] == pytest.approx(r["kl_post_y"] + r["E_log_p_y"] - r["kl_prior"], abs=1e-9)
        assert r["E_log_p_y"] - r["kl_prior"] < r["log_p_y"]


def test_eq2_and_eq4_cancellation_and_bound(toy):
    t, y, x = toy
    rng = np.random.default_rng(6)
    for _ in range(5):
        r = t.terms(y, x, rng.normal(size=t.k), rng.uniform(0.1, 2.0, size=t.k))
        # Eq. 2: log p(x|y) = KL(q || p(z|y,x)) + E log p(x|z) - KL(q || p(z|y))
        assert r["log_p_x_given_y"] == pytest.approx(r["kl_post_xy"] + r["E_log_p_x"] - r["kl_post_y"], abs=1e-9)
        # Eq. 1 + Eq. 2: the KL to p(z|y) cancels, leaving log p(x,y) = KL(q || p(z|x,y)) + ELBO_dis
        assert r["log_p_xy"] == pytest.approx(r["kl_post_xy"] + r["elbo_dis"], abs=1e-9)
        assert r["elbo_dis"] < r["log_p_xy"]


def test_elbo_is_tight_at_the_exact_posterior():
    t = D.LinearGaussianToy(k=1, dy=2, dx=2, seed=7)  # k = 1: the exact posterior is a diagonal Gaussian
    y, x = t.sample(np.random.default_rng(8))
    m, cov = t.posterior(y, x)
    r = t.terms(y, x, m, np.diag(cov))
    assert r["kl_post_xy"] == pytest.approx(0.0, abs=1e-10)
    assert r["elbo_dis"] == pytest.approx(r["log_p_xy"], abs=1e-9)


def test_monte_carlo_elbo_with_module_pieces_matches_closed_form(toy):
    t, y, x = toy
    m, v = np.array([0.3, -0.2]), np.array([0.5, 0.8])
    g = torch.Generator().manual_seed(9)
    mu, logvar = torch.tensor(m)[None], torch.log(torch.tensor(v))[None]
    z = D.reparameterize(mu.expand(400_000, 2), logvar.expand(400_000, 2), g)
    A, a, B, b = (torch.tensor(u) for u in (t.A, t.a, t.B, t.b))
    ll = -D.gaussian_nll(torch.tensor(y).expand(len(z), -1), z @ A.T + a, t.s_y) \
         - D.gaussian_nll(torch.tensor(x).expand(len(z), -1), z @ B.T + b, t.s_x)
    mc = float(ll.mean() - D.kl_to_prior(mu, logvar)[0])
    se = float(ll.std()) / math.sqrt(len(z))
    assert abs(mc - t.terms(y, x, m, v)["elbo_dis"]) < 4 * se


# ---------------------------------------------------------------------------------------------
# the dVAE's objectives and the alternating scheme
# ---------------------------------------------------------------------------------------------
_TINY_SLICES = {"cpose": slice(0, 3), "view": slice(3, 5), "content": slice(5, 7)}  # tiny_model's latent layout


def _eq45_by_hand(model, x, labels, mu, std, sx, sy, generator):
    """Supp. Eq. 4/5 written out with torch.distributions: one sample z = μ + σ ε, the Gaussian
    log-likelihoods of the image and of each label from its own sub-latent, minus the KL of
    N(μ, σ²) to N(0, I). Returns (E log-likelihood, KL), batch means."""
    Normal = torch.distributions.Normal
    z = mu + std * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    ll = Normal(model.image_decoder(z), sx).log_prob(x).flatten(1).sum(1)
    for k, sl in _TINY_SLICES.items():
        ll = ll + Normal(model.label_decoders[k](z[:, sl]), sy).log_prob(labels[k]).sum(1)
    kl = torch.distributions.kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum(1)
    return ll.mean(), kl.mean()


def _label_posterior(model, x, labels):
    """q(z|y1,y2) = Π_k q(z_k|y_k): the label encoders' raw (μ, log σ²), clamped as the encoder does."""
    enc = [model.label_encoders[k].net(labels[k]).chunk(2, 1) for k in _TINY_SLICES]
    return torch.cat([e[0] for e in enc], 1), torch.cat([e[1] for e in enc], 1)


def _image_posterior(model, x, labels):
    """q_φx(z|x): the image encoder's raw (μ, log σ²)."""
    return model.image_encoder.net(x).chunk(2, 1)


@torch.no_grad()
@pytest.mark.parametrize("bound, posterior, lik", [
    (D.elbo_dis, _label_posterior, D.Likelihood(sigma_x=0.5, sigma_y=0.2, beta=3.0)),   # supp. Eq. 4
    (D.elbo_emb, _image_posterior, D.Likelihood(sigma_x=0.7, sigma_y=0.3, beta=0.5)),   # supp. Eq. 5
])
def test_elbos_are_eq4_and_eq5_and_nothing_else(bound, posterior, lik):
    model = tiny_model().eval()
    x, labels = tiny_batch()
    out = bound(model, x, labels, lik, generator=torch.Generator().manual_seed(0))
    mu, logvar = posterior(model, x, labels)
    std = (0.5 * logvar.clamp(-10.0, 6.0)).exp()
    ll, kl = _eq45_by_hand(model, x, labels, mu, std, lik.sigma_x, lik.sigma_y, torch.Generator().manual_seed(0))
    assert {k for k in out if k.startswith("nll_")} == {"nll_x", "nll_cpose", "nll_view", "nll_content"}
    assert torch.allclose(out["kl"], kl, rtol=1e-5)
    assert torch.allclose(out["elbo"], ll - kl, rtol=1e-5)
    assert torch.allclose(out["loss"], -ll + lik.beta * kl, rtol=1e-5)


def test_sub_decoders_read_only_their_sub_latent():
    model = tiny_model().eval()
    z = torch.randn(4, model.latent_dim)
    z2 = z.clone()
    z2[:, model.slices["view"]] += 1.0
    a, b = model.decode(z, image=False), model.decode(z2, image=False)
    assert torch.equal(a["cpose"], b["cpose"]) and torch.equal(a["content"], b["content"])
    assert not torch.allclose(a["view"], b["view"])


def test_joint_objective_is_the_sum_of_the_two_elbos():
    model = tiny_model().eval()
    x, labels = tiny_batch()
    out = D.joint_objective(model, x, labels, generator=torch.Generator().manual_seed(1))
    d = D.elbo_dis(model, x, labels, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    D.reparameterize(*model.encode_labels(labels), g)  # the same stream position as inside joint_objective
    e = D.elbo_emb(model, x, labels, generator=g)
    assert torch.allclose(out["elbo"], d["elbo"] + e["elbo"], rtol=1e-5)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_embedding_step_freezes_every_decoder_and_dis_step_spares_the_image_encoder():
    model = tiny_model()
    x, labels = tiny_batch(8)
    opt_dis = torch.optim.Adam(model.disentangling_parameters(), lr=1e-2)
    opt_emb = torch.optim.Adam(model.embedding_parameters(), lr=1e-2)
    before_dec = [_state(m) for m in model.decoders()]
    before_lab = _state(model.label_encoders)
    before_img = _state(model.image_encoder)
    D.embedding_step(model, opt_emb, x, labels)
    for m, s in zip(model.decoders(), before_dec):
        for k, v in m.state_dict().items():  # parameters AND batch-norm statistics
            assert torch.equal(v, s[k]), f"decoder tensor {k} changed in the embedding step"
    assert all(torch.equal(v, before_lab[k]) for k, v in model.label_encoders.state_dict().items())
    assert any(not torch.equal(v, before_img[k]) for k, v in model.image_encoder.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards
    # the disentangling step alone never touches the image encoder
    img = _state(model.image_encoder)
    D.disentangling_step(model, opt_dis, x, labels)
    assert all(torch.equal(v, img[k]) for k, v in model.image_encoder.state_dict().items())


def test_parameter_groups_partition_the_model():
    model = tiny_model()
    dis = {id(p) for p in model.disentangling_parameters()}
    emb = {id(p) for p in model.embedding_parameters()}
    assert not dis & emb and dis | emb == {id(p) for p in model.parameters()}


def test_missing_factor_and_bad_latent_raise():
    model = tiny_model()
    _, labels = tiny_batch(2)
    with pytest.raises(KeyError, match="content"):
        model.encode_labels({k: v for k, v in labels.items() if k != "content"})
    with pytest.raises(ValueError, match=r"z must be \(batch, 7\)"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="63 numbers"):
        model.label_encoders["cpose"](torch.zeros(2, 9))


# ---------------------------------------------------------------------------------------------
# architecture pieces
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 32, 64])
def test_image_decoder_doubles_to_the_image_size_in_tanh_range(size):
    dec = D.ImageDecoder(5, size, width=4)
    out = dec(torch.randn(3, 5) * 10)
    assert out.shape == (3, 3, size, size) and out.abs().max() <= 1.0
    assert D.tconv(2, 2)(torch.zeros(1, 2, 7, 7)).shape[-1] == 14


def test_image_decoder_rejects_bad_size():
    with pytest.raises(ValueError, match="4·2"):
        D.ImageDecoder(4, 48)


def test_project_to_so3_gives_the_nearest_proper_rotation():
    rng = np.random.default_rng(0)
    R = Rotation.random(20, random_state=1).as_matrix()
    noisy = torch.tensor(R + 0.2 * rng.normal(size=R.shape))
    P = D.project_to_so3(noisy)
    eye = torch.eye(3, dtype=P.dtype)
    assert torch.allclose(P @ P.transpose(1, 2), eye.expand(20, 3, 3), atol=1e-10)
    assert torch.allclose(torch.linalg.det(P), torch.ones(20, dtype=P.dtype), atol=1e-10)
    # a rotation is its own projection; a reflection is mapped to a rotation (det +1)
    assert torch.allclose(D.project_to_so3(torch.tensor(R)), torch.tensor(R), atol=1e-10)
    assert torch.linalg.det(D.project_to_so3(torch.diag(torch.tensor([1.0, 1.0, -1.0])))) > 0
    # nearest in Frobenius norm: no candidate rotation is closer
    cand = torch.tensor(Rotation.random(5000, random_state=2).as_matrix())
    for i in range(3):
        best = (cand - noisy[i]).pow(2).sum((1, 2)).min()
        assert (P[i] - noisy[i]).pow(2).sum() <= best + 1e-9
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        D.project_to_so3(torch.zeros(2, 9))


def test_decode_pose_recovers_xyz_from_perfect_cpose_and_view():
    b = HandWorld("stb", image_size=32, seed=5, with_cloud=False).sample(4)
    assert torch.allclose(b["cpose"] @ D.project_to_so3(b["view_R"]), b["xyz_norm"], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# factor-controlled pairs and the disentanglement metrics (supp. §E)
# ---------------------------------------------------------------------------------------------
def test_share_factor_keeps_exactly_the_shared_labels():
    w = HandWorld("stb", image_size=32, seed=1, with_cloud=False)
    a, b = w.draw(5), w.draw(5)
    la = D.labels_of(w, a)
    lc = D.labels_of(w, D.share_factor(a, b, "cpose"))
    lv = D.labels_of(w, D.share_factor(a, b, "view"))
    assert torch.allclose(lc["cpose"], la["cpose"], atol=1e-5) and not torch.allclose(lc["view_R"], la["view_R"], atol=1e-2)
    assert torch.allclose(lv["view_R"], la["view_R"], atol=1e-5) and not torch.allclose(lv["cpose"], la["cpose"], atol=1e-2)
    # the same pose on another scene: identical labels, other pixels
    r = w.render(D.share_factor(b, a, "content"))
    ra = w.render(a)
    assert torch.allclose(r["xyz"], ra["xyz"]) and not torch.allclose(r["rgb"], ra["rgb"])
    assert torch.equal(r["mask"], ra["mask"])
    with pytest.raises(ValueError, match="factor must be one of"):
        D.share_factor(a, b, "light")


def _votes(encode, V=300, L=8, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 2, V)
    f1, f2 = rng.normal(size=(V, L, 2)), rng.normal(size=(V, L, 2))  # factors (y1, y2) of both hands
    for v in range(V):
        f2[v, :, k[v]] = f1[v, :, k[v]]  # the pairs of vote v share factor k
    return D.z_diff(encode(f1, rng), encode(f2, rng)), k


def test_beta_vae_metric_perfect_and_random_codes():
    W = np.random.default_rng(1).normal(size=(2, 4))
    perfect = lambda f, rng: np.concatenate([np.outer(f[..., 0].ravel(), W[0]).reshape(*f.shape[:2], 4),
                                             np.tanh(f[..., 1:2]) * W[1]], -1) + 0.01 * rng.normal(size=(*f.shape[:2], 8))
    feats, k = _votes(perfect)
    assert D.beta_vae_score(feats, k, 150) >= 0.97
    random = lambda f, rng: rng.normal(size=(*f.shape[:2], 8))
    feats, k = _votes(random)
    assert abs(D.beta_vae_score(feats, k, 150) - 0.5) < 0.12


def test_beta_vae_metric_bad_input():
    with pytest.raises(ValueError, match="votes, L, d"):
        D.z_diff(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="n_train"):
        D.beta_vae_score(np.zeros((10, 2)), np.zeros(10), 10)


def test_regression_table_informative_beats_noise():
    b = HandWorld("stb", image_size=32, seed=2, with_cloud=False).sample(240)
    rng = np.random.default_rng(0)
    cpose, view = b["cpose"].numpy(), b["view_R"].numpy()
    z_c = cpose.reshape(240, 63) @ rng.normal(size=(63, 6))
    z_v = view.reshape(240, 9) @ rng.normal(size=(9, 4))
    t = D.regression_table({"zc": z_c, "zv": z_v, "noise": rng.normal(size=(240, 6))}, cpose, view, b["scale"].numpy(), 180)
    assert list(t.index) == ["y1", "y2"]
    assert t.loc["y1", "zc"] > t.loc["y1", "noise"] + 0.05 and t.loc["y1", "zc"] > t.loc["y1", "zv"]
    assert t.loc["y2", "zv"] < 0.5 * t.loc["y2", "noise"] and t.loc["y2", "zv"] < t.loc["y2", "zc"]


def test_paper_claims_hold_on_the_paper_numbers():
    c = D.TABLE4_COLUMNS
    report.compare(D.PAPER["table4_y1"], {}, claims=[f"{c[0]} > {c[2]}", f"{c[4]} >= {c[0]}", f"{c[2]} ~ {c[5]}"])
    report.compare(D.PAPER["table4_y2"], {}, claims=[f"{c[2]} < {c[0]}", f"{c[4]} <= {c[2]}", f"{c[5]} > {c[0]}"])


# ---------------------------------------------------------------------------------------------
# the whole miniature, tiny
# ---------------------------------------------------------------------------------------------
def test_run_tiny_config_round_trips_through_results_file(tmp_path):
    cfg = D.Config.fast().replace(n_train=64, n_test=32, steps=2, batch_size=16, sweep_betas=(0.1, 10.0), sweep_ds=(4, 8),
                                  sweep_steps=2, table4_samples=40, table4_train=30, metric_votes=20, metric_pairs=2,
                                  n_transfer=4, hidden=16, depth=1, device="cpu")
    out = D.run(cfg)
    assert set(out["pose"]["model"]) == {"dVAE (CPose + view)", "cross-modal VAE", "direct regressor", "mean pose"}
    assert "epe_mean_sd" not in out["pose"]  # one seed: no spread to report
    assert out["fig1"].shape[0] == 4 and list(out["table4_y1"].index) == list(D.TABLE4_COLUMNS)
    assert out["findings"]["holds"].notna().all()
    meta = report.run_metadata("disentangling_latent_hands", "fast", "cpu", 0)
    back, _ = report.load_results(report.save_results(out, tmp_path / "r.json", meta))
    assert back["pose"].shape == out["pose"].shape


def test_config_profiles():
    fast, full = D.Config.fast(), D.Config.full()
    assert fast.image_size == 32 and full.image_size == 64 and full.test_split == "test"
    assert full.factors()["cpose"] == (63, 32) and fast.likelihood.beta == fast.beta
    with pytest.raises(TypeError):
        fast.replace(nonsense=1)


def test_epe_gap_table_does_not_call_our_domain_rhd():
    metric = D.PAPER["epe_gap"].metric
    assert "not RHD" in metric and "synthetic" in metric


def test_smoke_runs_every_full_code_path():
    smoke, full = D.Config.smoke(), D.Config.full()
    assert D.Config.for_profile("smoke") == smoke
    assert len(smoke.seeds) >= 2 and smoke.test_split == full.test_split and len(smoke.sweep_ds) > 1
    out = D.run(smoke.replace(device="cpu"))
    expected = {"pose", "table4", "table4_y1", "table4_y2", "beta_vae", "beta_vae_table", "epe_gap", "fig1",
                "transfer", "findings", "history", "n_seeds"}
    assert set(out) == expected and out["n_seeds"] == len(smoke.seeds)
    assert "epe_mean_sd" in out["pose"] and "score_sd" in out["beta_vae"]  # several seeds: mean ± sd
    assert "Fig. 1: image MSE and KL grow with d" in out["findings"].index  # the d sweep ran
    assert set(out["findings"]["kind"]) <= set(report.KINDS)


def test_beta_vae_metric_in_chunks_scores_the_same_pairs():
    cfg = D.Config.smoke()
    labels = {"labels": lambda x: torch.cat([x["cpose"].reshape(len(x["cpose"]), -1),
                                             x["view_R"].reshape(len(x["view_R"]), -1)], 1)}
    one = D.beta_vae_metric(labels, cfg, seed=3, device="cpu", render=False, chunk=10**6)
    parts = D.beta_vae_metric(labels, cfg, seed=3, device="cpu", render=False, chunk=7)
    assert one == parts  # the same pairs, whatever the chunk (labels carry no render noise)
    pixels = {"mean colour": lambda x: x["rgb"].mean((2, 3))}
    rendered = D.beta_vae_metric(pixels, cfg, seed=3, device="cpu", chunk=16)
    assert 0.0 <= rendered["mean colour"] <= 100.0
    with pytest.raises(ValueError, match="chunk"):
        D.beta_vae_metric(labels, cfg, chunk=0)
