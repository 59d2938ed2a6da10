import numpy as np
import pytest
import torch
from scipy import ndimage, optimize

from cvtutor.data import membranes
from cvtutor.papers import topogan as T


LO, HI, THICK = 12, 35, 2


def square_ring(gap: int = 0, size: int = 48) -> np.ndarray:
    """A square ring (rows/cols LO..HI, walls THICK px) with a gap of ``gap`` columns in its top wall."""
    m = np.zeros((size, size), bool)
    m[LO:HI + 1, LO:HI + 1] = True
    m[LO + THICK:HI + 1 - THICK, LO + THICK:HI + 1 - THICK] = False
    if gap:
        c = gap_start(gap)
        m[LO:LO + THICK, c:c + gap] = False
    return m


def gap_start(gap: int) -> int:
    return (LO + HI) // 2 - gap // 2


def gap_point(d, gap: int) -> int:
    """Index of the diagram point whose birth pixel lies in the gap (padded coordinates: +1)."""
    y, x = d.birth_pixels[:, 0] - 1, d.birth_pixels[:, 1] - 1
    inside = (y >= LO) & (y < LO + THICK) & (x >= gap_start(gap)) & (x < gap_start(gap) + gap) & (d.births > 0)
    assert inside.sum() == 1
    return int(np.flatnonzero(inside)[0])


# ----------------------------------------------------------------------------- data
def test_generator_is_seeded_and_hole_counts_are_exact():
    a, ha = membranes.membrane_masks(20, 32, seed=3)
    b, hb = membranes.membrane_masks(20, 32, seed=3)
    assert np.array_equal(a, b) and np.array_equal(ha, hb)
    assert not np.array_equal(a, membranes.membrane_masks(20, 32, seed=4)[0])
    assert ha.min() >= 4 and ha.max() <= 12
    assert np.array_equal(membranes.count_holes(a), ha)
    roads, hr = membranes.membrane_masks(10, 32, seed=0, kind="roads")
    assert np.array_equal(membranes.count_holes(roads), hr)


def test_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        membranes.membrane_masks(2, kind="trees")
    with pytest.raises(ValueError, match="positive int"):
        membranes.membrane_masks(0)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        membranes.count_holes(np.zeros((1, 2, 3, 4)))


def test_texture_is_fixed_and_in_range():
    m, _ = membranes.membrane_masks(3, 32, seed=0)
    a, b = membranes.texture(m, seed=1), membranes.texture(m, seed=1)
    assert a.shape == m.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    assert a[m].mean() < a[~m].mean() - 0.2  # membranes are dark


# ----------------------------------------------------------------------------- persistence
def test_birth_zero_holes_equal_enclosed_components_from_scipy_label():
    rng = np.random.default_rng(0)
    for i in range(15):
        mask = rng.random((20, 24)) < rng.uniform(0.2, 0.6)
        framed = np.pad(mask, 1, constant_values=True)
        _, n_components = ndimage.label(~framed)  # 4-connectivity: holes of the closed-pixel complex
        assert T.persistence_diagram(mask).betti == n_components
    masks, holes = membranes.membrane_masks(10, 32, seed=1)
    assert [d.betti for d in T.diagrams(masks)] == holes.tolist()


def test_frame_padding_turns_a_line_into_two_holes():
    m = np.zeros((16, 16), bool)
    m[:, 7] = True
    assert T.persistence_diagram(m).betti == 2
    assert T.persistence_diagram(m, pad=False).betti == 0


@pytest.mark.parametrize("g", [2, 3, 4, 5, 6])
def test_gapped_ring_has_an_almost_hole_born_at_half_the_gap(g):
    d = T.persistence_diagram(square_ring(g))
    closed = T.persistence_diagram(square_ring(0))
    # ring closed: two holes born at 0 (inside, half-width 10; the band between ring and frame)
    assert closed.betti == 2 and 9.5 <= closed.deaths[closed.births == 0].max() <= 10.5
    assert d.betti == 1  # the gap joins inside and outside
    x = gap_point(d, g)
    assert abs(d.births[x] - g / 2) <= 0.5  # born when the gap closes: half its width (pixel centres)
    assert d.deaths[x] >= 5  # it dies when the (younger) outer band fills
    f, _ = T.distance_transform_filtration(square_ring(g))
    s = d.birth_pixels[x]
    assert f[s[0], s[1]] == d.births[x]  # the critical pixel carries the birth value
    assert np.hypot(*(s - d.nearest[x])) == pytest.approx(d.births[x])


def test_persistence_rejects_grey_and_wrong_shapes():
    with pytest.raises(ValueError, match="threshold"):
        T.persistence_diagram(np.full((4, 4), 0.3))
    with pytest.raises(ValueError, match="2-D"):
        T.persistence_diagram(np.zeros((2, 4, 4), bool))


