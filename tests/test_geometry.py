"""The geometry core against closed forms and independent libraries (scipy, OpenCV, shapely)."""
import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from cvtutor.data import geometry as G

D = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_axis_rotations_match_scipy():
    deg = torch.tensor([-130.0, -20.0, 0.0, 45.0, 170.0], dtype=D)
    for fn, ax in ((G.rot_x, "x"), (G.rot_y, "y"), (G.rot_z, "z")):
        ref = Rotation.from_euler(ax, deg.numpy()[:, None], degrees=True).as_matrix()
        assert np.allclose(fn(deg).numpy(), ref, atol=1e-12)


def test_so3_exp_log_match_scipy_and_round_trip():
    g = _gen(1)
    w = torch.randn(200, 3, generator=g, dtype=D)
    w = (
        w
        / w.norm(dim=-1, keepdim=True)
        * torch.rand(200, 1, generator=g, dtype=D)
        * (math.pi - 1e-3)
    )
    w[0] = 0.0
    w[1] = torch.tensor([1e-5, -2e-5, 3e-6], dtype=D)
    w[2] = torch.tensor([0.0, 0.0, math.pi - 1e-7], dtype=D)  # near π
    R = G.so3_exp(w)
    assert np.allclose(R.numpy(), Rotation.from_rotvec(w.numpy()).as_matrix(), atol=1e-12)
    assert (G.so3_log(R) - w).abs().max() < 1e-6
    assert np.allclose(G.so3_log(R).numpy(), Rotation.from_matrix(R.numpy()).as_rotvec(), atol=1e-6)
    Rr = G.random_rotation(50, _gen(2))  # float32
    assert (Rr @ Rr.transpose(1, 2) - torch.eye(3)).abs().max() < 1e-6
    assert torch.allclose(torch.linalg.det(Rr), torch.ones(50), atol=1e-6)
    assert (G.so3_exp(G.so3_log(Rr)) - Rr).abs().max() < 1e-5


def test_hat_vee_cross_product():
    a, b = torch.randn(2, 10, 3, generator=_gen(3), dtype=D)
    assert torch.allclose((G.hat(a) @ b[..., None])[..., 0], torch.linalg.cross(a, b, dim=-1))
    assert torch.allclose(G.vee(G.hat(a)), a)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        G.hat(torch.zeros(4))


def test_se3_round_trip_and_translation():
    xi = torch.randn(100, 6, generator=_gen(4), dtype=D)
    xi[:, 3:] = xi[:, 3:].clamp(-1.5, 1.5)
    T = G.se3_exp(xi)
    assert (G.se3_log(T) - xi).abs().max() < 1e-6
    assert torch.allclose(T[:, :3, :3], G.so3_exp(xi[:, 3:]))
    xi0 = torch.tensor([[1.0, 2.0, 3.0, 0, 0, 0]], dtype=D)  # pure translation
    assert torch.allclose(G.se3_exp(xi0)[0, :3, 3], xi0[0, :3])
    x = torch.randn(100, 5, 3, generator=_gen(5), dtype=D)
    ref = x @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]
    assert torch.allclose(G.transform(T, x), ref)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 4\)"):
        G.se3_log(torch.eye(3))


def test_project_backproject_round_trip():
    K = G.pinhole(500.0, 480.0, 320.0, 240.0, dtype=D)
    X = torch.randn(64, 3, generator=_gen(6), dtype=D) + torch.tensor([0, 0, 5.0], dtype=D)
    uv = G.project(X, K)
    assert (G.backproject(uv, X[:, 2], K) - X).abs().max() < 1e-9
    assert torch.allclose(uv[:, 0], 500 * X[:, 0] / X[:, 2] + 320)


