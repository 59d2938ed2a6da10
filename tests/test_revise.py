"""REVISE (E43): each metric on hand cases, closed forms and independent libraries; the readers
on fixture files written here; the miniature's smoke run."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest, entropy as scipy_entropy
from skimage.feature import hog as skimage_hog

from cvtutor.data.bias_readers import coco_objects, iter_yfcc, read_openimages, YFCC_FIELDS
from cvtutor.data.coco import coco_dataset, read_coco
from cvtutor.data.scenes2d import scenes2d
from cvtutor.data.scenes2d.export import object_table, to_coco_boxes
from cvtutor.metrics.proportions import ratio_interval, wilson_interval
from cvtutor.nn.handcrafted import colour_histogram, hog
from cvtutor.papers import revise as R


def _objects(rows):
    df = pd.DataFrame(rows, columns=["image", "category", "x", "y", "w", "h"])
    df["id"] = np.arange(1, len(df) + 1)
    df["supercategory"] = df["category"]
    return df


# ---------------------------------------------------------------------------------------------
# object-based metrics
# ---------------------------------------------------------------------------------------------
def test_scale_quintiles_have_equal_counts_and_a_full_box_is_one():
    s = np.random.default_rng(0).random(1003)
    bins, edges = R.scale_bins(s)
    counts = np.bincount(bins, minlength=5)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1003
    assert np.all(np.diff(edges) > 0) and np.all(s[bins == 4] >= edges[-1])
    # with ties (equal areas) the bins stay equal
    bins, _ = R.scale_bins(np.repeat([0.1, 0.2], 50))
    assert np.bincount(bins).tolist() == [20] * 5
    coco = read_coco(coco_dataset([{"id": 1, "width": 40, "height": 30}],
                                  [{"id": 1, "name": "a"}],
                                  [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 30]}]))
    assert coco_objects(coco)["area"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fractions"):
        R.scale_bins(np.array([0.1, 2.0, 0.3, 0.4, 0.5]))


def test_cooccurrence_hand_case_symmetric_with_image_counts_on_the_diagonal():
    o = _objects([(1, "person", 0, 0, 1, 1), (1, "cake", 0, 0, 1, 1), (1, "cake", 2, 2, 1, 1),
                  (2, "person", 0, 0, 1, 1), (2, "broccoli", 0, 0, 1, 1),
                  (3, "cake", 0, 0, 1, 1)])
    m = R.cooccurrence(o, ("person", "cake", "broccoli"))
    assert (m.to_numpy() == m.to_numpy().T).all()
    assert np.diag(m.to_numpy()).tolist() == [2, 2, 1]  # images holding each class
    assert m.loc["person", "cake"] == 1
    p = R.p_given(m, "person")
    assert p["cake"] == pytest.approx(0.5) and p["broccoli"] == 1.0 and p["person"] == 1.0
    with pytest.raises(ValueError, match="not a class"):
        R.p_given(m, "dog")


def test_scene_entropy_uniform_is_log_16_and_single_is_zero():
    rng = np.random.default_rng(0)
    rows = [(i, "person", 0, 0, 1, 1) for i in range(160)] + [
        (1000 + i, "glove", 0, 0, 1, 1) for i in range(30)]
    o = _objects(rows)
    o["scene"] = [f"g{i % 16}" for i in range(160)] + ["field"] * 30
    h = R.scene_diversity(o)
    assert h["person"] == pytest.approx(math.log(16)) and h["glove"] == pytest.approx(0.0)
    # a random scene distribution against scipy
    o["scene"] = rng.choice(["a", "b", "c"], len(o), p=[0.6, 0.3, 0.1])
    counts = o[o["category"] == "person"]["scene"].value_counts().to_numpy()
    assert R.scene_diversity(o)["person"] == pytest.approx(scipy_entropy(counts))


def test_object_counts_relative_to_median_and_supercategory():
    o = _objects([(1, "oven", 0, 0, 1, 1)] * 4 + [(1, "toaster", 0, 0, 1, 1)] * 2
                 + [(1, "cat", 0, 0, 1, 1)] * 6)
    o["supercategory"] = o["category"].map({"oven": "appliance", "toaster": "appliance",
                                            "cat": "animal"})
    c = R.object_counts(o).set_index("category")
    assert c.loc["oven", "vs supercategory"] == pytest.approx(4 / 3)
    assert c.loc["toaster", "vs median"] == pytest.approx(2 / 4)


def test_duplicate_detector_is_exact_on_a_fixture():
    o = _objects([(1, "bagel", 10, 10, 20, 20), (1, "doughnut", 10, 10, 20, 20),  # duplicate
                  (1, "bagel", 10.2, 10, 20, 20),   # same name: not a duplicate
                  (1, "orange", 50, 50, 10, 10), (1, "grapefruit", 50.1, 50, 10, 10),  # IoU .99
                  (1, "cup", 0, 0, 10, 10), (1, "mug", 3, 0, 10, 10),  # IoU 0.54: two objects
                  (2, "doughnut", 10, 10, 20, 20)])  # another image
    d = R.duplicate_annotations(o)
    assert set(zip(d["id_a"], d["id_b"])) == {(1, 2), (2, 3), (4, 5)}
    assert R.box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 2, 2]]))[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="iou"):
        R.duplicate_annotations(o, iou=0.0)
    with pytest.raises(ValueError, match="column"):
        R.duplicate_annotations(o.drop(columns="w"))


def test_generated_world_duplicates_are_found_exactly():
    s = scenes2d(200, 64, biases=R.PLANTED, seed=3)
    objects = coco_objects(read_coco(to_coco_boxes(s)))
    d = R.duplicate_annotations(objects)
    planted = objects.dropna(subset=["duplicate_of"])
    assert len(planted) > 10
    assert set(zip(d["id_a"], d["id_b"])) == set(zip(planted["duplicate_of"].astype(int),
                                                     planted["id"]))


def test_appearance_distances_order_on_clustered_features():
    rng = np.random.default_rng(0)
    sup_centre = {"a": 0.0, "b": 10.0}
    cats = [("a1", "a"), ("a2", "a"), ("b1", "b")]
    f, c, s = [], [], []
    for k, (cat, sup) in enumerate(cats):
        centre = np.full(4, sup_centre[sup]) + np.eye(4)[k] * 3
        f.append(centre + rng.normal(0, 0.5, (200, 4)))
        c += [cat] * 200
        s += [sup] * 200
    d = R.appearance_distances(np.concatenate(f), np.array(c), np.array(s), 2000)
    m = d.set_index("pairs")["mean"]
    assert m["same class"] < m["same supercategory"] < m["unrelated"]
    with pytest.raises(ValueError, match="agree"):
        R.appearance_distances(np.zeros((3, 2)), np.array(c[:2]), np.array(s[:2]), 10)


def test_query_ranking_points_to_the_diverse_context():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 0.1, (60, 3)), rng.normal(0, 2.0, (10, 3))])
    ctx = pd.Series(["home"] * 60 + ["snow"] * 10)
    q = R.query_ranking(f, ctx).set_index("context")
    assert q.loc["snow", "diversity gain"] > 0 > q.loc["home", "diversity gain"]
    assert q.loc["home", "commonness"] == pytest.approx(60 / 70)


# ---------------------------------------------------------------------------------------------
# gender-based metrics
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("captions, label", [
    (["A man rides a horse."], 0), (["Two women and a dog."], 1),
    (["A man and a woman."], -1), (["A man.", "Someone with a woman."], -1),
    (["A snowman in a park."], -1), (["A boy with a kite."], 0), (["A street."], -1),
])
def test_caption_gender_rule(captions, label):
    assert R.caption_gender(captions) == label


def test_caption_gender_wants_a_list():
    with pytest.raises(TypeError, match="list"):
        R.caption_gender("a man")


def test_interaction_distance_is_scale_invariant_and_zero_for_concentric_boxes():
    rng = np.random.default_rng(0)
    p = np.column_stack([rng.random((50, 2)) * 50, 1 + rng.random((50, 2)) * 20])
    o = np.column_stack([rng.random((50, 2)) * 50, 1 + rng.random((50, 2)) * 20])
    d = R.interaction_distance(p, o)
    assert np.allclose(R.interaction_distance(3 * p, 3 * o), d)
    # the paper's literal sqrt(area_p area_o) scales as 1 / s
    lit = R.interaction_distance(p, o, exponent=0.5)
    assert np.allclose(R.interaction_distance(3 * p, 3 * o, exponent=0.5), lit / 3)
    conc = R.interaction_distance(np.array([[0, 0, 10, 10]]), np.array([[3, 3, 4, 4]]))
    assert conc[0] == 0.0
    with pytest.raises(ValueError, match="positive"):
        R.interaction_distance(np.array([[0, 0, 0, 1]]), np.array([[0, 0, 1, 1]]))


def test_svm_on_shuffled_or_random_labels_is_at_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 40))
    y = rng.integers(0, 2, 600)
    r = R.appearance_svm(x, y)
    sigma = math.sqrt(0.25 / 600)
    assert abs(r["accuracy"] - 0.5) < 4 * sigma and abs(r["shuffled accuracy"] - 0.5) < 4 * sigma
    assert r["dims"] == int(math.sqrt(600))
    # separable labels: far above the shuffled ones
    y2 = (x[:, 0] + x[:, 1] > 0).astype(int)
    x2 = x.copy()
    x2[:, :2] *= 5
    r2 = R.appearance_svm(x2, y2)
    assert r2["accuracy"] > 0.7 and r2["ratio"] > 1.3
    with pytest.raises(ValueError, match="classes"):
        R.appearance_svm(x, np.zeros(600))


def test_unidentifiable_share_male_hand_case():
    o = pd.DataFrame({"category": ["person"] * 5 + ["tree"], "area": [0.01] * 4 + [0.5, 0.01],
                      "gender": [0, 0, 0, 1, 1, -1], "scene": ["park"] * 6})
    u = R.unidentifiable_labels(o, 0.03).set_index("scene")
    assert u.loc["all", "n"] == 4 and u.loc["all", "share male"] == 0.75
    assert u.loc["park", "male : female"] == 3.0


# ---------------------------------------------------------------------------------------------
# geography, intervals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (47, 196), (1, 3)])
def test_wilson_matches_scipy_and_bounds_the_estimate(k, n):
    lo, hi = wilson_interval(k, n)
    ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    assert lo <= k / n <= hi


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="k <= n"):
        wilson_interval(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 3, confidence=1.5)


def test_ratio_interval_covers_the_true_ratio():
    rng = np.random.default_rng(0)
    cover = 0
    for _ in range(400):
        k1, k2 = rng.binomial(500, 0.3), rng.binomial(800, 0.1)
        _, lo, hi = ratio_interval(k1, 500, k2, 800)
        cover += lo <= 3.0 <= hi
    assert 0.92 < cover / 400 < 0.98
    with pytest.raises(ValueError, match="k1 > 0"):
        ratio_interval(0, 5, 1, 5)


def test_tag_overrepresentation_hand_case():
    o = pd.DataFrame({"region": ["A"] * 10 + ["B"] * 20,
                      "category": ["wildlife"] * 5 + ["x"] * 5 + ["wildlife"] * 2 + ["x"] * 18})
    t = R.tag_overrepresentation(o, "wildlife")
    assert t.loc["A", "r"] == pytest.approx(0.5 / 0.1)
    assert t.loc["A", "lower"] < 5 < t.loc["A", "upper"]


def test_local_language_lower_bound():
    im = pd.DataFrame({"region": ["a"] * 4 + ["b"] * 100,
                       "language": ["visitor"] * 4 + ["visitor"] * 70 + ["local"] * 30})
    lang = R.local_language(im)
    assert lang.loc["a", "non-local"] == 1.0 and lang.loc["a", "lower"] < lang.loc["b", "lower"]


def test_planted_vs_recovered_checks_its_rows():
    df = R.planted_vs_recovered([
        {"metric": "a", "planted": 0.5, "recovered": 0.52, "lower": 0.45, "upper": 0.6},
        {"metric": "b", "planted": 0.9, "recovered": 0.52, "lower": 0.45, "upper": 0.6}])
    assert df["holds"].tolist() == [True, False]
    with pytest.raises(ValueError, match="outside"):
        R.planted_vs_recovered([{"metric": "a", "planted": 0.5, "recovered": 0.7,
                                 "lower": 0.45, "upper": 0.6}])


def test_allowed_misses_against_the_binomial_tail():
    # 10 intervals at 95%: P(>= 2 misses) = 0.086, P(>= 3 misses) = 0.0115
    assert R.allowed_misses(10, 0.95) == 2
    assert R.allowed_misses(100, 0.95) == 9  # P(> 8) = 0.063, P(> 9) = 0.028
    assert R.allowed_misses(1, 0.95) == 1  # one miss has probability 0.05: not rejected


def test_entropy_interval_contains_the_truth_mostly():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.2])
    hits = sum(lo <= scipy_entropy(p) <= hi for lo, hi in
               (R.entropy_interval(rng.multinomial(800, p), seed=i)[1:] for i in range(60)))
    assert hits >= 50


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------
def test_hog_matches_skimage_on_grey_and_colour_images():
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    ours = hog(x)
    for i in range(2):
        ref = skimage_hog(x[i].permute(1, 2, 0).numpy(), orientations=9, pixels_per_cell=(8, 8),
                          cells_per_block=(2, 2), block_norm="L2", channel_axis=-1)
        assert np.allclose(ours[i].numpy(), ref, atol=1e-5)
        ref = skimage_hog(x[i, 0].numpy(), orientations=9, pixels_per_cell=(8, 8),
                          cells_per_block=(2, 2), block_norm="L2")
        assert np.allclose(hog(x[i:i + 1, :1])[0].numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="cells"):
        hog(torch.rand(1, 1, 8, 8))


def test_colour_histogram_against_numpy():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    h = colour_histogram(x, bins=8).reshape(2, 3, 8)
    ref, _ = np.histogram(x[1, 2].numpy(), bins=8, range=(0, 1))
    assert np.allclose(h[1, 2].numpy(), ref / 256)
    assert torch.allclose(h.sum(-1), torch.ones(2, 3))


# ---------------------------------------------------------------------------------------------
# readers on fixture files
# ---------------------------------------------------------------------------------------------
def test_coco_round_trip_of_the_world(tmp_path):
    s = scenes2d(30, 64, seed=1)
    data = to_coco_boxes(s)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    objects = coco_objects(read_coco(path))
    table = object_table(s)
    assert len(objects) == len(table)  # no duplicates planted
    assert np.allclose(np.sort(objects["area"]), np.sort(table["area"]))
    assert (objects["category"].value_counts().sort_index()
            == table["category"].value_counts().sort_index()).all()


def test_openimages_reader(tmp_path):
    boxes = tmp_path / "train-annotations-bbox.csv"
    boxes.write_text("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,"
                     "IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
                     "000a1,xclick,/m/01,1,0.1,0.5,0.2,0.6,0,0,0,0,0\n"
                     "000a1,xclick,/m/02,1,0.1,0.5,0.2,0.6,1,0,0,0,0\n")
    classes = tmp_path / "class-descriptions-boxable.csv"
    classes.write_text("/m/01,Bagel\n/m/02,Doughnut\n")
    o = read_openimages(boxes, classes)
    assert o["category"].tolist() == ["Bagel", "Doughnut"]
    assert o["area"].iloc[0] == pytest.approx(0.4 * 0.4) and o["IsOccluded"].tolist() == [0, 1]
    o["id"] = [1, 2]
    assert len(R.duplicate_annotations(o)) == 1
    classes.write_text("/m/01,Bagel\n")
    with pytest.raises(ValueError, match="not in"):
        read_openimages(boxes, classes)
    boxes.write_text("ImageID,LabelName\nx,/m/01\n")
    with pytest.raises(ValueError, match="XMin"):
        read_openimages(boxes, classes)


def test_yfcc_reader_streams_chunks(tmp_path):
    def line(pid, tags, lon, lat):
        f = [""] * len(YFCC_FIELDS)
        f[0], f[1], f[8], f[10], f[11], f[22] = pid, "u@N00", tags, lon, lat, "0"
        return "\t".join(f)
    path = tmp_path / "yfcc100m_dataset"
    path.write_text("\n".join([line("1", "wildlife,new+york", "172.9", "1.4"),
                               line("2", "", "", ""), line("3", "mosque", "51.4", "35.7")]) + "\n")
    chunks = list(iter_yfcc(path, chunksize=2))
    assert [len(c) for c in chunks] == [2, 1]
    df = pd.concat(chunks)
    assert df["tags"].iloc[0] == ("wildlife", "new york") and df["tags"].iloc[1] == ()
    assert np.isnan(df["longitude"].iloc[1]) and df["latitude"].iloc[2] == pytest.approx(35.7)
    path.write_text("1\t2\t3\n")
    with pytest.raises(ValueError, match="23"):
        list(iter_yfcc(path))
    with pytest.raises(FileNotFoundError):
        list(iter_yfcc(tmp_path / "missing"))


# ---------------------------------------------------------------------------------------------
# the miniature
# ---------------------------------------------------------------------------------------------
def test_planted_values_match_the_generator_closed_forms():
    v = R.planted_values(R.PLANTED, pd.DataFrame(columns=["category", "area", "scene"]))
    assert v["P(woman label | identifiable, indoors)"] == pytest.approx(0.7)
    shares = R.region_shares(R.PLANTED)
    assert shares.sum() == pytest.approx(1) and shares[0] / shares[1] == pytest.approx(math.e)


def test_smoke_run_returns_every_key():
    res = R.run(R.Config.smoke())
    assert {"planted", "unbiased", "seeds", "findings", "crops", "objects", "images"} <= set(res)
    for world in ("planted", "unbiased"):
        assert {"counts", "duplicates", "scale", "cooccurrence", "scene entropy", "context",
                "distance", "unidentifiable", "countries", "language", "tags", "appearance",
                "queries", "gender svm", "region svm", "planted"} <= set(res[world])
    assert len(res["seeds"]) == 2 * len(R.Config.smoke().seeds)
    f = res["findings"]
    assert {"kind", "holds"} <= set(f.columns) and len(f) >= 10
    assert f.loc[f.index.str.startswith("The duplicate detector"), "holds"].all()


def test_render_crops_align_with_the_object_table_and_do_not_depend_on_chunks():
    w = R.make_world(R.Config.smoke().replace(n_images=80), R.PLANTED, 0)
    a, table = R.render_crops(w, 30, chunk=64)
    b, _ = R.render_crops(w, 30, chunk=7)
    assert a.shape == (len(table), 3, 32, 32) and torch.equal(a, b)
    assert (table.groupby("image").size() > 0).all() and table["image"].nunique() == 30