# ----------------------------------------------------------------------------- Eq. (3)
def test_birth_wasserstein_equal_sizes_is_sort_and_match_and_symmetric():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = rng.integers(1, 8)
        p1 = np.sort(rng.uniform(0, 5, (n, 2)), 1)
        p2 = np.sort(rng.uniform(0, 5, (n, 2)), 1)
        expect = np.abs(np.sort(p1[:, 0]) - np.sort(p2[:, 0])).sum()
        assert T.birth_wasserstein(p1, p2, diagonal=False) == pytest.approx(expect)
        assert T.birth_wasserstein(p1, p2) == pytest.approx(T.birth_wasserstein(p2, p1))
        assert T.birth_wasserstein(p1, p1) == 0


def test_birth_wasserstein_with_diagonal_is_the_optimal_bijection():
    rng = np.random.default_rng(2)
    for _ in range(20):
        p1 = np.sort(rng.uniform(0, 5, (rng.integers(0, 6), 2)), 1)
        p2 = np.sort(rng.uniform(0, 5, (rng.integers(1, 6), 2)), 1)
        a = np.concatenate([p1[:, 0], p2.sum(1) / 2])
        b = np.concatenate([p2[:, 0], p1.sum(1) / 2])
        cost = np.abs(a[:, None] - b[None])
        r, c = optimize.linear_sum_assignment(cost)
        assert T.birth_wasserstein(p1, p2) == pytest.approx(cost[r, c].sum())


def test_birth_wasserstein_hand_cases():
    assert T.birth_wasserstein([[0, 4]], np.zeros((0, 2))) == pytest.approx(2.0)  # alone: (d - b) / 2
    # A = births1 + mids2 = {0, 1, 3}, B = births2 + mids1 = {0, 2, 2}: sorted, |0-0| + |1-2| + |3-2|
    assert T.birth_wasserstein([[0, 4], [1, 3]], [[0, 6]]) == pytest.approx(2.0)
    # A = {0, 1, 3, 1}, B = {0, 0, 2, 2}: 0 + 1 + 1 + 1; both points of dgm1 are matched to births 0
    w, targets = T.birth_wasserstein([[0, 4], [1, 3]], [[0, 6], [0, 2]], return_targets=True)
    assert w == pytest.approx(3.0) and targets.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="same size"):
        T.birth_wasserstein([[0, 1]], [[0, 1], [0, 2]], diagonal=False)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        T.birth_wasserstein(np.zeros((3, 3)), [[0, 1]])


def test_distance_matrix_matches_pairwise_sort_and_match():
    masks, _ = membranes.membrane_masks(8, 32, seed=5)
    dg = T.diagrams(masks)
    mat = T.birth_wasserstein_matrix(dg[:5], dg[3:])
    loop = np.array([[T.birth_wasserstein(a, b) for b in dg[3:]] for a in dg[:5]])
    np.testing.assert_allclose(mat, loop, atol=1e-9)


# ----------------------------------------------------------------------------- Eq. (5), Eq. (4)
def test_transport_plan_equal_sizes_matches_linear_sum_assignment():
    rng = np.random.default_rng(3)
    for n in (3, 6, 10):
        cost = rng.random((n, n))
        plan = T.transport_plan(cost)
        np.testing.assert_allclose(plan.sum(1), 1 / n, atol=1e-9)
        np.testing.assert_allclose(plan.sum(0), 1 / n, atol=1e-9)
        r, c = optimize.linear_sum_assignment(cost)
        assert (plan * cost).sum() == pytest.approx(cost[r, c].sum() / n)
        np.testing.assert_array_equal(plan.argmax(1)[r], c)  # a permutation: h is the assignment


def test_transport_plan_unequal_sizes_and_errors():
    cost = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    plan = T.transport_plan(cost)
    np.testing.assert_allclose(plan.sum(1), 0.5)
    np.testing.assert_allclose(plan.sum(0), 1 / 3)
    assert plan.argmax(1).tolist() == [0, 2]
    with pytest.raises(ValueError, match="n_syn, n_real"):
        T.transport_plan(np.zeros(3))


def test_topological_loss_value_is_eq4():
    masks, _ = membranes.membrane_masks(6, 32, seed=6)
    real = T.diagrams(membranes.membrane_masks(5, 32, seed=7)[0])
    x = torch.tensor(masks, dtype=torch.float64, requires_grad=True)
    loss = T.topological_loss(x, real)
    h, cost, _ = T.match_diagram_sets(T.diagrams(masks), real)
    assert loss.item() == pytest.approx(cost[np.arange(6), h].sum())
    loss.backward()
    assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()
    with pytest.raises(TypeError, match="torch tensor"):
        T.topological_loss(masks, real)
    with pytest.raises(ValueError, match="reduction"):
        T.topological_loss_numpy(masks.astype(float), real, reduction="max")


