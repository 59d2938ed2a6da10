"""Tests of E41 side-tuning (cvtutor.papers.side_tuning) and the iShapes world piece."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from cvtutor.data.imageclass.ishapes import ishapes, sobel_magnitude
from cvtutor.papers import side_tuning as S


def test_ishapes_seeded_and_targets():
    a, b = ishapes(16, seed=3), ishapes(16, seed=3)
    assert torch.equal(a.x, b.x)
    assert all(torch.equal(a.targets[k], b.targets[k]) for k in a.targets)
    assert a.x.shape == (16, 3, 24, 24) and a.targets["segmentation"].shape == (16, 1, 24, 24)
    assert set(a.targets["count"].tolist()) <= {0, 1, 2}
    # the mask is where the shape map names an object
    assert torch.equal(a.targets["segmentation"][:, 0] > 0, a.targets["shape_map"] > 0)
    with pytest.raises(ValueError, match="n >= 1"):
        ishapes(0)


def test_sobel_against_skimage():
    filters = pytest.importorskip("skimage.filters")
    m = (torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    ours = sobel_magnitude(m)[0, 0].numpy()
    ref = filters.sobel(m[0, 0].numpy().astype(np.float64), mode="nearest")
    # skimage normalises each axis kernel by 1/4 and the magnitude by 1/sqrt(2)
    np.testing.assert_allclose(ours[1:-1, 1:-1] / np.sqrt(2), ref[1:-1, 1:-1], atol=1e-5)
    with pytest.raises(ValueError, match="mask"):
        sobel_magnitude(m[0])


def test_alpha_one_equals_features_and_copy_gives_base():
    torch.manual_seed(0)
    base = S.freeze(S.BaseNet())
    dec = S.make_decoder("count", 24)
    side = S.SideNet()
    merge = S.AlphaBlend()
    merge.fixed = 1.0
    x = torch.rand(4, 3, 24, 24)
    assert torch.allclose(S.SideTuned(base, side, merge, dec)(x), S.Features(base, dec)(x))
    copy_side = S.make_side("copy", base, side)
    for a in (0.1, 0.5, 0.9):
        m = S.AlphaBlend(a)
        r = S.SideTuned(base, copy_side, m, dec).representation(x)
        assert torch.allclose(r, base(x), atol=1e-6)


def test_base_frozen_gets_no_gradient():
    base = S.freeze(S.BaseNet())
    net = S.SideTuned(base, S.SideNet(), S.AlphaBlend(), S.make_decoder("segmentation", 24))
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 1, 24, 24)
    S.task_loss("segmentation", net(x), y).backward()
    assert all(p.grad is None for p in base.parameters())
    assert net.merge.a.grad is not None and net.side.c1.weight.grad is not None


def test_merges_shapes_and_errors():
    b, s = torch.rand(2, 16, 6, 6), torch.rand(2, 16, 6, 6)
    for name in S.MERGES:
        assert S.make_merge(name)(b, s).shape == b.shape
    with pytest.raises(ValueError, match="merge must be one of"):
        S.make_merge("concat")
    with pytest.raises(ValueError, match="one shape"):
        S.AlphaBlend()(b, s[:, :8])
    with pytest.raises(ValueError, match="alpha0"):
        S.AlphaBlend(1.0)


def test_hyperbolic_alpha():
    assert S.hyperbolic_alpha(0, 2.0) == 1.0 and S.hyperbolic_alpha(2.0, 2.0) == 0.5
    a = S.hyperbolic_alpha(torch.arange(100.0), 3.0)
    assert bool((a.diff() < 0).all()) and float(a[-1]) < 0.03
    with pytest.raises(ValueError, match="k must be positive"):
        S.hyperbolic_alpha(1, 0)


def test_fisher_logistic_regression_by_hand():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=g), (torch.rand(20, generator=g) > 0.5).float()
    model = nn.Linear(3, 1)
    loss = lambda o, t: nn.functional.binary_cross_entropy_with_logits(o[:, 0], t, reduction="sum")
    f = S.fisher_diagonal(model, ["weight", "bias"], loss, x, y)
    with torch.no_grad():
        r = torch.sigmoid(model(x)[:, 0]) - y  # d(-log p)/dz
    torch.testing.assert_close(f["weight"][0], (r[:, None] ** 2 * x ** 2).mean(0))
    torch.testing.assert_close(f["bias"][0], (r ** 2).mean())
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert float(S.ewc_penalty(model, f, anchor, 10.0).detach()) == 0.0
    with torch.no_grad():
        model.bias += 1.0
    pen = S.ewc_penalty(model, f, anchor, 10.0)
    assert float(pen.detach()) == pytest.approx(5.0 * float(f["bias"]))
    pen.backward()  # the gradient lambda F (theta - theta*)
    torch.testing.assert_close(model.bias.grad, 10.0 * f["bias"] * 1.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        S.fisher_diagonal(model, ["nope"], loss, x, y)


def test_metrics():
    assert np.all(S.rigidity([0.5, 2.0], [0.5, 2.0]) == 0)
    assert S.rigidity([1.0], [np.e])[0] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="positive"):
        S.rigidity([0.0], [1.0])
    L = np.array([[1.0, np.nan], [1.5, 0.7]])
    np.testing.assert_allclose(S.forgetting(L), [0.5, 0.0])
    t = pd.DataFrame({"a": [1.0, 3.0, 2.0], "b": [2.0, 1.0, 2.0], "c": [3.0, 2.0, 5.0]})
    ref = np.vstack([stats.rankdata(r) for r in t.to_numpy()]).mean(0)
    np.testing.assert_allclose(S.average_rank(t).to_numpy(), ref)
    assert S.average_rank(t)["a"] == pytest.approx((1 + 3 + 1.5) / 3)


def test_parameter_counting():
    base = S.freeze(S.BaseNet())
    side = S.SideNet()
    tasks = ["segmentation", "count", "orientation"]
    nets = [S.SideTuned(base, copy.deepcopy(side), S.AlphaBlend(), S.make_decoder(t, 24))
            for t in tasks]
    per = [S.count_parameters(n.side) + 1 + S.count_parameters(n.decoder) for n in nets]
    assert sum(S.count_parameters(n, trainable=True) for n in nets) == sum(per)
    assert S.count_parameters(base, trainable=True) == 0 and S.count_parameters(base) > 0


def test_task_loss_errors():
    with pytest.raises(ValueError, match="task must be one of"):
        S.task_loss("normals", torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="target"):
        S.task_loss("depth", torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))


def test_no_forgetting_bitwise_and_fine_tune_moves():
    cfg = S.Config.smoke().replace(tasks=("segmentation", "count"), seeds=(0,), steps=4)
    data = S.make_data(cfg, 0, "cpu")
    base, _ = S.pretrain_base(data["train"], cfg, 0)
    distilled = S.distill_side(base, data["train"], cfg, 0)
    res = S.incremental("side-tune", base, distilled, data, cfg, 0)
    x = data["test"].x[:8]
    first = res["nets"][0](x)
    more = S.incremental("side-tune", base, distilled, data, cfg.replace(
        tasks=("segmentation", "count", "orientation")), 0)
    assert torch.equal(first, more["nets"][0](x))  # a later task does not touch task 0's model
    ft = S.incremental("fine-tune", base, distilled, data, cfg, 0)
    assert ft["losses"][1, 0] != ft["losses"][0, 0]  # the shared trunk moved


def test_run_smoke_has_every_key():
    res = S.run(S.Config.smoke())
    for key in ("table2", "table4", "table5", "init_study", "table3a", "findings", "curves",
                "forgetting", "rigidity", "alphas", "params"):
        assert key in res
    assert len(res["table4"]) == 4 and len(res["table5"]) == 3 and len(res["table3a"]) == 4
    assert set(res["findings"]["kind"]) <= {"paper claim", "sanity check", "construction"}
    with pytest.raises(ValueError, match="two tasks"):
        S.run(S.Config.smoke().replace(tasks=("count",)))


def test_icifar_protocol_on_a_cifar100_fixture(tmp_path):
    """iCIFAR (Sec. 4.2): the world's CIFAR-100 reader and its 10 x 10 class-incremental split."""
    import pickle

    from cvtutor.data.imageclass.readers import read_cifar
    from cvtutor.data.imageclass.splits import class_incremental_tasks, task_of_class

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = list(range(100)) * 2
    with open(folder / "train", "wb") as f:
        pickle.dump({"data": rng.integers(0, 256, (200, 3072), dtype=np.uint8),
                     "fine_labels": labels, "coarse_labels": [c // 5 for c in labels]}, f)
    data = read_cifar(tmp_path, "train", classes=100)
    tasks = class_incremental_tasks(100, 10)
    t = task_of_class(tasks, data.y)
    assert data.x.shape == (200, 3, 32, 32) and len(tasks) == 10
    assert all(int((t == i).sum()) == 20 for i in range(10))  # 10 classes x 2 images a task
    assert sorted(c for task in tasks for c in task) == list(range(100))
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        read_cifar(tmp_path / "nothing", "train", classes=100)