def test_look_at_ring_and_hemisphere():
    R, t, eyes = G.camera_ring(8, radius=6.0, height=1.5, target=(0.0, 0.0, 1.0), dtype=D)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=D).expand(8, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(8, dtype=D))
    cam_eye = (R @ eyes[..., None])[..., 0] + t
    assert cam_eye.abs().max() < 1e-9  # the eye is the camera centre
    tgt = (R @ torch.tensor([0.0, 0.0, 1.0], dtype=D)[:, None])[..., 0] + t
    assert (
        torch.allclose(tgt[:, :2], torch.zeros(8, 2, dtype=D), atol=1e-9) and (tgt[:, 2] > 0).all()
    )
    up = (R @ torch.tensor([0.0, 0.0, 1.0], dtype=D)[:, None])[..., 0]
    assert (up[:, 1] < 0).all()  # world up is image up (camera y points down)
    R2, t2, e2 = G.camera_hemisphere(20, radius=3.0, dtype=D)
    assert torch.allclose(e2.norm(dim=-1), torch.full((20,), 3.0, dtype=D)) and (e2[:, 2] > 0).all()
    with pytest.raises(ValueError, match="parallel"):
        G.look_at(torch.tensor([0.0, 0.0, 5.0]), torch.zeros(3))


def _random_H(g):
    H = torch.eye(3, dtype=D) + 0.1 * torch.randn(3, 3, generator=g, dtype=D)
    H[:2, 2] = torch.randn(2, generator=g, dtype=D) * 20
    H[2, :2] *= 1e-3  # a mild perspective for pixel coordinates in [0, 300]
    return H / H[2, 2]


def test_homography_dlt_exact_on_4_and_n_points():
    g = _gen(7)
    H = torch.stack([_random_H(g) for _ in range(5)])
    for n in (4, 30):
        src = torch.rand(5, n, 2, generator=g, dtype=D) * 200
        dst = G.apply_homography(H, src)
        assert (G.homography_dlt(src, dst) - H).abs().max() < 1e-8
    with pytest.raises(ValueError, match="N >= 4"):
        G.homography_dlt(torch.zeros(3, 2), torch.zeros(3, 2))


def test_homography_dlt_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    g = _gen(8)
    H = _random_H(g)
    src = torch.rand(40, 2, generator=g, dtype=D) * 300
    dst = G.apply_homography(H, src) + 0.5 * torch.randn(40, 2, generator=g, dtype=D)
    exact, _ = cv2.findHomography(src.numpy(), G.apply_homography(H, src).numpy(), 0)
    assert np.allclose(exact, H.numpy(), atol=1e-6)
    ref, _ = cv2.findHomography(src.numpy(), dst.numpy(), 0)
    ours = G.homography_dlt(src, dst)
    # both fit noisy data (0.5 px): the same mapping to well under the noise
    assert (
        G.apply_homography(ours, src) - G.apply_homography(torch.from_numpy(ref), src)
    ).abs().max() < 0.1


def test_ground_plane_homography_maps_floor_points():
    K = G.pinhole(400.0, 400.0, 160.0, 120.0, dtype=D)
    R, t, _ = G.camera_ring(3, radius=5.0, height=2.0, dtype=D)
    XY = torch.rand(20, 2, generator=_gen(9), dtype=D) * 4 - 2
    X = torch.cat([XY, torch.zeros(20, 1, dtype=D)], -1)
    uv = G.project(G.world_to_camera(X, R, t), K)
    Hg = G.ground_plane_homography(K, R, t)
    assert (G.apply_homography(Hg, XY.expand(3, 20, 2)) - uv).abs().max() < 1e-9


