import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_curve
from torch import nn
from torch.distributions import Normal, kl_divergence

from cvtutor.data.domains import Faces
from cvtutor.data.domains.faces import SKIN
from cvtutor.data.domains.readers import face_ages, parse_fgnet
from cvtutor.nn.vae import reparameterize
from cvtutor.papers import face_aging_daae as M


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_age_kl_is_eq3_and_torch_kl():
    mu, lv = torch.randn(5, 8, generator=_g()), torch.randn(5, 8, generator=_g(1))
    y = torch.rand(5, generator=_g(2)) * 8
    ref = kl_divergence(Normal(mu, (0.5 * lv).exp()), Normal(y[:, None].expand(5, 8), 1.0)).sum(-1)
    assert torch.allclose(M.age_kl(mu, lv, y), ref, atol=1e-5)
    hand = 0.5 * ((mu - y[:, None]) ** 2 + lv.exp() - lv - 1).sum(-1)
    assert torch.allclose(M.age_kl(mu, lv, y), hand, atol=1e-5)
    with pytest.raises(ValueError, match="batch"):
        M.age_kl(mu, lv, y[:3])


def test_extraneous_kl_is_eq5_and_torch_kl():
    mu, lv = torch.randn(4, 16, generator=_g(3)), torch.randn(4, 16, generator=_g(4))
    ref = kl_divergence(Normal(mu, (0.5 * lv).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(M.extraneous_kl(mu, lv), ref, atol=1e-5)


def test_distillation_reconstruction_and_regulariser_hand_cases():
    assert M.identity_distillation(torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 1.0]])).item() == 3.5
    with pytest.raises(ValueError, match="C_I"):
        M.identity_distillation(torch.zeros(2, 3), torch.zeros(2, 4))
    x = torch.zeros(1, 3, 2, 2)
    assert M.reconstruction_loss(x, x + 1).item() == pytest.approx(6.0)
    z = torch.zeros(1, 4)
    assert M.code_regulariser(z + 1, z, z - 2, z).item() == pytest.approx(3.0)


def test_age_estimate_eq16_and_reparameterised_age_code():
    assert torch.allclose(M.estimate_age(torch.full((3, 8), 4.2)), torch.full((3,), 4.2))
    mu, lv = torch.full((20000, 2), 3.0, requires_grad=True), torch.full((20000, 2), np.log(0.25))
    enc_like = reparameterize(mu, lv, _g(5))
    assert enc_like.mean().item() == pytest.approx(3.0, abs=0.02)
    assert enc_like.var().item() == pytest.approx(0.25, abs=0.01)
    enc_like.sum().backward()
    assert mu.grad.abs().sum() > 0


def test_hinge_zero_gradient_above_margin():
    kl = torch.tensor([5.0, 50.0], requires_grad=True)
    loss = M.encoder_adversarial(torch.zeros(2), kl, kl, m=10.0, alpha=0.5).sum()
    loss.backward()
    assert kl.grad[1].item() == 0.0 and kl.grad[0].item() == pytest.approx(-1.0)
    assert M.hinge(10.0, torch.tensor(12.0)).item() == 0.0
    assert M.generator_adversarial(torch.tensor(2.0), torch.tensor(3.0)).item() == 5.0


def test_cbn_identity_is_batchnorm_and_condition_matters():
    h = torch.randn(6, 5, 4, 4, generator=_g(6)) * 2 + 1
    cbn = M.CBN(5, 3).train()
    c = torch.randn(6, 3, generator=_g(7))
    assert torch.allclose(cbn(h, c), nn.BatchNorm2d(5, affine=False).train()(h), atol=1e-5)
    with torch.no_grad():
        cbn.gamma.weight.normal_()
    assert not torch.allclose(cbn(h, c), cbn(h, -c))


