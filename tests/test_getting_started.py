import pytest
import torch

from cvtutor.papers import getting_started as gs


def test_cross_entropy_against_torch():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (7,), generator=g)
    assert torch.allclose(gs.softmax_cross_entropy(z, y), torch.nn.functional.cross_entropy(z, y))


def test_cross_entropy_hand_case():
    # two classes, logits (0, 0): loss = log 2; gradient = (p - onehot)/N = (-0.5, 0.5)
    z = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([0])
    assert gs.softmax_cross_entropy(z, y).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert torch.allclose(gs.cross_entropy_grad(z, y), torch.tensor([[-0.5, 0.5]], dtype=torch.float64))


def test_closed_form_gradient_equals_autograd():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (5,), generator=g)
    (auto,) = torch.autograd.grad(gs.softmax_cross_entropy(z, y), z)
    assert torch.allclose(auto, gs.cross_entropy_grad(z.detach(), y), atol=1e-12)


def test_stable_for_huge_logits():
    z = torch.tensor([[1000.0, -1000.0]])
    assert torch.isfinite(gs.softmax_cross_entropy(z, torch.tensor([1])))


def test_bad_input():
    with pytest.raises(ValueError, match=r"logits must be \(N, K\)"):
        gs.softmax_cross_entropy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        gs.softmax_cross_entropy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class indices"):
        gs.softmax_cross_entropy(torch.zeros(3, 2), torch.zeros(3))


def test_half_split_is_the_gallery_protocol():
    d = gs.half_split()
    assert len(d["x_train"]) == 898 and len(d["x_test"]) == 899
    assert d["x_train"].shape[1] == 64 and 0.0 <= d["x_train"].min() and d["x_train"].max() <= 1.0


def test_models_shapes():
    x = torch.rand(3, 64)
    assert gs.SoftmaxRegression()(x).shape == (3, 10)
    assert gs.MLP(hidden=8)(x).shape == (3, 10)


def test_run_fast_is_deterministic_and_shaped():
    cfg = gs.Config.fast().replace(steps=40)
    a, b = gs.run(cfg), gs.run(cfg)
    assert a["accuracy"]["accuracy"].tolist() == b["accuracy"]["accuracy"].tolist()
    assert list(a["table"].columns) == ["paper", "ours", "diff", "claim", "holds"]
    assert a["table"].loc["svc", "paper"] == 0.97
    assert set(a["history"].columns) >= {"step", "loss", "model", "seed"}


def test_smoke_is_full_at_toy_size():
    full, smoke = gs.Config.full(), gs.Config.smoke()
    assert gs.Config.for_profile("smoke") == smoke
    assert len(smoke.seeds) >= 2 and smoke.lr == full.lr and smoke.steps < full.steps


def test_findings_have_kinds_and_computed_holds():
    r = gs.run(gs.Config.smoke())
    f = r["findings"]
    assert f.loc["the SVC re-run matches the gallery's 0.97 (within 1 point)", "kind"] == "paper claim"
    assert set(f["kind"]) <= {"paper claim", "sanity check"}
    mean = r["accuracy"].groupby("model")["accuracy"].mean()
    assert bool(f.loc["the MLP beats softmax regression", "holds"]) == (mean["mlp"] > mean["softmax"])
    assert r["mean_accuracy"] == pytest.approx(mean.to_dict())
