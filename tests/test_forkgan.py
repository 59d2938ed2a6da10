import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvtutor.data.domains import readers as R
from cvtutor.papers import forkgan as FG


def _img(seed=0, shape=(2, 3, 32, 32)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_drb_preserves_shape_and_dilates(dilation):
    blocks = FG.dilated_residual_blocks(8, 3)
    assert [b.body[1].dilation[0] for b in blocks] == [2, 4, 1]
    from cvtutor.nn.gan import ResnetBlock
    z = torch.randn(2, 8, 9, 11)
    assert ResnetBlock(8, dilation)(z).shape == z.shape
    assert blocks(z).shape == z.shape


def test_encoder_decoder_shapes_and_range():
    g = FG.ForkGenerators(width=8, n_drb=1)
    x = _img()
    z = g.E["x"](x)
    assert z.shape == (2, 32, 8, 8)
    for d in ("x", "y"):
        out = g.Gt[d](z)
        assert out.shape == x.shape and out.abs().max() <= 1
    assert FG.forkgan_translate(g, x).shape == x.shape
    with pytest.raises(ValueError, match="divisible by 4"):
        g.E["x"](torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match="domain must be one of"):
        g.translate(x, "z")


def test_refinement_adds_no_parameters_and_is_the_inference_formula():
    torch.manual_seed(0)
    g = FG.ForkGenerators(width=8, n_drb=1).eval()
    before = {id(p) for p in g.parameters()}
    x = _img()
    out = FG.forkgan_translate(g, x, refinement=True)
    assert {id(p) for p in g.parameters()} == before
    with torch.no_grad():
        manual = g.Gr["y"](g.E["y"](g.Gt["y"](g.E["x"](x))))
    assert torch.allclose(out, manual)
    assert torch.allclose(FG.forkgan_translate(g, x, refinement=False), g.Gt["y"](g.E["x"](x)))
    cyc = FG.ForkGenerators(width=8, fork=False)
    with pytest.raises(ValueError, match="reconstruction decoders"):
        FG.refine(cyc, x)


def test_shared_decoders_share_tensors():
    g = FG.ForkGenerators(width=8, shared=True)
    for d in ("x", "y"):
        assert all(a is b for a, b in zip(g.Gr[d].parameters(), g.Gt[d].parameters()))
    n_shared = sum(p.numel() for p in g.parameters())
    n_fork = sum(p.numel() for p in FG.ForkGenerators(width=8).parameters())
    n_cyc = sum(p.numel() for p in FG.ForkGenerators(width=8, fork=False).parameters())
    assert n_shared == n_cyc < n_fork
    with pytest.raises(ValueError, match="need the fork"):
        FG.ForkGenerators(fork=False, shared=True)


def test_eq1_weighting_with_mocked_terms():
    one = torch.tensor(1.0)
    zero = torch.tensor(0.0)
    assert FG.total_loss(zero, zero, zero, one, zero) == 10
    assert FG.total_loss(zero, zero, zero, zero, one) == 10
    assert FG.total_loss(one, one, one, zero, zero) == 3
    assert FG.total_loss(zero, zero, zero, 2 * one, 3 * one, gamma=1, epsilon=2) == 8


def test_reconstruction_and_cycle_losses_vanish_for_identities():
    x = torch.full((2, 3, 8, 8), 0.3)
    ident = torch.nn.Identity()
    assert FG.reconstruction_loss(ident, x, x, sigma=0.0) == 0
    sig = FG.reconstruction_loss(ident, x, x, sigma=0.5, generator=torch.Generator().manual_seed(0))
    assert abs(float(sig) - 0.5 * (2 / np.pi) ** 0.5) < 0.05      # E|N(0, s^2)| = s sqrt(2/pi)
    g = FG.ForkGenerators(width=8)
    g.E = torch.nn.ModuleDict({"x": ident, "y": ident})
    g.Gt = torch.nn.ModuleDict({"x": ident, "y": ident})
    loss, inter = FG.cycle_loss(g, x, "x")
    assert loss == 0 and torch.equal(inter["z_tilde"], x)
    with pytest.raises(ValueError, match="sigma"):
        FG.reconstruction_loss(ident, x, x, sigma=-1)


def test_perceptual_code_loss_eq2():
    phi = FG.CodeFeatures(8, size=4, seed=0)
    z = torch.randn(2, 8, 8, 8, requires_grad=True)
    assert FG.perceptual_code_loss(phi, z, z) == 0
    z2 = z.detach() + 0.5
    loss = FG.perceptual_code_loss(phi, z2, z)
    by_hand = sum(F.l1_loss(a, b) for a, b in zip(phi(z2), phi(z)))
    assert torch.allclose(loss, by_hand)
    assert torch.allclose(FG.perceptual_code_loss(phi, z2, z, tau=3.0), 3 * by_hand)
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in phi.parameters())
    with pytest.raises(ValueError, match="one shape"):
        FG.perceptual_code_loss(phi, z2, z2[:1, :4])
    with pytest.raises(ValueError, match="lambdas"):
        FG.perceptual_code_loss(phi, z2, z, lambdas=(1.0,))


