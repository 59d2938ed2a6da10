"""REVISE: a tool for measuring and mitigating bias in visual data sets.

Wang, Narayanan, Russakovsky. *REVISE: A Tool for Measuring and Mitigating Bias in Visual
Datasets*. ECCV 2020. The tool trains no model: it reads a data set's annotations (and features
of its images) and reports metrics along three axes. Each metric here takes an object table
(:mod:`cvtutor.data.bias_readers`: one row per annotated object) and returns data.

Object-based (Sect. 4)
    counts per class and within the super-category (Fig. 2); duplicate annotations; relative
    scale s = area(b) / (W H) and its dataset quintiles, bin(s) = floor(5 F(s)); co-occurrence
    P(a | c) = #{images with a and c} / #{images with c}; scene diversity
    H(c) = -sum_g p(g | c) log p(g | c); appearance distances; "XX and YY" queries (Fig. 3).
Gender-based (Sect. 5)
    the caption rule of Zhao et al. [69]; contextual representation; interaction distance
    d(p, o) = |c_p - c_o| / (area_p area_o)^(1/4) (our dimensionless reading of the paper's
    "distance between centres to sqrt(area_p * area_o)"); appearance differences: a linear SVM
    on features randomly projected to sqrt(n) dimensions, accuracy on true vs shuffled labels;
    gender labels of unidentifiable (small) people.
Geography-based (Sect. 6)
    counts per region; the Wilson lower bound of the non-local (visitor) fraction; tag
    over-representation r(t, c) = f_c(t) / f_not c(t); a per-region SVM.

On the 2-D scene world (:mod:`cvtutor.data.scenes2d`) every metric has a *planted* value, set by
one knob of :class:`~cvtutor.data.scenes2d.Biases`; the chapter's test of the tool is that it
recovers the planted value within its confidence interval (:func:`planted_vs_recovered`).
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import binom, chi2_contingency, mannwhitneyu
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.random_projection import GaussianRandomProjection
from sklearn.svm import LinearSVC
from torchvision.ops import roi_align

from cvtutor import report
from cvtutor.data.bias_readers import coco_objects
from cvtutor.data.coco import read_coco, write_coco
from cvtutor.data.scenes2d import Biases, Scenes2D, scenes2d
from cvtutor.data.scenes2d import catalog as K
from cvtutor.data.scenes2d.export import object_table, to_coco_boxes
from cvtutor.metrics.information import entropy
from cvtutor.metrics.proportions import ratio_interval, wilson_interval
from cvtutor.nn.handcrafted import appearance_features
from cvtutor.runtime import ProfileConfig

# ---------------------------------------------------------------------------------------------
# the paper's numbers: context only (COCO, OpenImages, YFCC100m), never compared with ours
# ---------------------------------------------------------------------------------------------
PAPER = {
    "scale_xl": {"ref": "Sect. 4.1", "what": "share of the class in the top area quintile (%)",
                 "airplane (COCO)": 77.0, "pizza (COCO)": 73.0, "uniform": 20.0,
                 "xl_threshold (% of image)": 9.3},
    "person_given": {"ref": "Sect. 4.1", "what": "P(person | class) in COCO (%)",
                     "food": 43.0, "broccoli": 15.0, "carrot": 21.0, "orange": 29.0,
                     "cake": 55.0, "donut": 55.0, "hot dog": 56.0},
    "appearance_distance": {"ref": "Sect. 4.1", "what": "mean +- std feature distance, COCO, "
                            "n = 500,000 pairs", "same class": (5.91, 1.44),
                            "same supercategory": (6.24, 1.42), "unrelated": (6.48, 1.44)},
    "scene_classifier": {"ref": "Sect. 4.1, footnote 1", "what": "Places365 accuracy (%)",
                         "top-1": 55.19, "top-5": 85.07},
    "unidentifiable_male": {"ref": "Sect. 5.1", "what": "share labelled male among people "
                            "unlikely to be identifiable (%)", "COCO": 77.0, "OpenImages": 69.0},
    "male_female_by_scene": {"ref": "Sect. 5.1", "what": "male : female label ratio of "
                             "unidentifiable people (COCO)", "outdoor sports fields, parks": 2.9,
                             "indoor transportation": 4.2, "outdoor transportation": 4.5,
                             "shopping and dining": 1.2},
    "visitor_countries": {"ref": "Sect. 1 and 6.1", "what": "share of YFCC100m's 196 countries "
                          "predominantly photographed by visitors (%)", "YFCC100m": 47.0},
    "tag_ratio": {"ref": "Sect. 6.1", "what": "tag over-representation r(t, c) in YFCC100m",
                  "Kiribati wildlife": 86.0, "North Korea men": 76.0, "Iran mosque": 30.0,
                  "Egypt politics": 20.0, "United States safari": 0.92},
}

# the knobs of the chapter's world: one planted bias per REVISE metric
PLANTED = Biases(
    count_skew=0.05,
    duplicate_rate=0.3,
    scale_shift=0.8,
    scale_class="house",
    cooccurrence=0.6,
    pair=("person", "lamp"),
    scene_confinement=0.95,
    confined_class="snowman",
    appearance_collapse=0.9,
    collapse_class="tree",
    gender_context=0.4,
    gender_distance=0.8,
    gender_appearance=0.9,
    gender_inference=0.8,
    small_area=0.03,
    region_skew=1.0,
    visitor_rate=0.8,
    tag_boost=4.0,
    tag_class="tree",
)
# the same world with every knob at 0 but the class choices kept: the control
UNBIASED = Biases(scale_class="house", pair=("person", "lamp"), confined_class="snowman",
                  collapse_class="tree", small_area=0.03, tag_class="tree")


@dataclass(frozen=True)
class Config(ProfileConfig):
    """``n_images`` scenes of ``size`` px per world (annotations only: the metrics that read
    boxes, captions and image records); ``n_render`` of them rendered for the appearance
    features (32 x 32 crops, HOG + colour); ``seeds`` the worlds drawn; ``n_pairs`` the pairs of
    the appearance-distance check; ``confidence`` of every interval."""

    n_images: int = 3000
    size: int = 64
    n_render: int = 300
    crop: int = 32
    n_pairs: int = 20_000
    seeds: tuple[int, ...] = (0,)
    confidence: float = 0.95
    min_area: float = 0.03
    svm_folds: int = 3
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(n_images=30_000, n_render=4000, n_pairs=200_000, seeds=(0, 1, 2))

    @classmethod
    def smoke(cls) -> "Config":
        return cls.full().replace(n_images=400, n_render=60, n_pairs=2000, seeds=(0, 1))


def _device(config: Config) -> torch.device:
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _need(objects: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in objects.columns]
    if missing:
        raise ValueError(f"{what} needs an object table with the column(s) {missing}; "
                         f"got {list(objects.columns)}")


# ---------------------------------------------------------------------------------------------
# object-based metrics (Sect. 4.1)
# ---------------------------------------------------------------------------------------------
def object_counts(objects: pd.DataFrame) -> pd.DataFrame:
    """Object counts (Sect. 4.1, Fig. 2): per class its ``count``, its ``supercategory``, the
    count over the global median (``vs median``) and over the mean of its super-category
    (``vs supercategory``)."""
    _need(objects, ("category", "supercategory"), "object_counts")
    df = objects.groupby(["category", "supercategory"]).size().rename("count").reset_index()
    df["vs median"] = df["count"] / df["count"].median()
    df["vs supercategory"] = df["count"] / df.groupby("supercategory")["count"].transform("mean")
    return df.sort_values("count", ascending=False).reset_index(drop=True)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of boxes ``[x, y, w, h]`` a (N, 4) and b (N, 4): (N,)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"box_iou takes two (N, 4) [x, y, w, h] arrays, got {a.shape}, {b.shape}")
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
    inter = np.clip(hi - lo, 0, None).prod(1)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def duplicate_annotations(objects: pd.DataFrame, iou: float = 0.95) -> pd.DataFrame:
    """Duplicate annotations (Sect. 4.1): pairs of annotations in one image whose boxes overlap
    with IoU >= ``iou`` under *different* class names. The paper does not state its criterion;
    this is ours. Columns ``image``, ``id_a``, ``id_b``, ``category_a``, ``category_b``, ``iou``
    (``id_a < id_b``)."""
    _need(objects, ("id", "image", "category", "x", "y", "w", "h"), "duplicate_annotations")
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    o = objects[["id", "image", "category", "x", "y", "w", "h"]]
    pairs = o.merge(o, on="image", suffixes=("_a", "_b"))
    pairs = pairs[(pairs["id_a"] < pairs["id_b"]) & (pairs["category_a"] != pairs["category_b"])]
    value = box_iou(pairs[["x_a", "y_a", "w_a", "h_a"]].to_numpy(),
                    pairs[["x_b", "y_b", "w_b", "h_b"]].to_numpy())
    out = pairs.assign(iou=value)[value >= iou]
    return out[["image", "id_a", "id_b", "category_a", "category_b", "iou"]].reset_index(drop=True)


def scale_bins(area: np.ndarray, n_bins: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Object scale (Sect. 4.1): ``bin(s_i) = floor(n_bins F(s_i))`` with F the empirical CDF of
    the relative areas over the whole data set, read as ``F(s_i) = (rank_i - 1) / N`` (ties by
    order), so the bins hold N / n_bins objects each (+-1). Returns the bins (N,) and the
    ``n_bins - 1`` inner edges (the smallest area of each bin above the first)."""
    s = np.asarray(area, dtype=float)
    if s.ndim != 1 or len(s) < n_bins:
        raise ValueError(f"area must be (N,) with N >= n_bins = {n_bins}, got shape {s.shape}")
    if n_bins < 1 or np.any(s < 0) or np.any(s > 1 + 1e-9):
        raise ValueError("areas are fractions of the image in [0, 1] and n_bins >= 1")
    order = np.argsort(s, kind="stable")
    rank = np.empty(len(s), dtype=np.int64)
    rank[order] = np.arange(len(s))
    bins = np.floor(n_bins * rank / len(s)).astype(int)
    edges = np.array([s[bins == k].min() for k in range(1, n_bins)])
    return bins, edges


