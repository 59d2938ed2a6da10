"""PointContrast (E34): the two contrastive losses of Sect. 3.4, Algorithm 1's correspondences and
transforms, the voxel backbone, FMR, mIoU, the smoke profile."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import jaccard_score

from cvtutor.metrics.segmentation import confusion_matrix
from cvtutor.papers import pointcontrast as pc


def _feats(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1),
            F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1))


def test_point_info_nce_is_cross_entropy_over_the_matched_similarity_matrix():
    f1, f2 = _feats(7, 5)
    pairs = torch.tensor([[0, 3], [2, 1], [4, 4], [6, 0]])
    A, B = f1[pairs[:, 0]], f2[pairs[:, 1]]
    want = F.cross_entropy(A @ B.T / 0.07, torch.arange(4))
    assert torch.allclose(pc.point_info_nce(f1, f2, pairs, 0.07), want)
    # the same by the paper's sum of log-ratios, written out
    logits = (A @ B.T / 0.07).numpy()
    by_hand = -np.mean([logits[k, k] - np.log(np.exp(logits[k]).sum()) for k in range(4)])
    assert abs(float(want) - by_hand) < 1e-10


def test_point_info_nce_equal_features_give_log_p_and_pairs_may_be_permuted():
    f = torch.ones(6, 4, dtype=torch.float64) / 2
    pairs = torch.stack([torch.arange(6), torch.arange(6)], 1)
    assert abs(float(pc.point_info_nce(f, f, pairs)) - math.log(6)) < 1e-10
    f1, f2 = _feats(9, 3, seed=1)
    pairs = torch.tensor([[0, 1], [1, 2], [5, 8], [7, 7], [3, 0]])
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert torch.allclose(pc.point_info_nce(f1, f2, pairs), pc.point_info_nce(f1, f2, pairs[perm]))
    # swapping the keys of two pairs changes it
    bad = pairs.clone()
    bad[[0, 1], 1] = bad[[1, 0], 1]
    assert not torch.allclose(pc.point_info_nce(f1, f2, pairs), pc.point_info_nce(f1, f2, bad))


def test_point_info_nce_gradient():
    f1, f2 = _feats(5, 3, seed=2)
    pairs = torch.tensor([[0, 1], [2, 3], [4, 0]])
    f1.requires_grad_(True)
    f2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: pc.point_info_nce(a, b, pairs, 0.5), (f1, f2))


def test_hardest_contrastive_zero_case():
    f = torch.eye(4, dtype=torch.float64)  # distinct points: distance √2 > m_n = 1.4
    pairs = torch.stack([torch.arange(4), torch.arange(4)], 1)
    assert float(pc.hardest_contrastive(f, f.clone(), pairs)) == 0.0
    # moving one positive apart costs [d - m_p]²/|P|
    f2 = f.clone()
    f2[0] = F.normalize(torch.tensor([1.0, 0.3, 0, 0], dtype=torch.float64), dim=0)
    d = float((f[0] - f2[0]).norm())
    loss = float(pc.hardest_contrastive(f, f2, pairs))
    # f2[0] also moved nearer to f1[1]: its hardest negative term, ½[1.4 - d(f1[1], f2[0])]²/4
    dn = float((f[1] - f2[0]).norm())
    assert abs(loss - ((d - 0.1) ** 2 / 4 + 0.5 * max(1.4 - dn, 0) ** 2 / 4
                       + 0.5 * max(1.4 - dn, 0) ** 2 / 4)) < 1e-10


def test_hardest_contrastive_three_pair_hand_value():
    f1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    f2 = torch.tensor([[0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]], dtype=torch.float64)
    pairs = torch.tensor([[0, 0], [1, 1], [2, 2]])
    # by hand: positives
    pos = [np.hypot(0.2, 0.6), np.hypot(0.6, 0.2), 0.0]
    lp = sum(max(p - 0.1, 0) ** 2 for p in pos) / 3
    # hardest negatives of f1_i among f2_k (k ≠ i) and of f2_j among f1_k (k ≠ j)
    a, b = f1.numpy(), f2.numpy()
    hi = [min(np.linalg.norm(a[i] - b[k]) for k in range(3) if k != i) for i in range(3)]
    hj = [min(np.linalg.norm(b[j] - a[k]) for k in range(3) if k != j) for j in range(3)]
    ln = 0.5 * sum(max(1.4 - h, 0) ** 2 for h in hi) / 3 + 0.5 * sum(max(1.4 - h, 0) ** 2 for h in hj) / 3
    assert abs(float(pc.hardest_contrastive(f1, f2, pairs)) - (lp + ln)) < 1e-10
    # a negative subset that excludes the nearest negative can only lower the negative term
    sub = (torch.tensor([0, 2]), torch.tensor([0, 2]))
    assert float(pc.hardest_contrastive(f1, f2, pairs, negatives=sub)) <= lp + ln + 1e-12


def test_hardest_contrastive_gradient():
    f1, f2 = _feats(6, 3, seed=3)
    pairs = torch.tensor([[0, 1], [2, 3], [4, 5]])
    f1.requires_grad_(True)
    f2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: pc.hardest_contrastive(a, b, pairs, 0.1, 1.9),
                                    (f1, f2))


def test_correspondences_identity_and_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, generator=g)
    m = pc.correspondences(x, x, 0.01)
    assert m.tolist() == [[i, i] for i in range(200)]
    y = torch.rand(150, 3, generator=g)
    m = pc.correspondences(x, y, 0.08)
    d = torch.cdist(x.double(), y.double())
    has = (d < 0.08).any(1)
    assert m[:, 0].tolist() == has.nonzero()[:, 0].tolist()
    assert (d[m[:, 0], m[:, 1]] == d[m[:, 0]].min(1).values).all()


def test_rigid_transforms_are_similarities_and_invert():
    g = torch.Generator().manual_seed(1)
    for mode in ("up", "axis"):
        t = pc.random_rigid(64, g, mode, (0.8, 1.2))
        R = t["R"]
        assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5)
        assert torch.allclose(torch.linalg.det(R), torch.ones(64), atol=1e-5)
        assert (t["s"] >= 0.8).all() and (t["s"] <= 1.2).all()
        if mode == "up":
            assert torch.allclose(R[:, 2], torch.tensor([0.0, 0, 1]).expand(64, 3), atol=1e-6)
    x = torch.randn(4, 30, 3, generator=g)
    tr = torch.randn(4, 3, generator=g)
    y = pc.apply_rigid(x, R[:4], t["s"][:4], tr)
    assert torch.allclose(pc.invert_rigid(y, R[:4], t["s"][:4], tr), x, atol=1e-5)
    # distances scale by s: matches found before the transforms stay matches (up to s)
    d0 = (x[0][:, None] - x[0][None]).norm(dim=-1)
    d1 = (y[0][:, None] - y[0][None]).norm(dim=-1)
    assert torch.allclose(d1, t["s"][0] * d0, atol=1e-4)


def test_pairs_overlap_and_matches():
    cfg = pc.Config.smoke()
    g = torch.Generator().manual_seed(0)
    sc = pc.make_scenes(3, 1500, g)
    assert sc["label"].min() >= 0 and sc["label"].max() < pc.N_CLASSES
    floor = sc["label"] == 0
    assert sc["points"][..., 2][floor].abs().max() < 0.11  # the floor slab's faces
    v = pc.partial_views(sc, g)
    both = (v["visible1"] & v["visible2"]).sum(1).float()
    brute = torch.minimum(both / v["visible1"].sum(1), both / v["visible2"].sum(1))
    assert torch.allclose(v["overlap"], brute)
    b = pc.make_pairs(sc, torch.arange(3), cfg.replace(view_noise=0.0), g)
    r = cfg.match_radius * cfg.voxel
    for k, m in enumerate(b["matches"]):
        assert len(m) > 0
        assert ((b["w1"][k][m[:, 0]] - b["w2"][k][m[:, 1]]).norm(dim=1) < r).all()
        # the network sees the transformed views; T⁻¹ brings them back to the world frame
        back = pc.invert_rigid(b["x1"][k:k + 1], b["T1"]["R"][k:k + 1], b["T1"]["s"][k:k + 1],
                               b["T1"]["t"][k:k + 1])
        assert torch.allclose(back[0], b["w1"][k], atol=1e-5)
    hol = pc.make_pairs(sc, torch.arange(2), cfg.replace(view_noise=0.0), g, holistic=True)
    assert all(len(m) == cfg.view_points for m in hol["matches"])


def test_subsample():
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, False, True, False], [False, False, False, True]])
    idx = pc.subsample(mask, 3, g)
    assert set(idx[0].tolist()) <= {0, 2} and idx[1].tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="at least one point"):
        pc.subsample(torch.zeros(1, 4, dtype=torch.bool), 2, g)


def test_voxel_unet_is_translation_equivariant_in_pooling_blocks():
    torch.manual_seed(0)
    # depth 1: a receptive field of 8 voxels, which stays clear of the grid's x-y borders
    net = pc.VoxelUNet(grid=(32, 32, 8), voxel=0.25, dim=8, width=8, depth=1).double().eval()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 300, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    shift = torch.tensor([2 * 0.25, -4 * 0.25, 0.0], dtype=torch.float64)  # k·2**depth voxels
    with torch.no_grad():
        a, b = net(x), net(x + shift)
    assert a.shape == (1, 300, 8)
    assert (a - b).abs().max() < 1e-9 < a.abs().max()
    flat, p01 = pc.voxel_index(x * 10, (16, 16, 8), 0.25)  # far outside: clamped into the grid
    assert flat.min() >= 0 and flat.max() < 16 * 16 * 8 and (p01 >= 0).all() and (p01 < 1).all()


def test_feature_match_recall():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 50, 3, generator=g)
    f = [F.normalize(torch.randn(50, 8, generator=g), dim=1) for _ in range(2)]
    m = [torch.stack([torch.arange(50)] * 2, 1)] * 2
    perfect = pc.feature_match_recall(f, f, w, w, m, tau1=1e-6)
    assert perfect == {"fmr": 1.0, "inlier_ratio": 1.0}
    rand = pc.feature_match_recall(f, [F.normalize(torch.randn(50, 8, generator=g), dim=1)] * 2,
                                   w, w, m, tau1=1e-6)
    assert rand["inlier_ratio"] < 0.2


def test_miou_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (400,), generator=g)
    p = torch.where(torch.rand(400, generator=g) < 0.6, y, torch.randint(0, 5, (400,), generator=g))
    conf = confusion_matrix(p, y, pc.N_CLASSES, None)
    want = 100 * jaccard_score(y.numpy(), p.numpy(), average="macro")
    assert abs(pc.scene_miou(conf) - want) < 1e-9


def test_bad_inputs_raise_clear_errors():
    f = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        pc.point_info_nce(f, f, torch.zeros(0, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="feature dimension"):
        pc.hardest_contrastive(f, torch.randn(4, 5), torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        pc.correspondences(np.zeros((5, 2)), np.zeros((5, 3)), 0.1)
    with pytest.raises(ValueError, match="'up' or 'axis'"):
        pc.random_rigid(2, torch.Generator(), "so2")
    with pytest.raises(ValueError, match="scale"):
        pc.random_rigid(2, torch.Generator(), "up", (1.2, 0.8))
    with pytest.raises(ValueError, match="divisible"):
        pc.VoxelUNet(grid=(12, 12, 6), depth=2)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        pc.VoxelUNet(grid=(8, 8, 8), depth=2)(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="'nce' or 'hc'"):
        pc.pretrain(pc.Config.smoke(), {"points": torch.zeros(1, 2, 3)}, "triplet", 0)


def test_paper_numbers():
    t2 = pc.PAPER["table2"].values
    assert abs(t2["HC 1%"] - t2["scratch 1%"] - 4.0) < 1e-9  # Table 2's printed (+4.0)
    assert abs(t2["NCE 1%"] - t2["scratch 1%"] - 3.6) < 1e-9
    t3 = pc.PAPER["table3"].values
    assert abs(t3["HC 1%"] - t3["scratch 1%"] - 2.2) < 1e-9
    assert pc.PAPER["table1"].values["Synthia4D mIoU"] == 3.3


def test_smoke_profile_runs_every_full_path():
    full, smoke = pc.Config.full(), pc.Config.smoke()
    assert smoke.losses == full.losses and smoke.holistic == full.holistic
    assert len(smoke.fractions) >= 2 and len(smoke.seeds) >= 2
    res = pc.run(smoke)
    assert set(res["fmr"]["init"]) == {"random", "NCE", "HC", "holistic NCE"}
    assert set(res["segmentation"]["seed"]) == set(smoke.seeds)
    assert {"gain NCE", "gain HC", "gain holistic NCE"} <= set(res["seg_table"].columns)
    f = res["findings"]
    assert len(f) == 8 and f["holds"].notna().all()


def test_cli_smoke(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cvtutor", "run", "pointcontrast", "--profile",
                          "smoke", "--out", str(tmp_path)], check=False, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