def test_code_labels_are_opposite_for_z_and_z_tilde():
    c = {k: torch.zeros(3, 4, 8, 8) for k in ("z_x", "z_y", "z_tilde_x", "z_tilde_y")}
    _, lab = FG.code_domain_labels(c)
    assert lab.tolist() == [0.0] * 3 + [1.0] * 3 + [1.0] * 3 + [0.0] * 3
    d = FG.DomainClassifier(4, 8, 8, 2)
    adv, logit = d(torch.randn(5, 4, 8, 8))
    assert adv.shape == (5, 1, 4, 4) and logit.shape == (5,)
    # flipping the labels: BCE(l, 1 - y) on a fixed classifier
    plain = FG.domain_classification_loss(d, c)
    flipped = FG.domain_classification_loss(d, c, flip=True)
    logit0 = d(torch.zeros(1, 4, 8, 8))[1]
    assert torch.allclose(plain, torch.nn.functional.softplus(-logit0).mean() * 0.5
                          + torch.nn.functional.softplus(logit0).mean() * 0.5)
    assert torch.allclose(plain, flipped)          # equal halves of each label: symmetric


def test_domain_classifier_chance_on_identical_and_perfect_on_shifted_codes():
    cfg = FG.Config.fast().replace(probe_steps=80)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 8, 8, 8, generator=g), torch.randn(200, 8, 8, 8, generator=g)
    same = FG.code_probe(cfg, a, b)
    ramp = torch.linspace(-1, 1, 8).expand(8, 8, 8)  # a spatial ramp added to every code of b
    shifted = FG.code_probe(cfg, a, b + ramp)
    offset = FG.code_probe(cfg, a, b + 1.0)         # a constant offset: removed by instance norm
    assert 0.35 < same < 0.65
    assert shifted > 0.95
    assert 0.35 < offset < 0.65
    with pytest.raises(ValueError, match="two code sets"):
        FG.code_probe(cfg, a[:2], b)


def test_msd_and_code_adversarial_losses():
    from cvtutor.nn.gan import MultiScaleDiscriminator
    d = MultiScaleDiscriminator(3, 2, 8, 2, spectral=False)
    x = _img()
    ld = FG.msd_loss(d, x, x, "d")
    outs = d(x)
    assert torch.allclose(ld, sum(0.5 * ((o - 1) ** 2).mean() + 0.5 * (o ** 2).mean()
                                  for o in outs))
    assert len(outs) == 2
    with pytest.raises(ValueError, match="side"):
        FG.msd_loss(d, x, x, "q")
    dd = FG.DomainClassifier(4, 8, 8)
    with pytest.raises(ValueError, match="expected codes"):
        dd(torch.zeros(2, 4, 4, 4))
    z = torch.randn(3, 4, 8, 8)
    with pytest.raises(ValueError, match="side"):
        FG.code_adversarial_loss(dd, z, z, "x")


def test_generator_gradients_reach_every_fork_part():
    cfg = FG.Config.fast()
    m = FG.build(cfg, "ForkGAN")
    g = m["G"]
    x = _img(1)
    cx_loss, cx = FG.cycle_loss(g, x, "x")
    rec = FG.reconstruction_loss(g.Gr["x"], cx["z"], x, 0.1)
    per = FG.perceptual_code_loss(m["Phi"], cx["z_tilde"], cx["z"])
    FG.total_loss(rec * 0, rec * 0, per, cx_loss, rec).backward()
    for name in ("E", "Gt", "Gr"):
        for d in ("x",):
            mod = getattr(g, name)[d]
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters()), \
                (name, d)
    with pytest.raises(ValueError, match="unknown variant"):
        FG.build(cfg, "nope")


