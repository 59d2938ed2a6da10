import pytest
import torch

from cvtutor import report
from cvtutor.nn.resnet_mini import ResNetMini
from cvtutor.papers import hand_world as hw


def test_resnet_mini_size_and_features():
    m = ResNetMini(3, 63, 8)
    assert 20_000 < sum(p.numel() for p in m.parameters()) < 23_000  # the digest's ~21.5k
    out, feats = m(torch.zeros(2, 3, 32, 32), features=True)
    assert out.shape == (2, 63) and [f.shape[1:] for f in feats] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.zeros(2, 1, 32, 32))


def test_inputs_and_mean_pose():
    depth = torch.full((2, 1, 4, 4), 0.5)
    root = torch.tensor([[0, 0, 0.5], [0, 0, 0.2]])
    d = hw.depth_input(depth, root)
    assert torch.allclose(d[0], torch.zeros(1, 4, 4)) and torch.allclose(d[1], torch.ones(1, 4, 4))
    assert torch.equal(hw.rgb_input(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))
    train = {"xyz_norm": torch.randn(10, 21, 3)}
    test = {"xyz_norm": torch.zeros(3, 21, 3), "root": torch.randn(3, 3), "scale": torch.rand(3) + 0.5}
    mp = hw.mean_pose_xyz(train, test)
    assert torch.allclose((mp[0] - test["root"][0]) / test["scale"][0], train["xyz_norm"].mean(0), atol=1e-5)


def test_run_tiny_is_json_storable(tmp_path):
    cfg = hw.Config.fast().replace(n_train=64, n_test=16, epochs=1, batch_size=32, image_size=16)
    res = hw.run(cfg)
    assert set(res["summary"]["model"]) == {"Mean pose", "RGB", "Depth"}
    assert res["table"]["claim"].str.contains("Depth < RGB").any()
    report.save_results(res, tmp_path / "r.json", report.run_metadata("hand_world", "fast", "cpu", 0))
    back, _ = report.load_results(tmp_path / "r.json")
    assert len(back["example"]["ground truth"]) == 21


def test_paper_claim_holds_on_paper_numbers():
    assert hw.PAPER["table1"].values["Depth"] < hw.PAPER["table1"].values["RGB"]


def test_smoke_profile_and_finding_kinds():
    from cvtutor import report
    cfg = hw.Config.smoke()
    assert hw.Config.for_profile("smoke") == cfg and len(cfg.seeds) >= 2
    r = hw.run(cfg, progress=False)
    f = r["findings"]
    assert set(f["kind"]) <= set(report.KINDS)
    assert f.loc["depth beats RGB (EPE), the premise of cross-modal distillation", "kind"] == "paper claim"
    assert f.loc["RGB beats the mean pose", "kind"] == "sanity check"