@pytest.mark.parametrize("g,steps", [(3, 1), (4, 2)])
def test_one_gradient_step_on_a_gapped_ring_lowers_the_almost_hole_birth(g, steps):
    """One step shortens the gap by a pixel: on an odd gap that lowers the birth (ceil(g/2)) at once,
    on an even gap after two steps."""
    target = [T.persistence_diagram(square_ring(0))]  # the closed ring
    before = T.persistence_diagram(square_ring(g))
    b0 = before.births[gap_point(before, g)]
    x = torch.tensor(square_ring(g)[None].astype(float))
    for _ in range(steps):
        x.requires_grad_(True)
        loss = T.topological_loss(x, target)
        (grad,) = torch.autograd.grad(loss, x)
        assert (grad < 0).sum() > 0  # the loss decreases when pixels near the gap brighten
        x = torch.clamp(x - 0.6 * grad, 0, 1).detach()
    after = T.persistence_diagram(x[0].numpy() > 0.5)
    gap_births = after.births[(after.births > 0) & (after.births < b0)]
    assert gap_births.size == 1 or after.betti == 2  # lowered, or already closed
    assert T.birth_wasserstein(after, target[0]) < T.birth_wasserstein(before, target[0])


def test_gap_closing_recovers_betti_numbers():
    masks, holes = membranes.membrane_masks(8, 32, seed=0)
    cut = membranes.cut_gaps(masks, n_gaps=1, width=2, seed=0)
    assert (membranes.count_holes(cut) < holes).all()
    out = T.gap_closing(cut, T.diagrams(masks), steps=6, lr=0.6)
    final = membranes.count_holes(out["frames"][-1] > 0.5)
    assert (final == holes).mean() >= 0.75
    assert out["history"]["L_topo"].iloc[-1] < out["history"]["L_topo"].iloc[0]


# ----------------------------------------------------------------------------- metrics
def test_chi2_and_betti_score_hand_cases():
    assert T.chi2_distance([0.5, 0.5], [0.5, 0.5]) == 0
    assert T.chi2_distance([1.0, 0.0], [0.5, 0.5]) == pytest.approx(0.25 / 1.5 + 0.25 / 0.5)
    assert T.chi2_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(2.0)  # the maximum
    assert T.betti_score([1, 1, 2, 2], [2, 1, 2, 1]) == 0
    assert T.betti_score([0, 0], [1, 1]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same shape"):
        T.chi2_distance([1.0], [0.5, 0.5])


def test_unbiased_mmd_hand_case_and_kernel():
    x = [np.array([[b, b + 2.0]]) for b in (0.0, 1.0, 3.0)]  # one-point diagrams
    y = [np.array([[b, b + 2.0]]) for b in (0.0, 2.0, 2.0)]
    k = lambda u, v: np.exp(-T.birth_wasserstein(u, v) / 2.0)  # noqa: E731
    kxx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / 6
    kyy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / 6
    kxy = sum(k(a, b) for a in x for b in y) / 9
    assert T.diagram_mmd(x, y, sigma2=2.0) == pytest.approx(kxx + kyy - 2 * kxy)
    # one-point diagrams (0, 2), (1, 3): A = {0, 2}, B = {1, 1}: the projections are matched too
    assert T.birth_wasserstein(x[0], x[1]) == pytest.approx(2.0)
    # two samples of one distribution: MMD^2 near 0 (unbiased: it may be negative)
    masks, _ = membranes.membrane_masks(60, 32, seed=8)
    dg = T.diagrams(masks)
    assert abs(T.diagram_mmd(dg[:30], dg[30:], 4.0)) < 0.05
    with pytest.raises(ValueError, match="sigma2"):
        T.diagram_kernel(x, y, 0.0)
    with pytest.raises(ValueError, match="m, n >= 2"):
        T.unbiased_mmd2(np.ones((1, 1)), np.ones((2, 2)), np.ones((1, 2)))


# ----------------------------------------------------------------------------- models
def test_gan_shapes():
    for size in (32, 64):
        g, d = T.DCGANGenerator(16, size, 8), T.DCGANCritic(size, 8)
        x = g(torch.randn(4, 16))
        assert x.shape == (4, 1, size, size) and 0 <= x.min() and x.max() <= 1
        assert d(x).shape == (4,)
    with pytest.raises(ValueError, match="size"):
        T.DCGANGenerator(16, 48)


def test_training_steps_run_and_topo_loss_reaches_generator():
    cfg = T.Config.fast().replace(n_real=64, steps=4, batch_size=8, n_critic=1, topo_start=0.0,
                                  topo_batch=8, n_real_ot=8, width=8)
    real = T.real_data(cfg)
    g, hist = T.train_gan(cfg, real, topo=True, seed=0, progress=False)
    assert len(hist) == 4 and "L_topo" in hist and np.isfinite(hist["L_topo"]).all()
    assert T.sample_masks(g, 3).shape == (3, 1, 32, 32)


def test_dice_hand_cases():
    a = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    b = torch.tensor([[1, 0, 0, 0]], dtype=torch.bool)
    assert T.dice(a, b) == pytest.approx(2 * 1 / 3)
    assert T.dice(a, a) == 1.0 and T.dice(a, ~a) == 0.0
    assert T.dice(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) == 1.0


def test_table2_runs_at_toy_size_and_reports_every_training_set():
    """Table 2 only runs in the full profile; this runs its code path at toy size on the CPU."""
    cfg = T.Config.fast().replace(seg_real=16, seg_syn=16, seg_steps=3)
    gens = {"TopoGAN": T.DCGANGenerator(cfg.z_dim, cfg.size, 8)}
    df = T.table2(cfg, gens, seed=0)
    assert df["training data"].tolist() == ["Real data", "TopoGAN", "TopoGAN+real data"]
    assert df["Dice"].between(0, 1).all()


# ----------------------------------------------------------------------------- real-format loaders
def _write_tiff_stack(path, pages):
    from PIL import Image

    ims = [Image.fromarray(p) for p in pages]
    ims[0].save(path, save_all=True, append_images=ims[1:])


def test_isbi2012_loader_reads_multipage_tiffs(tmp_path):
    from cvtutor.data import em_volumes

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (3, 16, 20), dtype=np.uint8)
    masks, _ = membranes.membrane_masks(3, 16, seed=0)
    labels = np.where(np.pad(masks, ((0, 0), (0, 0), (0, 4))), 0, 255).astype(np.uint8)
    _write_tiff_stack(tmp_path / "train-volume.tif", raw)
    _write_tiff_stack(tmp_path / "train-labels.tif", labels)
    img, mem = em_volumes.load_isbi2012(tmp_path)
    assert img.shape == (3, 16, 20) and img.dtype == np.float32
    assert np.allclose(img, raw / 255.0)
    assert np.array_equal(mem, labels == 0) and np.array_equal(mem[:, :, :16], masks)
    assert em_volumes.patches(mem, 8).shape == (3 * 2 * 2, 8, 8)