def test_matching_self_gives_all_keypoints_and_darkening_fewer():
    from cvtutor.data import domains as D
    w = D.Streets(32, "cpu")
    p = D.paired(w, "night", "day", 3, 0)
    day = p["b"]["image"][0]
    m = FG.keypoint_matches(day, day)
    assert m["keypoints"] > 5
    assert m["matches"] == m["keypoints"] == m["consistent"]
    dark = FG.keypoint_matches(day * 0.2, day)
    night = FG.keypoint_matches(p["a"]["image"][0], day)
    assert dark["consistent"] < m["consistent"] and night["consistent"] < m["consistent"]
    orb = FG.keypoint_matches(day, day, method="orb")
    assert orb["matches"] == orb["keypoints"] > 0
    with pytest.raises(ValueError, match="one shape"):
        FG.keypoint_matches(day, day[:, :16])
    with pytest.raises(ValueError, match="method"):
        FG.keypoint_matches(day, day, method="surf")
    with pytest.raises(ValueError, match="RGB"):
        FG.keypoint_features(day[0])


def test_matches_agree_with_skimage_direct_call():
    from skimage.feature import SIFT, match_descriptors

    from cvtutor.data import domains as D
    w = D.Streets(32, "cpu")
    p = D.paired(w, "night", "day", 1, 3)
    a, b = p["b"]["image"][0], torch.flip(p["b"]["image"][0], (-1,))
    ga, gb = FG._gray_upscaled(a, 4), FG._gray_upscaled(b, 4)
    sa, sb = SIFT(), SIFT()
    sa.detect_and_extract(ga)
    sb.detect_and_extract(gb)
    n = len(match_descriptors(sa.descriptors, sb.descriptors, cross_check=True, max_ratio=0.8))
    assert FG.keypoint_matches(a, b)["matches"] == n


def test_make_data_is_seeded_and_unpaired():
    cfg = FG.Config.fast().replace(n_train=8, n_test=4)
    a, b = FG.make_data(cfg, 0), FG.make_data(cfg, 0)
    assert torch.equal(a["x"], b["x"]) and a["x"].shape == (8, 3, 32, 32)
    t = FG.make_test(cfg)
    assert t["x"].mean() < t["y"].mean()
    assert t["label"].shape == (4, 32, 32)


def test_configs_and_variants():
    full, smoke = FG.Config.full(), FG.Config.smoke()
    assert full.size == smoke.size == 64 and full.variants == smoke.variants
    assert set(full.variants) == set(FG.VARIANTS) and len(full.seeds) == 3
    assert FG.Config.fast().size == 32


def test_smoke_run_returns_tables_and_findings():
    cfg = FG.Config.smoke()
    out = FG.run(cfg, samples=True)
    tab = out["table"].set_index("method")
    assert {"Original", "Day (paired)", "ForkGAN", "w/o refinement", "shared decoders"} \
        <= set(tab.index)
    assert set(out["per_seed"].seed) == set(cfg.seeds)
    assert tab.loc["Day (paired)", "SSIM"] == pytest.approx(1.0)
    assert out["samples"]["ForkGAN"].shape == (6, 3, 64, 64) or \
        out["samples"]["ForkGAN"].shape[1:] == (3, 64, 64)
    assert out["augment"] is not None
    assert "Table 2: SIFT matches grow along the ablation ladder" in out["findings"].index
    key = "the day U-Net reads day images and the rainy night lowers it (mIoU)"
    assert out["findings"].loc[key, "kind"] == "construction"


