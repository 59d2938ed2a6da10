"""Mask2CAD (E16): the equations against closed forms and independent libraries, the CAD world's
ground truth, bad input, and the smoke profile."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cvtutor.data.geometry.cameras import intrinsics
from cvtutor.data.geometry.quaternions import (matrix_to_quat, quat_conj, quat_geodesic, quat_mul,
                                               quat_normalize, quat_to_matrix)
from cvtutor.data.shapes3d import cad_boxes as cad
from cvtutor.metrics.kmedoids import k_medoids
from cvtutor.papers import mask2cad as M


def _q(n, seed=0):
    return quat_normalize(torch.randn(n, 4, generator=torch.Generator().manual_seed(seed),
                                      dtype=torch.float64))


def test_huber_equals_torch():
    x = torch.linspace(-1, 1, 101)
    assert torch.allclose(M.huber(x, 0.15), torch.nn.HuberLoss(delta=0.15)(x, torch.zeros_like(x)))
    with pytest.raises(ValueError, match="delta"):
        M.huber(x, 0.0)


def test_quaternion_sign_and_composition_vs_scipy():
    a, b = _q(50, 1), _q(50, 2)
    assert torch.allclose(quat_geodesic(a, -a), torch.zeros(50, dtype=a.dtype), atol=1e-6)
    ra = Rotation.from_quat(a[:, [1, 2, 3, 0]].numpy())
    rb = Rotation.from_quat(b[:, [1, 2, 3, 0]].numpy())
    ab = (ra * rb).as_matrix()
    assert np.allclose(quat_to_matrix(quat_mul(a, b)).numpy(), ab, atol=1e-10)
    assert np.allclose(quat_to_matrix(a).numpy(), ra.as_matrix(), atol=1e-10)
    back = matrix_to_quat(quat_to_matrix(a))
    assert torch.allclose(quat_geodesic(back, a), torch.zeros(50, dtype=a.dtype), atol=1e-6)
    ang = quat_geodesic(a, b).numpy()
    assert np.allclose(ang, (ra.inv() * rb).magnitude(), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        quat_mul(a[:, :3], b)


def test_delta_refinement_recovers_the_rotation():
    bins, q = _q(8, 3), _q(20, 4)
    k = M.rotation_bin(q, bins)
    dq = M.delta_target(q, bins, k)
    assert torch.allclose(quat_geodesic(M.refine(bins, k, dq), q), torch.zeros(20, dtype=q.dtype),
                          atol=1e-6)
    # the nearest bin is nearest
    d = quat_geodesic(q[:, None], bins[None])
    assert torch.equal(d.argmin(1), k)


def test_k_medoids_are_points_and_cost_does_not_increase():
    x = torch.randn(60, 2, generator=torch.Generator().manual_seed(0))
    D = torch.cdist(x, x)
    med, labels, costs = k_medoids(D, 4)
    assert med.unique().numel() == 4 and med.max() < 60
    assert all(b <= a + 1e-9 for a, b in zip(costs, costs[1:]))
    assert torch.equal(labels, D[:, med].argmin(1))
    with pytest.raises(ValueError, match="square"):
        k_medoids(D[:5], 2)
    with pytest.raises(ValueError, match="k must"):
        k_medoids(D, 0)


def test_scaled_cosine_and_nce_closed_form():
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    y = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    D = M.scaled_cosine(x, y, 0.15)
    ref = torch.nn.functional.cosine_similarity(x[:, None], y[None], dim=-1) / 0.15
    assert torch.allclose(D, ref, atol=1e-5)
    pos = torch.tensor([[True, False, False, False]] * 3)
    neg = ~pos
    loss = M.nce_loss(D, pos, neg, C=1.5)
    e = D.exp()
    hand = -torch.log(e[:, 0] / (e[:, 0] + 1.5 * e[:, 1:].sum(1))).mean()
    assert torch.allclose(loss, hand, atol=1e-5)
    D.requires_grad_(True)
    g, = torch.autograd.grad(M.nce_loss(D, pos, neg), D)
    assert (g[:, 0] < 0).all() and (g[:, 1:] > 0).all()  # pull positives, push negatives
    with pytest.raises(ValueError, match="same d"):
        M.scaled_cosine(x, y[:, :3])


def test_hard_mining_picks_extremes():
    sim = torch.tensor([[0.9, 0.1, 0.5, 0.8, 0.2, 0.7]])
    pos = torch.tensor([[True, True, True, False, False, False]])
    p, n = M.hard_mining(sim, pos, ~pos, 1, 2)
    assert p.nonzero()[:, 1].tolist() == [1]          # least similar positive
    assert sorted(n.nonzero()[:, 1].tolist()) == [3, 5]  # most similar negatives
    with pytest.raises(ValueError, match="both positive and negative"):
        M.hard_mining(sim, pos, pos, 1, 1)


def test_frontal_box_silhouette_and_depth():
    lib = {"centres": torch.zeros(1, cad.NB, 3), "half": torch.zeros(1, cad.NB, 3),
           "label": torch.zeros(1, dtype=torch.long), "valid": torch.zeros(1, cad.NB, dtype=torch.bool)}
    lib["half"][0, 0] = torch.tensor([0.5, 0.25, 0.1])
    lib["valid"][0, 0] = True
    S, f, z = 32, 40.0, 3.0
    out = cad.render_cad(lib, torch.zeros(1, dtype=torch.long), torch.eye(3)[None],
                         torch.tensor([[0.0, 0.0, z]]), S, f)
    # the front face at depth z - 0.1 projects to |u - 16| ≤ f·0.5/2.9, |v - 16| ≤ f·0.25/2.9
    r = torch.arange(S) + 0.5
    v, u = torch.meshgrid(r, r, indexing="ij")
    zf = z - 0.1
    expect = ((u - 16).abs() <= f * 0.5 / zf) & ((v - 16).abs() <= f * 0.25 / zf)
    assert torch.equal(out["hit"][0, 0], expect)
    assert torch.allclose(out["depth"][0, 0][expect], torch.full((int(expect.sum()),), zf))


def test_surface_points_lie_on_the_union_boundary():
    g = torch.Generator().manual_seed(0)
    lib = cad.cad_library(3, g)
    assert lib["label"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    ext = torch.where(lib["valid"][..., None], lib["centres"] + lib["half"], -torch.inf).amax(1) - \
        torch.where(lib["valid"][..., None], lib["centres"] - lib["half"], torch.inf).amin(1)
    assert torch.allclose(ext.amax(1), torch.full((9,), cad.EXTENT), atol=1e-5)
    p, n = cad.sample_surface(lib, 300, g)
    assert not cad.inside(lib, p, margin=1e-4).any()
    assert cad.inside(lib, p - 1e-3 * n, margin=0.0).float().mean() > 0.95  # just inside: solid
    with pytest.raises(KeyError, match="centres"):
        cad.sample_surface({"half": lib["half"]}, 10, g)


def test_centre_offset_and_back_projection():
    box = torch.tensor([[4.0, 6.0, 20.0, 26.0]])
    c = torch.tensor([[14.0, 11.0]])
    d = M.centre_offset(box, c)
    assert torch.allclose(d, torch.tensor([[2 / 16, -5 / 20]]))
    assert torch.allclose(M.centre_from_box(box, d), c)


def test_images_are_seeded_and_masks_match_boxes():
    lib = cad.cad_library(2, torch.Generator().manual_seed(0))
    a = cad.cad_images(lib, torch.arange(6), torch.Generator().manual_seed(5), 32, 45.0)
    b = cad.cad_images(lib, torch.arange(6), torch.Generator().manual_seed(5), 32, 45.0)
    assert torch.equal(a["image"], b["image"])
    assert torch.equal(cad.mask_boxes(a["mask"]), a["box"])


def test_smoke_run_returns_every_key():
    out = M.run(M.Config.smoke())
    for key in ("history", "table2", "table3", "compare_table2", "compare_table3", "pose",
                "pose_seeds", "ablations", "embedding", "findings"):
        assert key in out
    assert set(out["findings"]["kind"]) <= {"paper claim", "sanity check", "construction"}
    with pytest.raises(ValueError, match="unknown ablation"):
        M.ablation("x", {}, M.Config.smoke(), 0, None, None, None, None)


def test_cli_smoke(tmp_path):
    from cvtutor.cli import main
    assert main(["run", "mask2cad", "--profile", "smoke", "--out", str(tmp_path)]) in (0, None)


def test_pix3d_reader_on_a_fixture(tmp_path):
    import json

    import trimesh
    from PIL import Image

    from cvtutor.data.shapes3d.pix3d import read_pix3d, read_pix3d_model
    (tmp_path / "mask").mkdir()
    (tmp_path / "model").mkdir()
    m = np.zeros((8, 10), np.uint8)
    m[2:5, 3:7] = 255
    Image.fromarray(m).save(tmp_path / "mask" / "0001.png")
    trimesh.creation.box().export(tmp_path / "model" / "chair.obj")
    rec = {"img": "img/0001.jpg", "mask": "mask/0001.png", "model": "model/chair.obj",
           "category": "chair", "img_size": [10, 8], "bbox": [3, 2, 7, 5],
           "rot_mat": np.eye(3).tolist(), "trans_mat": [0, 0, 2.0], "focal_length": 35.0}
    (tmp_path / "pix3d.json").write_text(json.dumps([rec]))
    (r,) = read_pix3d(tmp_path)
    assert r["mask_array"].sum() == 12 and r["category"] == "chair"
    assert torch.equal(r["R"], torch.eye(3))
    v, f = read_pix3d_model(tmp_path, r)
    assert v.shape == (8, 3) and f.shape == (12, 3)
    (tmp_path / "pix3d.json").write_text(json.dumps([{"img": "x"}]))
    with pytest.raises(ValueError, match="lacks"):
        read_pix3d(tmp_path)
    with pytest.raises(FileNotFoundError, match="pix3d.json"):
        read_pix3d(tmp_path / "nowhere")


def test_mesh_rcnn_split_reads_with_load_coco_json(tmp_path):
    import json

    from cvtutor.data.coco import load_coco_json
    gt = {"images": [{"id": 1, "width": 10, "height": 8, "file_name": "img/0001.jpg"}],
          "categories": [{"id": 1, "name": "chair"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [3, 2, 4, 3],
                           "area": 12, "iscrowd": 0}]}
    p = tmp_path / "pix3d_s1_test.json"
    p.write_text(json.dumps(gt))
    out = load_coco_json(str(p), [])
    assert out is not None


def test_batches_skip_models_without_training_images():
    cfg = M.Config.smoke().replace(n_train=4, n_per_class=4)
    world = M.make_world(cfg, 0, torch.device("cpu"))
    b = M.sample_batch(world, cfg, 0, 0)
    assert set(b["model"].tolist()) <= set(world["train"]["model"].tolist())
    assert b["pool"].shape[0] == b["pool_model"].shape[0]