def test_isbi2012_loader_errors_name_the_layout(tmp_path):
    from cvtutor.data import em_volumes

    with pytest.raises(FileNotFoundError, match="train-volume.tif"):
        em_volumes.load_isbi2012(tmp_path)
    _write_tiff_stack(tmp_path / "train-volume.tif", np.zeros((2, 8, 8), np.uint8))
    _write_tiff_stack(tmp_path / "train-labels.tif", np.full((2, 8, 8), 7, np.uint8))
    with pytest.raises(ValueError, match="0 \\(membrane\\) or 255"):
        em_volumes.load_isbi2012(tmp_path)


def test_cremi_boundaries_and_loader(tmp_path):
    from cvtutor.data import em_volumes

    ids = np.zeros((1, 6, 6), np.uint64)
    ids[0, :, 3:] = 5                       # two neurons side by side: a one-pixel wall at column 2
    assert np.array_equal(np.flatnonzero(em_volumes.boundaries(ids)[0].any(0)), [2])
    with pytest.raises(FileNotFoundError, match="volumes/raw"):
        em_volumes.load_cremi(tmp_path / "sample_A.hdf")
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "sample_A.hdf"
    with h5py.File(path, "w") as f:
        f["volumes/raw"] = np.full((1, 6, 6), 255, np.uint8)
        f["volumes/labels/neuron_ids"] = ids
    img, mem = em_volumes.load_cremi(path)
    assert np.allclose(img, 1.0) and np.array_equal(mem, em_volumes.boundaries(ids))


def test_smoke_runs_every_table_of_full():
    import time

    t = time.time()
    out = T.run(T.Config.smoke())
    assert time.time() - t < 60
    keys = {"gap_closing", "table1", "history", "table1_fid", "table1_mmd", "table1_betti", "table2",
            "table2_compare"}
    assert keys <= set(out) and T.Config.full().table2 and T.Config.smoke().table2
    assert len(T.Config.smoke().seeds) >= 2 and set(out["table1"].seed) == set(T.Config.smoke().seeds)
    assert "L_topo" in out["history"] and out["history"].L_topo.notna().any()
    assert "WGAN-SN" not in T.PAPER["betti"].values


def test_gap_demo_fits_other_masks_diagrams():
    cfg = T.Config.smoke()
    real = T.real_data(cfg)
    ref = T.gap_reference(cfg, real)
    own = real["diagrams"][: cfg.gap_masks]
    assert all(r is not o for r in ref for o in own) and len(ref) == cfg.gap_ref