def scale_table(objects: pd.DataFrame, n_bins: int = 5) -> pd.DataFrame:
    """Per class: its share of instances in each area quintile (``bin 0`` extra small ...
    ``bin 4`` extra large) and its instance count."""
    _need(objects, ("category", "area"), "scale_table")
    bins, _ = scale_bins(objects["area"].to_numpy(), n_bins)
    df = pd.crosstab(objects["category"], bins, normalize="index")
    df.columns = [f"bin {k}" for k in df.columns]
    df["count"] = objects["category"].value_counts()
    return df.sort_values(f"bin {n_bins - 1}", ascending=False)


def image_class_matrix(objects: pd.DataFrame, classes: tuple[str, ...] | None = None):
    """(images, classes, X): X (I, C) bool, ``X[i, c]``: image i holds an instance of class c."""
    _need(objects, ("image", "category"), "image_class_matrix")
    classes = tuple(classes or sorted(objects["category"].unique()))
    images, row = np.unique(objects["image"].to_numpy(), return_inverse=True)
    col = pd.Categorical(objects["category"], categories=classes).codes
    keep = col >= 0
    x = np.zeros((len(images), len(classes)), dtype=bool)
    x[row[keep], col[keep]] = True
    return images, classes, x


def cooccurrence(objects: pd.DataFrame, classes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Object co-occurrence (Sect. 4.1): M = X^T X, ``M[a, b]`` = #images holding both a and b
    (symmetric; the diagonal is each class's image count)."""
    _, classes, x = image_class_matrix(objects, classes)
    xi = x.astype(np.int64)
    return pd.DataFrame(xi.T @ xi, index=list(classes), columns=list(classes))


def p_given(m: pd.DataFrame, target: str) -> pd.Series:
    """``P(target | c) = M[c, target] / M[c, c]`` for every class c (the paper's P(person | c))."""
    if target not in m.columns:
        raise ValueError(f"target {target!r} is not a class of the co-occurrence matrix")
    diag = pd.Series(np.diag(m.to_numpy()), index=m.index)
    return (m[target] / diag.where(diag > 0)).rename(f"P({target} | class)")


def scene_diversity(objects: pd.DataFrame, scene: str = "scene") -> pd.Series:
    """Scene diversity (Sect. 4.1): per class ``H(c) = -sum_g p(g | c) log p(g | c)`` (nats) of
    the scene groups of its *images* (an image counts once per class), by
    :func:`cvtutor.metrics.information.entropy`."""
    _need(objects, ("image", "category", scene), "scene_diversity")
    per_image = objects.drop_duplicates(["image", "category"])
    counts = pd.crosstab(per_image["category"], per_image[scene])
    return counts.apply(lambda r: entropy(r.to_numpy() / r.sum()), axis=1).rename("H (nats)")


def appearance_distances(features: np.ndarray, category: np.ndarray, supercategory: np.ndarray,
                         n_pairs: int, seed: int = 0) -> pd.DataFrame:
    """Appearance diversity check (Sect. 4.1): the mean and std of the Euclidean distance between
    random pairs of instances of the same class, of different classes of one super-category,
    and of unrelated classes (different super-categories). Pairs are drawn uniformly among the
    pairs of each kind (rejection from ``20 n_pairs`` uniform draws)."""
    f = np.asarray(features, dtype=float)
    cat, sup = np.asarray(category), np.asarray(supercategory)
    if f.ndim != 2 or len(f) != len(cat) or len(cat) != len(sup):
        raise ValueError(f"features (N, D), category (N,), supercategory (N,) must agree, got "
                         f"{f.shape}, {cat.shape}, {sup.shape}")
    cat, sup = np.unique(cat, return_inverse=True)[1], np.unique(sup, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(f), (2, 20 * n_pairs))
    keep = i != j
    i, j = i[keep], j[keep]
    kind = np.where(cat[i] == cat[j], 0, np.where(sup[i] == sup[j], 1, 2))
    rows = []
    for code, k in enumerate(("same class", "same supercategory", "unrelated")):
        sel = np.flatnonzero(kind == code)[:n_pairs]
        d = np.linalg.norm(f[i[sel]] - f[j[sel]], axis=1)
        rows.append({"pairs": k, "n": len(sel), "mean": d.mean() if len(d) else np.nan,
                     "std": d.std(ddof=1) if len(d) > 1 else np.nan})
    return pd.DataFrame(rows)


def mean_pairwise_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between the rows of a (N, D) and b (M, D)."""
    return float(torch.cdist(torch.as_tensor(a, dtype=torch.float64),
                             torch.as_tensor(b, dtype=torch.float64)).mean())


def query_ranking(features: np.ndarray, contexts: pd.Series, min_count: int = 3) -> pd.DataFrame:
    """"XX and YY" queries (Sect. 4.2, Fig. 3) for one target class: per context YY (a scene
    type, or a class seen in the same image), its ``commonness`` (share of the class's instances
    in that context: how easy the query is) and its ``diversity gain`` (mean distance from its
    instances to all the class's instances, minus the class's own mean pairwise distance: how
    much the context spreads the class's appearance). ``score`` = gain x commonness ranks the
    queries (our reading: Appendix C, which defines the ranking, is not in the paper).
    ``contexts`` is indexed like ``features``' rows and may repeat a row under several contexts
    (a Series of context names whose index is the row number)."""
    f = np.asarray(features, dtype=float)
    base = mean_pairwise_distance(f, f)
    rows = []
    for ctx, idx in contexts.groupby(contexts).groups.items():
        members = np.unique(np.asarray(idx))
        if len(members) < min_count:
            continue
        rows.append({"context": ctx, "n": len(members), "commonness": len(members) / len(f),
                     "diversity gain": mean_pairwise_distance(f[members], f) - base})
    df = pd.DataFrame(rows)
    df["score"] = df["diversity gain"] * df["commonness"]
    return df.sort_values("score", ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# gender-based metrics (Sect. 5.1)
# ---------------------------------------------------------------------------------------------
MALE_WORDS = frozenset({"man", "men", "boy", "boys", "male", "gentleman", "gentlemen"})
FEMALE_WORDS = frozenset({"woman", "women", "girl", "girls", "female", "lady", "ladies"})


def caption_gender(captions: list[str] | tuple[str, ...]) -> int:
    """The image-level gender label of Zhao et al. [69] from an image's captions: 0 (male) if some
    caption names a male word (``man``, ``boy``...) and none a female one, 1 (female) vice versa,
    -1 (unlabelled) if both or neither. Words are whole tokens: "snowman" is not "man"."""
    if isinstance(captions, str):
        raise TypeError("caption_gender takes the list of an image's captions, not one string")
    words = {w for c in captions for w in re.findall(r"[a-z]+", c.lower())}
    male, female = bool(words & MALE_WORDS), bool(words & FEMALE_WORDS)
    return 0 if male and not female else 1 if female and not male else -1


def interaction_distance(person: np.ndarray, obj: np.ndarray, exponent: float = 0.25) -> np.ndarray:
    """Interaction distance (Sect. 5.1) of boxes ``[x, y, w, h]`` person (N, 4) and obj (N, 4):
    ``|c_p - c_o| / (area_p area_o)^exponent``. The paper writes "distance between p and o centers
    to sqrt(area_p * area_o)", i.e. ``exponent = 1/2``, whose value scales as 1 / s when the image
    is scaled by s; ``exponent = 1/4`` (the default, our reading) divides a length by a length
    and is invariant to the image's resolution, as a proxy for a 3-D distance must be."""
    p, o = np.asarray(person, float), np.asarray(obj, float)
    if p.shape != o.shape or p.ndim != 2 or p.shape[1] != 4:
        raise ValueError(f"person and obj must be (N, 4) [x, y, w, h], got {p.shape}, {o.shape}")
    if np.any(p[:, 2:] <= 0) or np.any(o[:, 2:] <= 0):
        raise ValueError("boxes must have positive width and height")
    centre = np.linalg.norm((p[:, :2] + p[:, 2:] / 2) - (o[:, :2] + o[:, 2:] / 2), axis=1)
    return centre / (p[:, 2] * p[:, 3] * o[:, 2] * o[:, 3]) ** exponent


def person_object_pairs(objects: pd.DataFrame, target: str, gender: str = "gender") -> pd.DataFrame:
    """Every (labelled person, ``target`` instance) pair in one image, with the person's
    ``gender`` label and their interaction distance ``d``."""
    _need(objects, ("image", "category", "x", "y", "w", "h", gender), "person_object_pairs")
    box = ["x", "y", "w", "h"]
    people = objects.loc[(objects["category"] == "person") & (objects[gender] >= 0),
                         ["image", gender] + box]
    objs = objects.loc[objects["category"] == target, ["image"] + box]
    pairs = people.merge(objs, on="image", suffixes=("_p", "_o"))
    pairs["d"] = interaction_distance(pairs[[b + "_p" for b in box]].to_numpy(),
                                      pairs[[b + "_o" for b in box]].to_numpy())
    return pairs


def distance_vs_frequency(objects: pd.DataFrame, image_gender: pd.Series, target: str) -> dict:
    """Instance counts and distances (Sect. 5.1, the organ example): a chi-square test of
    "``target`` in the image" against the image's gender label (frequency), and a Mann-Whitney
    test of the person-``target`` distances of male vs female people (relation)."""
    has = objects.loc[objects["category"] == target, "image"].unique()
    labelled = image_gender[image_gender >= 0]
    table = pd.crosstab(labelled, labelled.index.isin(has))
    freq = chi2_contingency(table.to_numpy())
    pairs = person_object_pairs(objects, target)
    d_m, d_f = pairs.loc[pairs["gender"] == 0, "d"], pairs.loc[pairs["gender"] == 1, "d"]
    mw = mannwhitneyu(d_m, d_f, alternative="two-sided")
    share = table.div(table.sum(axis=1), axis=0).get(True, pd.Series(0.0, table.index))
    return {"P(target | male image)": float(share.get(0, np.nan)),
            "P(target | female image)": float(share.get(1, np.nan)),
            "frequency p-value": float(freq.pvalue),
            "median d, male": float(d_m.median()), "median d, female": float(d_f.median()),
            "distance p-value": float(mw.pvalue), "pairs": len(pairs)}


def appearance_svm(features: np.ndarray, labels: np.ndarray, folds: int = 3,
                   seed: int = 0) -> dict:
    """Appearance differences (Sect. 5.1): a linear SVM separating ``labels`` on ``features``
    randomly projected to sqrt(n) dimensions (n samples), its ``folds``-fold cross-validated
    accuracy on the true labels, on shuffled labels, and their ratio (the paper reports both
    to show the separation is not over-fitting). Our choices: the accuracy is held out and
    *balanced* (the mean recall of the classes, chance = 1 / classes whatever the imbalance),
    so that a skewed label mix does not move the ratio."""
    f, y = np.asarray(features, dtype=float), np.asarray(labels)
    if f.ndim != 2 or len(f) != len(y):
        raise ValueError(f"features (N, D) and labels (N,) must agree, got {f.shape}, {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < folds:
        raise ValueError(f"need >= 2 classes with >= {folds} samples each, got counts "
                         f"{dict(zip(classes.tolist(), counts.tolist()))}")
    dim = max(1, int(math.sqrt(len(f))))
    model = make_pipeline(GaussianRandomProjection(dim, random_state=seed), StandardScaler(),
                          LinearSVC(C=0.1, max_iter=5000, random_state=seed))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    acc = float(cross_val_score(model, f, y, cv=cv, scoring="balanced_accuracy").mean())
    shuffled = np.random.default_rng(seed).permutation(y)
    acc_s = float(cross_val_score(model, f, shuffled, cv=cv, scoring="balanced_accuracy").mean())
    majority = float(counts.max() / counts.sum())
    return {"n": len(f), "dims": dim, "accuracy": acc, "shuffled accuracy": acc_s,
            "ratio": acc / acc_s, "majority rate": majority}


def unidentifiable_labels(objects: pd.DataFrame, min_area: float,
                          confidence: float = 0.95) -> pd.DataFrame:
    """Gender label inference (Sect. 5.1): among people smaller than ``min_area`` of the image
    (the paper: < 1000 pixels, or no face found), the share labelled male with its Wilson
    interval and the male : female label ratio, overall and per scene."""
    _need(objects, ("category", "area", "gender", "scene"), "unidentifiable_labels")
    small = objects[(objects["category"] == "person") & (objects["area"] < min_area)
                    & (objects["gender"] >= 0)]
    rows = []
    for name, g in [("all", small)] + list(small.groupby("scene")):
        k, n = int((g["gender"] == 0).sum()), len(g)
        lo, hi = wilson_interval(k, n, confidence) if n else (np.nan, np.nan)
        rows.append({"scene": name, "n": n, "share male": k / n if n else np.nan,
                     "lower": float(lo), "upper": float(hi),
                     "male : female": k / max(n - k, 1)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# geography-based metrics (Sect. 6.1)
# ---------------------------------------------------------------------------------------------
def country_distribution(images: pd.DataFrame, confidence: float = 0.95,
                         population: pd.Series | None = None) -> pd.DataFrame:
    """Country distribution (Sect. 6.1, Fig. 6 left): images per region, their share with its
    Wilson interval and, given ``population`` per region, images per person."""
    _need(images, ("region",), "country_distribution")
    counts = images["region"].value_counts().rename("images")
    lo, hi = wilson_interval(counts.to_numpy(), len(images), confidence)
    df = pd.DataFrame({"images": counts, "share": counts / len(images), "lower": lo, "upper": hi})
    if population is not None:
        df["per capita"] = df["images"] / population.reindex(df.index)
    return df


def local_language(images: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Local language analysis (Sect. 6.1, Fig. 6 right): per region the share of images whose
    tags are not in a local language (here the caption's author: ``language == "visitor"``) and
    the lower bound of its Wilson interval (the paper plots the bound so that a country with
    few images does not look extreme; it does not name the interval)."""
    _need(images, ("region", "language"), "local_language")
    g = images.assign(v=images["language"] == "visitor").groupby("region")["v"]
    k, n = g.sum(), g.size()
    lo, hi = wilson_interval(k.to_numpy(), n.to_numpy(), confidence)
    return pd.DataFrame({"images": n, "non-local": k / n, "lower": lo, "upper": hi})


def tag_overrepresentation(objects: pd.DataFrame, tag: str, confidence: float = 0.95
                           ) -> pd.DataFrame:
    """Tag counts (Sect. 6.1): per region c, ``r(t, c) = f_c(t) / f_not c(t)``, the frequency of
    tag t among c's tags over its frequency among the other regions' tags, with the Katz
    interval of a ratio of proportions (our choice; tags of one image are not independent, so
    the interval is a little narrow). Here a tag is an object's class name."""
    _need(objects, ("region", "category"), "tag_overrepresentation")
    is_t = objects["category"] == tag
    k, n = is_t.groupby(objects["region"]).sum(), objects.groupby("region").size()
    rows = []
    for c in n.index:
        r, lo, hi = ratio_interval(k[c], n[c], k.sum() - k[c], n.sum() - n[c], confidence)
        rows.append({"region": c, "tags": int(n[c]), f"f({tag})": k[c] / n[c], "r": float(r),
                     "lower": float(lo), "upper": float(hi)})
    return pd.DataFrame(rows).set_index("region")


# ---------------------------------------------------------------------------------------------
# the planted values (what the world was built to hold), and the check of the tool
# ---------------------------------------------------------------------------------------------
def category_weights(biases: Biases, tag_region: bool = False) -> np.ndarray:
    """(S, C) category weights per scene type that :func:`~cvtutor.data.scenes2d.scenes2d` draws
    from under ``biases`` (count skew, scene confinement; with ``tag_region`` the tag boost of the
    first region)."""
    rank = np.arange(len(K.NAMES))
    w = K.scene_weights().numpy().astype(float) * np.exp(-biases.count_skew * rank)
    conf = K.NAMES.index(biases.confined_class)
    w[np.arange(len(K.SCENE_NAMES)) != K.home_scene(biases.confined_class), conf] *= (
        1 - biases.scene_confinement)
    if tag_region:
        w[:, K.NAMES.index(biases.tag_class)] *= 1 + biases.tag_boost
    return w


def region_shares(biases: Biases) -> np.ndarray:
    """(R,) planted region shares ``exp(-skew r) / Z``."""
    w = np.exp(-biases.region_skew * np.arange(len(K.REGIONS)))
    return w / w.sum()


def planted_values(biases: Biases, objects: pd.DataFrame) -> dict[str, float]:
    """The value each recoverable metric must take under ``biases``, from the generator's
    parameters (the scene types are uniform; ``objects`` only supplies the scenes of the small
    people, whose expected label depends on their scene)."""
    shares = region_shares(biases)
    r_last = len(K.REGIONS) - 1
    out = {"duplicate rate": biases.duplicate_rate,
           "P(woman label | identifiable, indoors)": 0.5 + biases.gender_context / 2,
           "P(woman label | identifiable, outdoors)": 0.5 - biases.gender_context / 2,
           f"share of images from {K.REGIONS[0]}": float(shares[0]),
           f"share of images from {K.REGIONS[-1]}": float(shares[-1]),
           f"non-local share in {K.REGIONS[-1]}": biases.visitor_rate,
           f"non-local share in {K.REGIONS[r_last // 2]}":
               biases.visitor_rate * (r_last // 2) / r_last}
    small = objects[(objects["category"] == "person") & (objects["area"] < biases.small_area)]
    indoor = small["scene"].map({k: v["indoor"] for k, v in K.SCENES.items()}).astype(bool)
    p_woman = np.where(indoor, 0.5 + biases.gender_context / 2, 0.5 - biases.gender_context / 2)
    k = biases.gender_inference
    out["P(male label | unidentifiable)"] = (float(np.mean(k + (1 - k) * (1 - p_woman)))
                                             if len(small) else float("nan"))
    # tag over-representation: the tag's expected share of objects in the first region vs the rest
    t = K.NAMES.index(biases.tag_class)
    w0, w1 = category_weights(biases, True), category_weights(biases, False)
    f0 = np.mean(w0[:, t] / w0.sum(1))
    f1 = np.mean(w1[:, t] / w1.sum(1))
    out[f"r({biases.tag_class}, {K.REGIONS[0]})"] = float(f0 / f1)
    # scene diversity of the confined class: p(g | c) mixes the regions (the tag boost changes
    # the first region's totals)
    c = K.NAMES.index(biases.confined_class)
    p = shares[0] * w0[:, c] / w0.sum(1) + (1 - shares[0]) * w1[:, c] / w1.sum(1)
    out[f"scene entropy of {biases.confined_class} (objects)"] = entropy(p / p.sum())
    return out


def planted_vs_recovered(rows: list[dict]) -> pd.DataFrame:
    """The chapter's check of the tool: rows ``{"metric", "planted", "recovered", "lower",
    "upper"}`` with ``holds`` = the planted value lies in [lower, upper] (the recovered value's
    confidence interval)."""
    df = pd.DataFrame(rows, columns=["metric", "planted", "recovered", "lower", "upper"])
    if df["metric"].duplicated().any():
        raise ValueError("planted_vs_recovered: each metric must appear once")
    bad = df[~(df["lower"] <= df["recovered"]) | ~(df["recovered"] <= df["upper"])]
    if len(bad):
        raise ValueError(f"recovered values outside their own intervals: {bad['metric'].tolist()}")
    inside = (df["lower"] <= df["planted"]) & (df["planted"] <= df["upper"])
    df["holds"] = inside.astype("boolean")
    return df.set_index("metric")


def entropy_interval(counts: np.ndarray, confidence: float = 0.95, draws: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(H, lower, upper): the plug-in entropy (nats) of ``counts`` and a percentile bootstrap
    interval (multinomial resampling of the same total)."""
    counts = np.asarray(counts, dtype=float)
    n = int(counts.sum())
    if n < 1:
        raise ValueError("entropy_interval needs at least one count")
    p = counts / n
    boot = np.random.default_rng(seed).multinomial(n, p, size=draws) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(boot > 0, boot * np.log(boot), 0).sum(1)
    a = (1 - confidence) / 2
    return entropy(p), float(np.quantile(h, a)), float(np.quantile(h, 1 - a))


# ---------------------------------------------------------------------------------------------
# the world: annotations through COCO files, crops for the features
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    """One drawn world as REVISE sees it: ``objects`` (the object table read back from the COCO
    file, with the image's ``scene``, ``region`` and caption ``gender``), ``images`` (id, scene,
    region, language, caption gender) and the generator's ``scenes`` (the ground truth)."""

    scenes: Scenes2D
    objects: pd.DataFrame
    images: pd.DataFrame
    biases: Biases


def make_world(config: Config, biases: Biases, seed: int = 0, folder: str | None = None) -> World:
    """Draw ``config.n_images`` scenes, write their COCO file (boxes, captions) to ``folder``
    (a temporary one by default), read it back with pycocotools and build the object table.
    Only the images holding a person are captioned (the others cannot carry a gender word, and
    the world's captioner is slow): their caption gender is -1, as for a caption without one."""
    s = scenes2d(config.n_images, config.size, biases=biases, seed=seed, device=_device(config))
    data = to_coco_boxes(s, captioned=((s.category == K.PERSON) & s.valid).any(1))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_coco(data, Path(folder or tmp) / f"revise_seed{seed}.json")
        coco = read_coco(path)
        coco.coco()  # the pycocotools index is built from the file's contents
    objects = coco_objects(coco)
    images = coco.images.rename(columns={"id": "image"}).set_index("image")
    caps = coco.captions.groupby("image_id")["caption"].apply(list)
    images["caption gender"] = caps.map(caption_gender).reindex(images.index).fillna(-1).astype(int)
    objects = objects.join(images[["scene", "region", "caption gender"]], on="image")
    objects["gender"] = objects["gender"].fillna(-1).astype(int)
    return World(s, objects, images.reset_index(), biases)


def render_crops(world: World, n: int, crop: int = 32,
                 chunk: int = 512) -> tuple[torch.Tensor, pd.DataFrame]:
    """Render ``n`` of the world's scenes (half of them holding a person, for the gender
    analyses; the rest the first scenes without one) and cut every object's
    box out of them, resized to ``crop`` x ``crop`` (``roi_align``), ``chunk`` scenes at a time:
    crops (N, 3, crop, crop) and their rows of the generator's object table (image, slot,
    category, gender, scene, region...)."""
    s = world.scenes
    person = ((s.category == K.PERSON) & s.valid).any(1)
    with_p, without = torch.nonzero(person)[:, 0], torch.nonzero(~person)[:, 0]
    n_p = min(len(with_p), max(n - len(without), n // 2))
    order = torch.sort(torch.cat([with_p[:n_p], without[: n - n_p]])).values
    sub = s.subset(order)
    table = object_table(sub)
    out = []
    for start in range(0, len(order), chunk):  # bounded memory: the rasteriser holds (B, m Q, S, S)
        part = sub.subset(slice(start, start + chunk))
        rows = torch.nonzero(part.valid)  # the object table's order (row-major)
        b = part.boxes[rows[:, 0], rows[:, 1]]
        rois = torch.cat([rows[:, :1].float(), b[:, :2], b[:, :2] + b[:, 2:]], 1)
        out.append(roi_align(part.render().rgb, rois, (crop, crop), 1.0, 2, aligned=True))
    crops = torch.cat(out)
    table["image"] = order.cpu().numpy()[table["image"].to_numpy()]
    return crops, table


def features_of(crops: torch.Tensor) -> np.ndarray:
    """The fast profile's appearance feature of each crop: HOG + colour histograms
    (:func:`cvtutor.nn.handcrafted.appearance_features`), standing in for the CIFAR ResNet-110 and
    AlexNet-Places features of the paper."""
    return appearance_features(crops).cpu().numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------
# the whole analysis of one world
# ---------------------------------------------------------------------------------------------
def analyse(world: World, config: Config, feats: np.ndarray | None = None,
            crops_table: pd.DataFrame | None = None, seed: int = 0) -> dict:
    """Every REVISE metric on one world, as data (tables and numbers)."""
    b, o, im, conf = world.biases, world.objects, world.images, config.confidence
    out: dict = {"counts": object_counts(o)}
    # duplicates: found vs planted (the extra annotations carry duplicate_of)
    dups = duplicate_annotations(o)
    planted = o.dropna(subset=["duplicate_of"]) if "duplicate_of" in o else None
    truth = set() if planted is None else set(zip(planted["duplicate_of"].astype(int),
                                                  planted["id"].astype(int)))
    found = set(zip(dups["id_a"], dups["id_b"]))
    out["duplicates"] = dups
    out["duplicate precision"] = len(found & truth) / max(len(found), 1)
    out["duplicate recall"] = len(found & truth) / max(len(truth), 1)
    # scale
    bins, edges = scale_bins(o["area"].to_numpy())
    out["scale"] = scale_table(o)
    out["xl threshold"] = float(edges[-1])
    # co-occurrence
    m = cooccurrence(o, K.NAMES)
    out["cooccurrence"] = m
    out["person given"] = p_given(m, "person")
    out["scene entropy"] = scene_diversity(o)
    # gender
    labelled = o[(o["category"] == "person") & (o["gender"] >= 0) & (o["area"] >= config.min_area)]
    indoor = labelled["scene"].map({k: v["indoor"] for k, v in K.SCENES.items()}).astype(bool)
    ctx = []
    for name, g in (("indoors", labelled[indoor]), ("outdoors", labelled[~indoor])):
        k, n = int((g["gender"] == 1).sum()), len(g)
        lo, hi = wilson_interval(k, n, conf)
        ctx.append({"context": name, "people": n, "P(woman label)": k / n, "lower": float(lo),
                    "upper": float(hi)})
    out["context"] = pd.DataFrame(ctx).set_index("context")
    out["distance"] = distance_vs_frequency(o, im.set_index("image")["caption gender"], b.pair[1])
    out["distance pairs"] = person_object_pairs(o, b.pair[1])
    out["unidentifiable"] = unidentifiable_labels(o, config.min_area, conf)
    # geography
    out["countries"] = country_distribution(im, conf)
    out["language"] = local_language(im, conf)
    out["tags"] = tag_overrepresentation(o, b.tag_class, conf)
    # appearance (features of rendered crops)
    if feats is not None:
        t = crops_table
        out["appearance"] = appearance_distances(feats, t["category"].to_numpy(),
                                                 t["supercategory"].to_numpy(), config.n_pairs,
                                                 seed)
        tree = np.flatnonzero(t["category"].to_numpy() == b.collapse_class)
        ctx_rows = [pd.Series(t["scene"].to_numpy()[tree], index=np.arange(len(tree)))]
        co = t[["image", "category"]].drop_duplicates()
        tree_imgs = pd.DataFrame({"image": t["image"].to_numpy()[tree],
                                  "row": np.arange(len(tree))})
        pairs = tree_imgs.merge(co[co["category"] != b.collapse_class], on="image")
        ctx_rows.append(pd.Series(pairs["category"].to_numpy(), index=pairs["row"].to_numpy()))
        out["queries"] = query_ranking(feats[tree], pd.concat(ctx_rows))
        people = np.flatnonzero((t["category"].to_numpy() == "person")
                                & (t["gender_label"].to_numpy() >= 0)
                                & (t["area"].to_numpy() >= config.min_area))
        out["gender svm"] = appearance_svm(feats[people], t["gender_label"].to_numpy()[people],
                                           config.svm_folds, seed)
        region = t["region"].to_numpy()[tree]
        names, n_per = np.unique(region, return_counts=True)
        keep = np.isin(region, names[n_per >= 2 * config.svm_folds])  # regions with enough trees
        out["region svm"] = appearance_svm(feats[tree][keep], region[keep], config.svm_folds, seed)
    out["planted"] = planted_table(world, out, conf)
    return out


def planted_table(world: World, out: dict, conf: float) -> pd.DataFrame:
    """:func:`planted_vs_recovered` on the metrics whose planted value is known."""
    b, o = world.biases, world.objects
    want = planted_values(b, o)
    rows = []

    def prop(metric: str, k: int, n: int) -> None:
        lo, hi = wilson_interval(k, n, conf)
        rows.append({"metric": metric, "planted": want[metric], "recovered": k / n,
                     "lower": float(lo), "upper": float(hi)})

    dupable = o["category"].isin(["circle", "oval", "square", "rectangle", "triangle", "diamond"])
    n_dup = len(out["duplicates"])
    prop("duplicate rate", n_dup, int(dupable.sum()) - n_dup)
    for name in ("indoors", "outdoors"):
        c = out["context"].loc[name]
        prop(f"P(woman label | identifiable, {name})", round(c["P(woman label)"] * c["people"]),
             int(c["people"]))
    u = out["unidentifiable"].set_index("scene").loc["all"]
    prop("P(male label | unidentifiable)", round(u["share male"] * u["n"]), int(u["n"]))
    countries, n_img = out["countries"], len(world.images)
    for r in (K.REGIONS[0], K.REGIONS[-1]):
        prop(f"share of images from {r}", int(countries["images"].get(r, 0)), n_img)
    lang = out["language"]
    for r in (K.REGIONS[-1], K.REGIONS[(len(K.REGIONS) - 1) // 2]):
        prop(f"non-local share in {r}", round(lang.loc[r, "non-local"] * lang.loc[r, "images"]),
             int(lang.loc[r, "images"]))
    tag = out["tags"].loc[K.REGIONS[0]]
    key = f"r({b.tag_class}, {K.REGIONS[0]})"
    rows.append({"metric": key, "planted": want[key], "recovered": tag["r"],
                 "lower": tag["lower"], "upper": tag["upper"]})
    key = f"scene entropy of {b.confined_class} (objects)"
    counts = o.loc[o["category"] == b.confined_class, "scene"].value_counts()
    counts = counts.reindex(K.SCENE_NAMES, fill_value=0).to_numpy()
    h, lo, hi = entropy_interval(counts, conf)
    rows.append({"metric": key, "planted": want[key], "recovered": h, "lower": lo, "upper": hi})
    return planted_vs_recovered(rows)


def summary_numbers(out: dict, biases: Biases) -> dict[str, float]:
    """The scalar results of one world (for the mean +- std over seeds)."""
    s, q, d = out["scale"], out.get("queries"), out["distance"]
    res = {
        f"XL share of {biases.scale_class}": float(s.loc[biases.scale_class, "bin 4"]),
        f"P(person | {biases.pair[1]})": float(out["person given"][biases.pair[1]]),
        f"scene entropy of {biases.confined_class}":
            float(out["scene entropy"][biases.confined_class]),
        "distance p-value": d["distance p-value"], "frequency p-value": d["frequency p-value"],
        "planted values recovered": float(out["planted"]["holds"].mean()),
    }
    if "gender svm" in out:
        res["gender SVM ratio"] = out["gender svm"]["ratio"]
        res["region SVM ratio"] = out["region svm"]["ratio"]
        a = out["appearance"].set_index("pairs")["mean"]
        res["distance same class"], res["distance unrelated"] = a["same class"], a["unrelated"]
        home = K.SCENE_NAMES[K.home_scene(biases.collapse_class)]
        gains = q.set_index("context")["diversity gain"]
        res[f"diversity gain of {biases.collapse_class} in {home}"] = float(
            gains.get(home, np.nan))
    return res


def run(config: Config) -> dict:
    """The chapter's miniature: every metric on the planted world and on the unbiased control,
    for each seed (``planted``, ``unbiased``: the first seed's :func:`analyse` outputs;
    ``seeds``: the scalar results of every seed and world); the first planted world's ``objects``
    and ``images`` tables, 24 of its ``crops`` (N, 3, crop, crop) and their ``crops table``; the
    ``findings``. Everything is data (frames, arrays, numbers): a results file can hold it."""
    per_seed, results = [], {}
    for seed in config.seeds:
        for name, biases in (("planted", PLANTED), ("unbiased", UNBIASED)):
            w = make_world(config, biases, seed)
            crops, table = render_crops(w, config.n_render, config.crop)
            out = analyse(w, config, features_of(crops), table, seed)
            per_seed.append({"seed": seed, "world": name, **summary_numbers(out, biases)})
            if seed == config.seeds[0]:
                results[name] = out
                if name == "planted":
                    results["objects"], results["images"] = w.objects, w.images
                    results["crops"] = crops[:24].cpu().numpy()
                    results["crops table"] = table.iloc[:24].drop(columns="parts")
    seeds = pd.DataFrame(per_seed)
    results["seeds"], results["confidence"] = seeds, config.confidence
    results["findings"] = findings(results, seeds)
    return results


def allowed_misses(n: int, confidence: float, level: float = 0.05) -> int:
    """The most of ``n`` independent ``confidence`` intervals that may miss their true values
    before chance alone (misses ~ Binomial(n, 1 - confidence)) is rejected at ``level``."""
    return int(next(m for m in range(n + 1) if binom.sf(m, n, 1 - confidence) < level))


def _mean_std(seeds: pd.DataFrame, world: str, column: str) -> str:
    v = seeds.loc[seeds["world"] == world, column]
    return f"{v.mean():.3g} ± {v.std(ddof=1):.2g}" if len(v) > 1 else f"{v.mean():.3g}"


def findings(results: dict, seeds: pd.DataFrame) -> pd.DataFrame:
    """The findings table (:func:`cvtutor.report.claims_table`) of a run."""
    p, u = results["planted"], results["unbiased"]
    pl = p["planted"]
    sp, su = seeds[seeds["world"] == "planted"], seeds[seeds["world"] == "unbiased"]
    b = PLANTED
    col = lambda df, c: df[c].to_numpy()  # noqa: E731
    xl = f"XL share of {b.scale_class}"
    cooc = f"P(person | {b.pair[1]})"
    ent = f"scene entropy of {b.confined_class}"
    home = K.SCENE_NAMES[K.home_scene(b.collapse_class)]
    gain = f"diversity gain of {b.collapse_class} in {home}"
    a = p["appearance"].set_index("pairs")["mean"]
    q = p["queries"].set_index("context")
    q_scene = q[q.index.isin(K.SCENE_NAMES)]
    drop = (u["scene entropy"] - p["scene entropy"]).dropna()
    pl_ok = pl["holds"].astype(bool)
    claims = {
        "The duplicate detector (IoU >= 0.95, different names) finds exactly the planted "
        "duplicates": ("sanity check", bool(p["duplicate precision"] == 1 and
                                           p["duplicate recall"] == 1),
                       f"precision {p['duplicate precision']:.3f}, "
                       f"recall {p['duplicate recall']:.3f}"),
        "The planted values lie in the 95% intervals of the recovered metrics as often as 95% "
        "intervals should (no more misses than chance allows at the 5% level)": (
            "sanity check", bool((~pl_ok).sum() <= allowed_misses(len(pl), results["confidence"])),
            f"{int(pl_ok.sum())} of {len(pl)} inside, at most "
            f"{allowed_misses(len(pl), results['confidence'])} misses allowed"
            + ("" if pl_ok.all() else f"; missed: {', '.join(pl.index[~pl_ok])}")),
        f"The up-scaled {b.scale_class} is over-represented in the XL quintile (> 20%), more than "
        "in the control world (the paper's airplane)": (
            "construction", bool((col(sp, xl) > 0.2).all() and (col(sp, xl) > col(su, xl)).all()),
            f"{_mean_std(seeds, 'planted', xl)} vs {_mean_std(seeds, 'unbiased', xl)}"),
        f"P(person | {b.pair[1]}) is the highest P(person | c) and above the control "
        "(the paper's cake vs broccoli)": (
            "construction", bool(p["person given"].drop("person").idxmax() == b.pair[1]
                                 and (col(sp, cooc) > col(su, cooc)).all()),
            f"{_mean_std(seeds, 'planted', cooc)} vs {_mean_std(seeds, 'unbiased', cooc)}"),
        f"The confined {b.confined_class}'s scene entropy falls furthest below the control's "
        "(the paper's baseball glove)": (
            "construction", bool(drop.idxmax() == b.confined_class),
            f"{_mean_std(seeds, 'planted', ent)} vs {_mean_std(seeds, 'unbiased', ent)} nats"),
        "Appearance distances: same class < unrelated classes (the paper's 5.91 < 6.48)": (
            "sanity check", bool((col(sp, "distance same class")
                                  < col(sp, "distance unrelated")).all()),
            f"{_mean_std(seeds, 'planted', 'distance same class')} vs "
            f"{_mean_std(seeds, 'planted', 'distance unrelated')}"),
        "Appearance distances: same super-category lies between same class and unrelated "
        "(the paper's 5.91 < 6.24 < 6.48)": (
            "paper claim", bool(a["same class"] < a["same supercategory"] < a["unrelated"]),
            f"{a['same class']:.3f} / {a['same supercategory']:.3f} / {a['unrelated']:.3f}"),
        f"Among the scene queries, '{b.collapse_class} and {home}' (its collapsed home scene) is "
        "the most common and brings the least diversity (the paper's furniture in home/hotel)": (
            "construction", bool(home in q_scene.index
                                 and q_scene["commonness"].idxmax() == home
                                 and q_scene["diversity gain"].idxmin() == home),
            f"gain {_mean_std(seeds, 'planted', gain)}"),
        f"Person-{b.pair[1]} distances differ by gender (Mann-Whitney p < 0.01; the paper's "
        "organ)": ("construction", bool((col(sp, "distance p-value") < 0.01).all()),
                   f"p = {_mean_std(seeds, 'planted', 'distance p-value')}"),
        f"...while the frequency of {b.pair[1]} does not (chi-square p > 0.05), as for the "
        "organ": ("paper claim", bool((col(sp, "frequency p-value") > 0.05).all()),
                  f"p = {_mean_std(seeds, 'planted', 'frequency p-value')}"),
        "A linear SVM separates the people's gender labels better than shuffled labels "
        "(balanced-accuracy ratio > 1.05; the dress and the planted textures)": (
            "construction", bool((col(sp, "gender SVM ratio") > 1.05).all()),
            f"ratio {_mean_std(seeds, 'planted', 'gender SVM ratio')}"),
        "...and the planted texture bias (dots vs stripes) raises that ratio above the "
        "control world's": (
            "construction", bool(col(sp, "gender SVM ratio").mean()
                                 > col(su, "gender SVM ratio").mean()),
            f"{_mean_std(seeds, 'planted', 'gender SVM ratio')} vs "
            f"{_mean_std(seeds, 'unbiased', 'gender SVM ratio')}"),
        f"Regions do not differ in the appearance of {b.tag_class} (SVM ratio < 1.15; nothing "
        "was planted, as the paper's locals vs tourists)": (
            "construction", bool((col(sp, "region SVM ratio") < 1.15).all()),
            f"ratio {_mean_std(seeds, 'planted', 'region SVM ratio')}"),
    }
    return report.claims_table(claims)