@pytest.mark.parametrize("setting", ["hierarchical", "I"])
def test_early_blocks_do_not_see_the_age_code(setting):
    torch.manual_seed(0)
    g = M.HierarchicalGenerator(32, 8, 16, 16, width=8, setting=setting)
    for mod in g.modules():                       # make the conditions matter
        if isinstance(mod, M.CBN):
            nn.init.normal_(mod.gamma.weight)
    z_a, z_i = torch.randn(4, 8, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    z_e = torch.randn(4, 16)
    _, feats = g(z_a, z_i, z_e, return_blocks=True)
    early = feats[g.n_early - 1].sum()
    ga, gi = torch.autograd.grad(early, (z_a, z_i), allow_unused=True)
    seen, unseen = (gi, ga) if setting == "hierarchical" else (ga, gi)
    assert unseen is None or unseen.abs().max() == 0
    assert seen.abs().max() > 0
    with pytest.raises(ValueError, match="setting"):
        M.HierarchicalGenerator(32, 8, 16, 16, setting="III")


def test_setting_ii_feeds_every_code_at_the_input():
    g = M.HierarchicalGenerator(32, 8, 16, 16, width=8, setting="II")
    inp, early, late = g.conditions(torch.ones(2, 8), torch.ones(2, 16), torch.ones(2, 16))
    assert inp.shape == (2, 8 + 8 + 16 + 4 + 4) and early.abs().max() == 0 == late.abs().max()


def test_tar_at_far_matches_sklearn_roc_curve():
    rng = np.random.default_rng(0)
    gen, imp = rng.normal(1, 1, 300), rng.normal(0, 1, 2000)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(300), np.zeros(2000)], np.r_[gen, imp],
                            drop_intermediate=False)
    for far in (0.0, 0.001, 0.01, 0.1, 0.5):
        assert M.tar_at_far(gen, imp, far) == pytest.approx(tpr[fpr <= far].max())
    with pytest.raises(ValueError, match="far"):
        M.tar_at_far(gen, imp, 2.0)


def test_wrinkle_pixels_grow_with_age_for_a_fixed_identity():
    w = Faces(32, ages_per_identity=1)
    sc = w.scenes(4, seed=3)
    counts = []
    base = None
    for age in (34.0, 45.0, 58.0, 70.0):
        sc["age"] = torch.full_like(sc["age"], age)
        out = w.render(sc, "sampled")
        skin = out["label"] == SKIN
        lum = out["image"].mean(1)
        base = lum if base is None else base
        counts.append(((base - lum > 0.03) & skin).sum().item())
    assert counts[0] == 0 and all(b > a for a, b in itertools.pairwise(counts))


def test_shuffle_codes_permutes_each_code_independently():
    codes = {k: torch.arange(16.0)[:, None] for k in ("z_A", "z_I", "z_E")}
    s = M.shuffle_codes(codes, _g(0))
    for k in codes:
        assert sorted(s[k].flatten().tolist()) == list(range(16))
    assert not torch.equal(s["z_A"], s["z_I"])


def test_fgnet_and_utkface_readers_on_fixture_files(tmp_path):
    assert parse_fgnet("001A02.JPG") == {"subject": 1, "age": 2, "variant": ""}
    assert parse_fgnet("010A07a.JPG")["variant"] == "a"
    with pytest.raises(ValueError, match="FG-NET"):
        parse_fgnet("1A2.jpg")
    for name in ("001A02.JPG", "002A30b.JPG"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name, format="JPEG")
    df = face_ages(tmp_path, "fgnet")
    assert df["age"].tolist() == [2, 30] and df["subject"].tolist() == [1, 2]
    utk = tmp_path / "utk"
    utk.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(utk / "25_1_2_20170116174525125.jpg")
    assert face_ages(utk, "utkface")["age"].tolist() == [25]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="flat folder"):
        face_ages(empty, "cacd")
    with pytest.raises(ValueError, match="kind"):
        face_ages(utk, "morph")


def test_variant_names_are_checked():
    with pytest.raises(ValueError, match="variant"):
        M._variant("w/o everything")
    with pytest.raises(ValueError, match="DAAE"):
        M.run(M.Config.smoke().replace(variants=("Setting I",)))


def test_profiles():
    fast, full, smoke = M.Config.fast(), M.Config.full(), M.Config.smoke()
    assert (fast.size, fast.n_identities, fast.c_a, fast.c_i, fast.c_e) == (32, 60, 8, 16, 16)
    assert full.size == smoke.size == 64 and smoke.variants == M.VARIANTS
    assert smoke.heldout == full.heldout and len(full.seeds) == 3


def test_run_smoke():
    out = M.run(M.Config.smoke(), samples=True)
    assert set(out["per_seed"]["method"]) == set(M.VARIANTS) and len(out["per_seed"]) == 12
    assert np.isfinite(out["table"].drop(columns="method").to_numpy(float)).all()
    assert {"compare_table1", "compare_table2", "compare_table4", "compare_table5",
            "heldout"} <= set(out)
    assert out["samples"]["aged"].shape[:2] == (7, out["samples"]["input"].shape[0])
    assert set(out["findings"]["kind"]) == {"paper claim", "sanity check"}


def test_cli_runs_smoke(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "cvtutor", "run", "face_aging_daae", "--profile",
                        "smoke", "--out", str(tmp_path)], check=False, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
