"""The translation world: one scene, the same layout in every domain; seeded; paired vs unpaired."""
import pytest
import torch

from cvtutor.data import domains as D
from cvtutor.data.domains import faces as F
from cvtutor.data.domains.base import boundary, dilate

WORLDS = [D.Objects, D.Streets, D.Landscapes, D.Faces, D.CritterDomains]


@pytest.mark.parametrize("world", WORLDS)
def test_every_domain_renders_seeded_and_in_range(world):
    w = world(32, "cpu")
    sc = w.scenes(6, seed=3)
    for d in w.domains[:4]:
        a, b = w.render(sc, d), w.render(w.scenes(6, seed=3), d)
        assert a["image"].shape == (6, 3, 32, 32) and a["label"].shape == (6, 32, 32)
        assert 0 <= a["image"].min() and a["image"].max() <= 1
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(w.render(w.scenes(6, 4), w.domains[0])["image"],
                           w.render(sc, w.domains[0])["image"])
    with pytest.raises(ValueError, match="unknown domain"):
        w.render(sc, "nope")


@pytest.mark.parametrize("world", [D.Objects, D.Streets, D.Landscapes])
def test_layout_identical_across_domains(world):
    w = world(32, "cpu")
    sc = w.scenes(8, seed=0)
    labels = [w.render(sc, d)["label"] for d in w.domains]
    assert all(torch.equal(labels[0], x) for x in labels[1:])
    images = [w.render(sc, d)["image"] for d in w.domains]
    assert all(not torch.equal(images[0], x) for x in images[1:])          # the domains differ


def test_sketch_strokes_lie_near_the_photo_silhouette():
    w = D.Objects(48, "cpu", hatch=0.0)
    sc = w.scenes(16, seed=1)
    photo, sketch = w.render(sc, "photo"), w.render(sc, "sketch")
    strokes = sketch["image"][:, 0] < 0.5
    edge = boundary(photo["parts"])
    near = dilate(edge, int(w.warp + w.jitter) + 2)
    assert strokes.sum() > 0
    assert (strokes & ~near).sum() == 0
    # most of the silhouette's outline is drawn (some strokes are dropped on purpose)
    outline = boundary(photo["label"]) & (photo["label"] == 1)
    assert (outline & dilate(strokes, 3)).sum() / outline.sum() > 0.6
    edges = w.render(sc, "edges")["image"][:, 0] < 0.5
    assert torch.equal(edges, edge)


def test_grayscale_is_the_photos_luma():
    w = D.Objects(32, "cpu")
    sc = w.scenes(4, seed=0)
    photo, gray = w.render(sc, "photo")["image"], w.render(sc, "grayscale")["image"]
    want = 0.299 * photo[:, 0] + 0.587 * photo[:, 1] + 0.114 * photo[:, 2]
    torch.testing.assert_close(gray[:, 1], want)


def test_night_keeps_the_layout_and_darkens():
    w = D.Streets(32, "cpu")
    sc = w.scenes(8, seed=0)
    day, night = w.render(sc, "day"), w.render(sc, "night")
    assert night["image"].mean() < 0.6 * day["image"].mean()
    sky = day["label"] == D.streets.SKY
    assert (night["image"][:, 2][sky] > night["image"][:, 0][sky]).float().mean() > 0.9  # blue
    assert set(day["label"].unique().tolist()) <= set(range(len(D.streets.CLASSES)))


def test_faces_identity_age_factors():
    w = D.Faces(32, "cpu", ages_per_identity=4)
    sc = w.scenes(40, seed=0)
    assert torch.equal(sc["identity"], torch.arange(40) // 4)
    same = sc["factors"].view(10, 4, -1)
    assert torch.equal(same, same[:, :1].expand_as(same))                 # identity is fixed
    assert sc["age"].view(10, 4).std(1).min() > 0                         # several ages each
    ages = w.scenes(400, seed=1)["age"]                                    # long-tailed ages
    assert ages.median() < 30 < ages.mean() + 5 and ages.max() > 60 and ages.mean() > ages.median()
    assert 1 <= ages.min() and ages.max() <= 85
    child, old = w.render(sc, "child"), w.render(sc, "old")
    assert (child["label"] != F.BACKGROUND).sum() < (old["label"] != F.BACKGROUND).sum()  # growth
    ages = torch.tensor([10.0, 40.0, 60.0, 80.0])
    assert torch.all(F.greying(ages).diff() >= 0) and F.greying(ages)[0] == 0
    assert torch.all(F.wrinkles(ages).diff() >= 0) and F.wrinkles(ages)[-1] == 1
    with pytest.raises(ValueError, match="ages_per_identity"):
        D.Faces(32, "cpu", ages_per_identity=0)


def test_paired_and_unpaired_sampling():
    w = D.Landscapes(32, "cpu")
    p = D.paired(w, "summer", "winter", 6, seed=0)
    assert torch.equal(p["a"]["label"], p["b"]["label"])
    u = D.unpaired(w, "summer", "winter", 6, seed=0)
    assert not torch.equal(u["a"]["label"], u["b"]["label"])
    assert torch.equal(u["a"]["image"], w.render(w.scenes(6, 0), "summer")["image"])


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="size must be >= 16"):
        D.Objects(8)
    with pytest.raises(ValueError, match="n must be >= 1"):
        D.Streets(32, "cpu").scenes(0)