def test_cli_runs_smoke(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "cvtutor", "run", "forkgan", "--profile", "smoke",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# readers on fixture files
# ---------------------------------------------------------------------------------------------
def _write_jpgs(folder, names):
    from PIL import Image
    folder.mkdir(parents=True)
    for i, n in enumerate(names):
        Image.fromarray(np.full((6, 8, 3), 10 * i, np.uint8)).save(folder / n)


def test_alderley_pairs_reader(tmp_path):
    _write_jpgs(tmp_path / "FRAMESA", [f"Image{i:05d}.jpg" for i in range(1, 11)])
    _write_jpgs(tmp_path / "FRAMESB", [f"Image{i:05d}.jpg" for i in range(1, 8)])
    lines = ["night,day"] + [f"{i},{min(i, 7)}" for i in range(1, 11)]
    (tmp_path / "framematches.csv").write_text("\n".join(lines) + "\n")
    df = R.read_alderley_pairs(tmp_path)
    assert len(df) == 10 and df.night_frame.tolist() == list(range(1, 11))
    assert df.day.iloc[-1].name == "Image00007.jpg"
    assert (df.split == "train").sum() == 8 and df.split.iloc[-1] == "test"
    imgs = R.load_images(df.night[:2])
    assert imgs.shape == (2, 3, 6, 8)
    (tmp_path / "framematches.csv").write_text("1,99\n")
    with pytest.raises(ValueError, match="not in the folders"):
        R.read_alderley_pairs(tmp_path)
    (tmp_path / "framematches.csv").write_text("1,2\nfoo,bar\n")
    with pytest.raises(ValueError, match="two frame numbers"):
        R.read_alderley_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="FRAMESA"):
        R.read_alderley_pairs(tmp_path / "missing")


def test_cyclegan_folders_for_alderley(tmp_path):
    for side in ("trainA", "trainB"):
        _write_jpgs(tmp_path / side, ["Image00001.jpg", "Image00002.jpg"])
    out = R.unpaired_folders(tmp_path, "train")
    assert len(out["A"]) == len(out["B"]) == 2
    with pytest.raises(FileNotFoundError, match="testA"):
        R.unpaired_folders(tmp_path, "test")


def test_bdd100k_json_day_night_and_seg_png(tmp_path):
    from PIL import Image
    frames = [
        {"name": "a.jpg", "attributes": {"weather": "rainy", "scene": "city street",
                                         "timeofday": "night"},
         "labels": [{"category": "car", "box2d": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}}]},
        {"name": "b.jpg", "attributes": {"weather": "clear", "scene": "highway",
                                         "timeofday": "daytime"}, "labels": []},
        {"name": "c.jpg", "attributes": {"weather": "rainy", "scene": "highway",
                                         "timeofday": "dawn/dusk"}, "labels": []},
        {"name": "d.jpg", "attributes": {"weather": "rainy", "scene": "highway",
                                         "timeofday": "daytime"}, "labels": []},
    ]
    p = tmp_path / "bdd100k_labels_images_val.json"
    p.write_text(json.dumps(frames))
    fr, boxes = R.read_bdd100k(p)
    split = R.bdd100k_day_night(fr)
    assert split["night"].name.tolist() == ["a.jpg"]
    assert split["day"].name.tolist() == ["b.jpg", "d.jpg"]
    assert R.bdd100k_day_night(fr, weather="rainy")["day"].name.tolist() == ["d.jpg"]
    assert boxes.loc[0, "x2"] == 30
    with pytest.raises(ValueError, match="columns"):
        R.bdd100k_day_night(boxes)
    mask = np.array([[0, 13, 255], [18, 2, 0]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "a_train_id.png")
    assert np.array_equal(R.read_bdd100k_seg(tmp_path / "a_train_id.png"), mask)
    Image.fromarray(np.array([[0, 40]], np.uint8)).save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="0..18 and 255"):
        R.read_bdd100k_seg(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError):
        R.read_bdd100k_seg(tmp_path / "none.png")


def test_domain_classifier_is_blind_to_channel_offsets_not_channel_scales():
    torch.manual_seed(0)
    dd = FG.DomainClassifier(8, 8, 16, 2).eval()
    z = torch.randn(4, 8, 8, 8)
    offset, per_channel = torch.randn(1, 8, 1, 1), torch.rand(1, 8, 1, 1) + 0.5
    with torch.no_grad():
        assert torch.allclose(dd(z)[1], dd(1.7 * z + offset)[1], atol=1e-4)
        assert not torch.allclose(dd(z)[1], dd(per_channel * z)[1], atol=1e-2)