def test_triangulation_exact_and_matches_opencv():
    K = G.pinhole(400.0, 400.0, 160.0, 120.0, dtype=D)
    R, t, _ = G.camera_ring(4, radius=5.0, height=2.0, target=(0.0, 0.0, 1.0), dtype=D)
    P = G.projection_matrix(K, R, t)  # (4, 3, 4)
    X = torch.randn(30, 3, generator=_gen(10), dtype=D) * 0.5 + torch.tensor([0, 0, 1.0], dtype=D)
    uv = G.project(G.world_to_camera(X[None], R, t), K).permute(1, 0, 2)  # (30, 4, 2)
    assert (G.triangulate_dlt(P.expand(30, 4, 3, 4), uv) - X).abs().max() < 1e-8
    w = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=D).expand(30, 4)
    bad = uv.clone()
    bad[:, 1] += 50  # a view with weight 0 cannot spoil the estimate
    assert (G.triangulate_dlt(P.expand(30, 4, 3, 4), bad, w) - X).abs().max() < 1e-8
    cv2 = pytest.importorskip("cv2")
    ref = cv2.triangulatePoints(P[0].numpy(), P[2].numpy(), uv[:, 0].T.numpy(), uv[:, 2].T.numpy())
    assert np.allclose((ref[:3] / ref[3]).T, X.numpy(), atol=1e-8)
    noisy = uv + torch.randn(uv.shape, generator=_gen(11), dtype=D)
    ref = cv2.triangulatePoints(
        P[0].numpy(), P[2].numpy(), noisy[:, 0].T.numpy(), noisy[:, 2].T.numpy()
    )
    ref = (ref[:3] / ref[3]).T
    ours = G.triangulate_dlt(P[[0, 2]].expand(30, 2, 3, 4), noisy[:, [0, 2]])
    # OpenCV does not normalise the rows, so the two weight the views differently under noise:
    # both land within the noise of the truth, at comparable error
    e_ours, e_cv = (ours - X).norm(dim=-1).mean(), np.linalg.norm(ref - X.numpy(), axis=-1).mean()
    assert e_ours < 0.05 and e_cv < 0.05 and 0.5 < e_ours / e_cv < 2


def test_umeyama_recovers_similarity_and_matches_scipy():
    g = _gen(12)
    src = torch.randn(6, 17, 3, generator=g, dtype=D)
    R = G.so3_exp(torch.randn(6, 3, generator=g, dtype=D))
    s = torch.rand(6, generator=g, dtype=D) + 0.5
    t = torch.randn(6, 3, generator=g, dtype=D)
    dst = G.apply_similarity(s, R, t, src)
    s2, R2, t2 = G.umeyama(src, dst)
    assert (
        (s2 - s).abs().max() < 1e-9 and (R2 - R).abs().max() < 1e-9 and (t2 - t).abs().max() < 1e-9
    )
    noisy = dst + 0.05 * torch.randn(dst.shape, generator=g, dtype=D)
    _, Ru, _ = G.umeyama(src, noisy, scale=False)
    for k in range(6):
        A = (src[k] - src[k].mean(0)).numpy()
        B = (noisy[k] - noisy[k].mean(0)).numpy()
        Rs, _ = orthogonal_procrustes(A, B)  # A·Rs ≈ B, i.e. Rs = Rᵀ
        assert np.allclose(Ru[k].numpy(), Rs.T, atol=1e-9)
    # a reflected copy is aligned by a proper rotation, never a reflection
    _, Rr, _ = G.umeyama(src, src * torch.tensor([-1.0, 1, 1], dtype=D))
    assert torch.allclose(torch.linalg.det(Rr), torch.ones(6, dtype=D))


def _curve_residual(x, ts, ys):
    a, b, c = x.unbind(-1)
    return a[:, None] * torch.exp(-b[:, None] * ts) + c[:, None] - ys


def test_levenberg_marquardt_matches_scipy_least_squares():
    g = _gen(13)
    ts = torch.linspace(0, 4, 25, dtype=D)
    truth = torch.tensor([[2.0, 1.3, 0.5], [1.0, 0.4, -0.2], [3.0, 2.0, 1.0]], dtype=D)
    ys = truth[:, 0:1] * torch.exp(-truth[:, 1:2] * ts) + truth[:, 2:3]
    ys = ys + 0.02 * torch.randn(ys.shape, generator=g, dtype=D)
    x0 = torch.tensor([[1.0, 1.0, 0.0]] * 3, dtype=D)
    res = lambda x: _curve_residual(x, ts, ys)  # noqa: E731

    def jac(x):
        a, b, _ = x.unbind(-1)
        e = torch.exp(-b[:, None] * ts)
        return torch.stack([e, -a[:, None] * ts * e, torch.ones_like(e)], -1)

    auto = G.levenberg_marquardt(res, x0, iters=60)
    analytic = G.levenberg_marquardt(res, x0, jacobian=jac, iters=60)
    gn = G.levenberg_marquardt(res, x0, jacobian=jac, iters=30, gauss_newton=True)
    for k in range(3):
        ref = least_squares(
            lambda p: _curve_residual(torch.tensor(p)[None], ts, ys[k : k + 1])[0].numpy(),
            x0[k].numpy(),
            method="lm",
            xtol=1e-14,
            ftol=1e-14,
        ).x
        for out in (auto, analytic, gn):
            assert np.allclose(out["x"][k].numpy(), ref, atol=1e-6)
    assert (auto["history"][1:] <= auto["history"][:-1] + 1e-15).all()  # LM never raises the cost
    assert torch.allclose(G.autograd_jacobian(res, x0), jac(x0))
    with pytest.raises(ValueError, match=r"\(B, P\)"):
        G.levenberg_marquardt(res, torch.zeros(3))


