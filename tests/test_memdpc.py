"""MemDPC (E19): each equation against a closed form, a hand case or an independent reference;
the clip and flow helpers on fixture files the tests write; the smoke profile end to end."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvtutor.data import video_clips as VC
from cvtutor.papers import memdpc as M


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- Eqs. (3)-(5): predictive addressing and the memory read ---------------------------------
def test_memory_read_is_p_times_m_and_associates_with_the_score():
    g = _gen()
    p = torch.softmax(torch.randn(2, 5, 3, 3, generator=g, dtype=torch.float64), 1)
    mem = torch.randn(5, 4, generator=g, dtype=torch.float64)
    z = torch.randn(4, generator=g, dtype=torch.float64)
    z_hat = M.memory_read(p, mem)
    # Eq. (5): (p M) z == p (M z) at every position
    lhs = torch.einsum("bchw,c->bhw", z_hat, z)
    rhs = torch.einsum("bkhw,k->bhw", p, mem @ z)
    assert torch.allclose(lhs, rhs)
    # by hand at one position
    assert torch.allclose(z_hat[1, :, 2, 0], p[1, :, 2, 0] @ mem)


def test_one_hot_attention_selects_a_slot_and_p_is_convex():
    mem = torch.eye(4)
    p = F.one_hot(torch.tensor([[[2]]]), 4).permute(0, 3, 1, 2).float()  # (1, 4, 1, 1)
    assert torch.equal(M.memory_read(p, mem)[0, :, 0, 0], mem[2])
    net = M.PredictiveAddressing(6, 10)
    z_hat, p = net(torch.randn(3, 6, 2, 2))
    assert p.shape == (3, 10, 2, 2) and z_hat.shape == (3, 6, 2, 2)
    assert (p >= 0).all() and torch.allclose(p.sum(1), torch.ones(3, 2, 2))


def test_memory_read_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same k"):
        M.memory_read(torch.rand(1, 5, 2, 2), torch.rand(4, 3))
    with pytest.raises(ValueError, match=r"\(B, k, H, W\)"):
        M.memory_read(torch.rand(5, 2), torch.rand(5, 3))


# --- Eq. (6): the dense InfoNCE --------------------------------------------------------------
def test_dense_infonce_on_a_hand_3x3_case():
    # three clips, one predicted step, a 1x1 map, C = 2: z_hat (B, T, C, H, W)
    zh = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    loss, acc = M.dense_infonce(zh[:, None, :, None, None], z[:, None, :, None, None])
    s = zh.numpy() @ z.numpy().T  # [[2,1,0],[0,2,2],[2,2,1]]
    by_hand = -np.mean([s[i, i] - np.log(np.exp(s[i]).sum()) for i in range(3)])
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    assert loss.item() == pytest.approx(F.cross_entropy(torch.tensor(s), torch.arange(3)).item())
    # argmax per row: 0 (right), 1 (tie 1/2: first index, right), 0 (wrong)
    assert acc.item() == pytest.approx(2 / 3)


def test_dense_infonce_is_log_n_for_identical_embeddings_and_falls_to_zero():
    z = torch.ones(2, 3, 4, 2, 2)
    loss, _ = M.dense_infonce(z, z)
    assert loss.item() == pytest.approx(math.log(2 * 3 * 2 * 2))
    e = torch.eye(8).reshape(8, 1, 8, 1, 1)  # orthonormal, perfectly predicted, scaled up
    assert M.dense_infonce(30 * e, e)[0].item() < 1e-10


def test_dense_infonce_counts_other_times_and_positions_as_negatives():
    # one clip, two steps, 1x2 map: N = 4 candidates, each prediction equal to its target
    z = torch.zeros(1, 2, 4, 1, 2)
    for i, (t, w) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        z[0, t, i, 0, w] = 1.0
    loss, acc = M.dense_infonce(5 * z, z)
    assert acc.item() == 1.0
    assert loss.item() == pytest.approx(-math.log(math.exp(5) / (math.exp(5) + 3)), rel=1e-6)


def test_dense_infonce_gradient_and_bad_shapes():
    g = _gen(1)
    zh = torch.randn(2, 1, 3, 1, 2, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 1, 3, 1, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: M.dense_infonce(a, b)[0], (zh, z))
    p = torch.softmax(torch.randn(1, 4, 1, 2, generator=g, dtype=torch.float64), 1).requires_grad_()
    mem = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(M.memory_read, (p, mem))
    with pytest.raises(ValueError, match="same shape"):
        M.dense_infonce(torch.rand(1, 2, 3, 1, 1), torch.rand(1, 2, 4, 1, 1))


# --- Eqs. (1)-(2): encoder and the 1x1 ConvGRU -------------------------------------------------
def test_conv_gru_equals_a_gru_cell_at_every_pixel():
    torch.manual_seed(0)
    gru, cell = M.ConvGRU(5, 7), torch.nn.GRUCell(5, 7)
    with torch.no_grad():
        gru.x2h.weight.copy_(cell.weight_ih[:, :, None, None])
        gru.x2h.bias.copy_(cell.bias_ih)
        gru.h2h.weight.copy_(cell.weight_hh[:, :, None, None])
        gru.h2h.bias.copy_(cell.bias_hh)
    z = torch.randn(2, 3, 5, 4, 3)  # (B, T, C, H, W)
    c = gru(z)
    seq = z.permute(0, 3, 4, 1, 2).reshape(-1, 3, 5)  # every pixel a sequence
    h = None
    for t in range(3):
        h = cell(seq[:, t], h)
    ref = h.reshape(2, 4, 3, 7).permute(0, 3, 1, 2)
    assert torch.allclose(c, ref, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        gru(torch.randn(2, 5, 4, 3))


def test_encoder_and_model_shapes():
    x = torch.rand(2, 8, 4, 3, 24, 24)
    enc = M.BlockEncoder(3, (8, 16, 32))
    assert enc(x).shape == (2, 8, 32, 3, 3)
    with pytest.raises(ValueError, match=r"\(B, N, L, C, S, S\)"):
        enc(x[0])
    for pred, bd in (("memory", False), ("direct", False), ("memory", True)):
        m = M.MemDPC(3, (8, 16, 32), memory_size=10, n_pred=3, predictor=pred, bidirectional=bd)
        out = m(x)
        assert out["z_hat"].shape == out["z"].shape == (2, 3, 32, 3, 3)
        assert ("p" in out) == (pred == "memory")
        if pred == "memory":
            assert out["p"].shape == (2, 3, 10, 3, 3)
        assert ("z_hat_b" in out) == bd
        assert m.features(x).shape == (2, 64 if bd else 32)
    # the targets are the encoder's last blocks; the backward targets its first, reversed
    m = M.MemDPC(3, (8, 16, 32), 10, 3, bidirectional=True).eval()
    out, z = m(x), m.f(x)
    assert torch.allclose(out["z"], z[:, 5:]) and torch.allclose(out["z_b"], z[:, :3].flip(1))
    with pytest.raises(ValueError, match="predictor"):
        M.MemDPC(predictor="mean")


def test_predictions_are_in_the_memorys_convex_hull():
    m = M.MemDPC(3, (8, 16, 32), memory_size=6, n_pred=3).eval()
    out = m(torch.rand(1, 8, 4, 3, 24, 24))
    mem = m.predictor.memory.detach()
    rec = torch.einsum("btkhw,kc->btchw", out["p"], mem)
    assert torch.allclose(rec, out["z_hat"], atol=1e-5)


# --- retrieval (Table 3) ---------------------------------------------------------------------
def test_retrieval_matches_brute_force_and_is_monotone():
    g = _gen(3)
    tr, te = torch.randn(40, 6, generator=g), torch.randn(15, 6, generator=g)
    y, yt = torch.randint(4, (40,), generator=g), torch.randint(4, (15,), generator=g)
    ours = M.retrieval(tr, y, te, yt, ks=(1, 3, 5, 10))
    a = te.numpy() / np.linalg.norm(te.numpy(), axis=1, keepdims=True)
    b = tr.numpy() / np.linalg.norm(tr.numpy(), axis=1, keepdims=True)
    order = np.argsort(-(a @ b.T), axis=1, kind="stable")
    for k in (1, 3, 5, 10):
        brute = np.mean([(y.numpy()[order[i, :k]] == yt.numpy()[i]).any() for i in range(15)])
        assert ours[k] == pytest.approx(brute)
    vals = [ours[k] for k in (1, 3, 5, 10)]
    assert vals == sorted(vals)


# --- flow images, clip indices, readers ----------------------------------------------------
def test_flow_to_image_maps_the_paper_range():
    flow = torch.tensor([-30.0, -20.0, 0.0, 20.0, 25.0]).reshape(1, 1, 5).expand(2, 1, 5)
    img = VC.flow_to_image(flow)
    assert img.shape == (3, 1, 5)
    assert img[0, 0].tolist() == [0.0, 0.0, 127.5, 255.0, 255.0]
    assert (img[2] == 0).all()
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        VC.flow_to_image(torch.zeros(3, 4, 4))


def test_block_frame_indices_stride_three():
    idx = VC.block_frame_indices(120, 8, 5, 3)
    assert idx.shape == (8, 5) and idx[0].tolist() == [0, 3, 6, 9, 12] and idx[-1, -1] == 117
    with pytest.raises(ValueError, match="need 118 frames"):
        VC.block_frame_indices(117, 8, 5, 3)


def test_frame_folder_clip_reads_the_right_frames(tmp_path):
    from PIL import Image

    for i in range(12):
        a = np.full((6, 5, 3), 20 * i, dtype=np.uint8)
        Image.fromarray(a).save(tmp_path / f"image_{i + 1:05d}.png")
    clip = VC.load_frame_folder_clip(tmp_path, n_blocks=2, block_len=3, stride=2, start=1)
    assert clip.shape == (2, 3, 3, 6, 5)
    expect = [20 * (1 + 2 * j) / 255 for j in range(6)]
    assert clip[:, :, 0, 0, 0].reshape(-1).tolist() == pytest.approx(expect)
    with pytest.raises(FileNotFoundError, match="frame images"):
        VC.load_frame_folder_clip(tmp_path / "missing")
    with pytest.raises(ValueError, match="frames"):
        VC.load_frame_folder_clip(tmp_path, n_blocks=8, block_len=5, stride=3)


def test_kinetics_csv(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        'abseiling,--07WQ2iBlw,1,11,train\n"air drumming",-0Fq1wVKPdo,30,40,train\n'
    )
    df = VC.load_kinetics_csv(f)
    assert df["label"].tolist() == ["abseiling", "air drumming"]
    assert df["clip_id"].iloc[0] == "--07WQ2iBlw_000001_000011"
    (tmp_path / "bad.csv").write_text("label,youtube_id\nx,y\n")
    with pytest.raises(ValueError, match="missing"):
        VC.load_kinetics_csv(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="Kinetics CSV"):
        VC.load_kinetics_csv(tmp_path / "none.csv")


# --- the two-futures toy of Eq. (5) ---------------------------------------------------------
def test_two_futures_toy_hedges_between_both_futures():
    toy = M.two_futures_toy(n_contexts=3, dim=8, memory_size=8, steps=200, seed=0)
    p, s = toy["p"], toy["score_memdpc"]
    assert torch.allclose(p.sum(1), torch.ones(3), atol=1e-5)
    # each context's prediction scores its two futures alike: it hedges (Eq. 5)
    assert ((s[:, 0] - s[:, 1]).abs() < 0.1 * s.abs().max()).all()
    assert (s > 0).all()
    # and no single slot carries the attention: p spreads over several slots (multimodal)
    assert (p.max(1).values < 0.9).all()


def test_world_branches_at_the_last_observed_frame():
    cfg = M.Config.smoke()
    w = M.world(cfg)
    assert w.branch_frame == (cfg.n_blocks - cfg.n_pred) * cfg.block_len - 1
    d = M.clips(cfg, 6, seed=0)
    assert d["rgb"].shape == (6, cfg.n_blocks, cfg.block_len, 3, cfg.size, cfg.size)
    assert d["flow"].shape == d["rgb"].shape and float(d["flow"][:, :, :, 2].abs().max()) == 0.0
    assert torch.equal(M.clips(cfg, 6, seed=0)["rgb"], d["rgb"])  # seeded, bit-identical


# --- the whole miniature -----------------------------------------------------------------------
def test_smoke_run_returns_every_key():
    r = M.run(M.Config.smoke())
    for key in (
        "rows",
        "table1",
        "table2",
        "table3",
        "retrieval",
        "efficiency",
        "ssl_history",
        "ft_history",
        "attention",
        "toy",
        "findings",
    ):
        assert key in r
    assert set(r["rows"]["method"]) >= {
        "A: DPC",
        "B1: random init (RGB)",
        "B2: random init (flow)",
        "E1: MemDPC bi-directional",
        "D1: MemDPC flow",
    }
    assert r["table1"].loc["C2: MemDPC k=1024", "ours"] == pytest.approx(
        100 * r["mean"].loc[r["main"], "fine-tune"]
    )
    assert r["findings"]["holds"].notna().sum() >= 8


def test_config_validation():
    with pytest.raises(ValueError, match="n_train"):
        M.Config.fast().replace(n_train=10_000)
    with pytest.raises(ValueError, match="memory_size must"):
        M.Config.full().replace(memory_size=64)


def test_cli_smoke(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvtutor",
            "run",
            "memdpc",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("memdpc-smoke-seed0.json"))