def test_box_corners_and_iou_hand_cases():
    box = torch.tensor([1.0, 2.0, 0.5, 4.0, 2.0, 1.0, 0.3], dtype=D)
    c = G.box3d_corners(box)
    assert c.shape == (8, 3) and torch.allclose(c.mean(0), box[:3])
    assert torch.allclose((c[0] - c[1]).norm(), torch.tensor(4.0, dtype=D))  # length edge
    assert torch.allclose((c[1] - c[2]).norm(), torch.tensor(2.0, dtype=D))  # width edge
    assert torch.allclose((c[4] - c[0]).norm(), torch.tensor(1.0, dtype=D))  # height edge
    assert torch.allclose(G.iou_3d(box, box), torch.tensor(1.0, dtype=D))
    a = torch.tensor([0.0, 0, 0, 2, 2, 2, 0], dtype=D)
    b = torch.tensor([1.0, 0, 0, 2, 2, 2, 0], dtype=D)  # half overlap: 1/3
    assert torch.allclose(G.bev_iou(a, b), torch.tensor(1 / 3, dtype=D))
    b2 = torch.tensor([1.0, 0, 1, 2, 2, 2, 0], dtype=D)  # half in x, half in z: 1/7
    assert torch.allclose(G.iou_3d(a, b2), torch.tensor(1 / 7, dtype=D))
    r = torch.tensor([0.0, 0, 0, 2, 2, 2, math.pi / 4], dtype=D)  # square ∩ the same square at 45°
    inter = 8 * (math.sqrt(2) - 1)  # a regular octagon of inradius 1
    assert torch.allclose(G.bev_iou(a, r), torch.tensor(inter / (8 - inter), dtype=D))
    far = torch.tensor([10.0, 0, 0, 2, 2, 2, 0.4], dtype=D)
    assert G.bev_iou(a, far) == 0 and G.iou_3d(a, far) == 0
    with pytest.raises(ValueError, match=r"\(x, y, z, l, w, h, yaw\)"):
        G.iou_3d(torch.zeros(6), torch.zeros(6))


def _random_boxes(n, g):
    """``n`` boxes (x, y, z, l, w, h, yaw) on the floor of a 3 m square, sides in [0.5, 2.5]."""
    return torch.cat([torch.rand(n, 2, generator=g, dtype=D) * 3, torch.zeros(n, 1, dtype=D),
                      torch.rand(n, 3, generator=g, dtype=D) * 2 + 0.5,
                      torch.rand(n, 1, generator=g, dtype=D) * 2 * math.pi], -1)


def test_bev_iou_matches_shapely():
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import Polygon

    g = _gen(14)
    n = 300
    a, b = _random_boxes(n, g), _random_boxes(n, g)
    ours = G.bev_iou(a, b).numpy()
    ca, cb = G.bev_corners(a).numpy(), G.bev_corners(b).numpy()
    ref = np.array(
        [
            Polygon(ca[i]).intersection(Polygon(cb[i])).area
            / Polygon(ca[i]).union(Polygon(cb[i])).area
            for i in range(n)
        ]
    )
    assert (ref > 0).sum() > 50 and np.abs(ours - ref).max() < 1e-9
    assert shapely.__version__
