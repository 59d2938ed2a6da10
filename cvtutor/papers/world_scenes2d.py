"""The 2-D scene world: its rasteriser, its attributed scenes, their words and their COCO files.

Not a paper but the shared ground of the chapters on scenes, objects and language (TIDE, CPNet,
PhraseClick, REVISE, InfoGround, ...): the rasteriser :mod:`cvtutor.data.raster`, the scenes
:mod:`cvtutor.data.scenes2d`, the language :mod:`cvtutor.data.language` and the COCO files
:mod:`cvtutor.data.coco`. ``run`` computes the world's ground-truth checks as data:

(1) coverage   alpha = clamp(1/2 - sdf, 0, 1): sum_pixels alpha = area (closed forms)
(2) painter    w_m = a_m prod_{k in front of m} (1 - a_k), rgb = bg + sum_m w_m (c_m - bg)
(3) ids        id(pixel) = the front-most object whose shape contains the pixel centre
(4) phrases    [[phrase]] = the set of objects it denotes; unique iff |[[phrase]]| = 1
(5) biases     each REVISE metric, measured on an unbiased and on a biased world
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cvtutor import report
from cvtutor.data import language as L
from cvtutor.data import raster as R
from cvtutor.data.coco import read_coco
from cvtutor.data.scenes2d import catalog as K
from cvtutor.data.scenes2d import Biases, scenes2d
from cvtutor.data.scenes2d.export import object_table, to_coco
from cvtutor.runtime import ProfileConfig

PAPER: dict = {}  # a world chapter: no paper numbers

# the knobs turned on in the bias check, and their values
BIASED = Biases(
    count_skew=0.4,
    duplicate_rate=0.5,
    scale_shift=0.8,
    cooccurrence=0.8,
    scene_confinement=0.95,
    appearance_collapse=0.9,
    gender_context=0.6,
    gender_distance=0.9,
    gender_appearance=0.9,
    gender_inference=0.9,
    small_area=0.03,
    region_skew=1.0,
    visitor_rate=0.8,
    tag_boost=4.0,
)


@dataclass(frozen=True)
class Config(ProfileConfig):
    """``n_scenes`` rendered at ``size`` px (checks, samples, COCO export); ``n_bias`` scenes
    generated (not rendered) per world for the bias metrics; ``timing_sizes`` the canvas sides
    timed.
    """

    n_scenes: int = 96
    size: int = 64
    max_objects: int = 6
    max_overlap: float = 0.3
    n_bias: int = 3000
    timing_scenes: int = 64
    timing_sizes: tuple[int, ...] = (32, 64)
    device: str | None = None

    @classmethod
    def fast(cls) -> "Config":
        return cls()

    @classmethod
    def full(cls) -> "Config":
        return cls(
            n_scenes=512,
            size=128,
            max_objects=8,
            n_bias=50_000,
            timing_scenes=256,
            timing_sizes=(32, 64, 128),
        )

    @classmethod
    def smoke(cls) -> "Config":
        return cls.full().replace(
            n_scenes=12, size=48, n_bias=400, timing_scenes=8, timing_sizes=(32,)
        )


def _device(config: Config) -> torch.device:
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def make_scenes(config: Config, n: int, seed: int = 0, biases: Biases = Biases()):
    """``n`` scenes of the config's size, object count and overlap, on its device."""
    return scenes2d(n, config.size, max_objects=config.max_objects, max_overlap=config.max_overlap,
                    biases=biases, seed=seed, device=_device(config))


# ---------------------------------------------------------------------------------------------
# (1) the rasteriser against closed forms
# ---------------------------------------------------------------------------------------------
def raster_checks(device: torch.device | str = "cpu") -> pd.DataFrame:
    """Coverage sums (anti-aliased area) of one primitive of each kind against its closed-form
    area, at an off-grid centre and a 0.5 rad turn, on a 64 x 64 canvas."""
    cases = [  # kind, params, points, area
        ("disc", (11.3, 0, 0), None, math.pi * 11.3**2),
        ("ellipse", (20.0, 7.0, 0), None, math.pi * 20 * 7),
        ("box", (14.0, 6.0, 0), None, 4 * 14 * 6),
        ("rounded_box", (14.0, 6.0, 3.0), None, 4 * 14 * 6 - (4 - math.pi) * 9),
        ("polygon", (0, 0, 0), [[-12.0, -9.0], [15.0, -9.0], [2.0, 13.0]], 27 * 22 / 2),
        (
            "polyline",
            (2.5, 0, 0),
            [[-15.0, -5.0], [12.0, 9.0]],
            5 * math.hypot(27, 14) + math.pi * 2.5**2,
        ),
        ("ring", (14.0, 4.0, 0), None, math.pi * (16**2 - 12**2)),
        (
            "bezier",
            (2.5, 0, 0),
            [[-15.0, -5.0], [-6.0, 0.0], [3.0, 4.0], [12.0, 9.0]],
            5 * math.hypot(27, 14) + math.pi * 2.5**2,
        ),
    ]
    rows = []
    for kind, params, points, area in cases:
        pts = None if points is None else torch.tensor(points, device=device)[None, None]
        prims = R.primitives(
            kind,
            torch.tensor([[[32.3, 31.6]]], device=device),
            torch.tensor([[0.5]], device=device),
            torch.tensor([[params]], device=device),
            pts,
        )
        alpha = R.coverage(R.signed_distance(prims, 64, 64))
        rows.append(
            {
                "kind": kind,
                "closed form": area,
                "coverage sum": float(alpha.sum()),
                "hard pixel count": float((alpha >= 0.5).sum()),
            }
        )
    df = pd.DataFrame(rows)
    df["relative error"] = (df["coverage sum"] / df["closed form"] - 1).abs()
    return df


# ---------------------------------------------------------------------------------------------
# (2)-(3) masks and ids against the RGB
# ---------------------------------------------------------------------------------------------
def consistency_checks(scenes) -> dict:
    """On hard-edged renders (aa = 0): every pixel's id is the front-most object containing it
    (brute force over the primitives), the RGB there is that primitive's colour (textures off),
    and the visible masks lie inside the amodal ones; on anti-aliased renders, the weights of the
    objects and the background sum to one."""
    flat = scenes
    prims, extra = flat.primitives()
    grey = torch.full((len(flat), 3), 0.5, device=flat.device)
    hard = flat.render(aa=0, textured=False, background=grey)
    sdf = R.signed_distance(prims, flat.size, flat.size)
    inside = sdf <= 0
    rank = torch.argsort(torch.argsort(extra["z"], dim=1, stable=True), dim=1)  # painter's rank
    key = torch.where(inside, rank[..., None, None].float(), -1.0)
    front = key.argmax(1)
    want_ids = torch.where(
        inside.any(1), extra["instance"].gather(1, front.flatten(1)).view_as(front), -1
    )
    color = (
        extra["colors"]
        .gather(1, front.flatten(1)[..., None].expand(-1, -1, 3))
        .view(*front.shape, 3)
    )
    want_rgb = torch.where(inside.any(1)[..., None], color, 0.5).permute(0, 3, 1, 2)
    soft = flat.render()
    total = soft.visible.sum(1) + (1 - soft.alpha).prod(1)
    return {
        "pixels": int(hard.ids.numel()),
        "ids equal the front object": float((hard.ids == want_ids).float().mean()),
        "RGB equals the front colour": float(
            ((hard.rgb - want_rgb).abs().amax(1) < 1e-5).float().mean()
        ),
        "visible inside amodal": bool((~hard.visible_masks | hard.masks).all()),
        "max |sum of weights - 1|": float((total - 1).abs().max()),
    }


# ---------------------------------------------------------------------------------------------
# (5) the planted biases, measured by the REVISE metrics
# ---------------------------------------------------------------------------------------------
def _entropy(counts: pd.Series) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def bias_metrics(table: pd.DataFrame, images: pd.DataFrame, biases: Biases) -> dict[str, float]:
    """Each REVISE metric (Sect. 4.1, 5.1, 6.1) on one world's object table and image table."""
    t, out = table, {}
    out["object counts: entropy of category counts (bits)"] = _entropy(t["category"].value_counts())
    out["duplicate annotations: fraction of instances labelled twice"] = float(
        t["duplicate"].mean()
    )
    xl = t["area"] >= t["area"].quantile(0.8)
    out[f"object scale: share of {biases.scale_class} in the top area quintile"] = float(
        xl[t["category"] == biases.scale_class].mean()
    )
    a, b = biases.pair
    has_a = (t["category"] == a).groupby(t["image"]).any()
    has_b = (t["category"] == b).groupby(t["image"]).any()
    out[f"co-occurrence: P({b} | {a} in the image)"] = float(has_b[has_a].mean())
    c = biases.confined_class
    out[f"scene diversity: scene entropy of {c} (bits)"] = _entropy(
        t.loc[t["category"] == c, "scene"].value_counts()
    )
    c = biases.collapse_class
    home = K.SCENE_NAMES[K.home_scene(c)]
    out[f"appearance diversity: colour entropy of {c} in {home} (bits)"] = _entropy(
        t.loc[(t["category"] == c) & (t["scene"] == home), "color"].value_counts()
    )
    people = t[t["category"] == "person"]
    indoor = people["scene"].map({k: v["indoor"] for k, v in K.SCENES.items()}).astype(bool)
    out["contextual representation: P(woman | indoors) - P(woman | outdoors)"] = float(
        (people.loc[indoor, "gender"] == 1).mean() - (people.loc[~indoor, "gender"] == 1).mean()
    )
    out[f"instance distance: median d({b}, woman) - median d({b}, man)"] = _distance_gap(t, b)
    dots = people["texture"] == "dots"
    out["appearance differences: P(dots | woman) - P(dots | man)"] = float(
        dots[people["gender"] == 1].mean() - dots[people["gender"] == 0].mean()
    )
    small = people[people["area"] < biases.small_area]
    out["gender label inference: P(label man | small person)"] = float(
        (small["gender_label"] == 0).mean()
    )
    out["country distribution: share of the most frequent region"] = float(
        images["region"].value_counts(normalize=True).iloc[0]
    )
    last = images[images["region"] == K.REGIONS[-1]]
    out[f"local language: visitor captions in {K.REGIONS[-1]}"] = float(last["visitor"].mean())
    tag = biases.tag_class
    share = t.assign(tag=t["category"] == tag).groupby("region")["tag"].mean()
    out[f"tag over-representation: {tag} share in {K.REGIONS[0]} / elsewhere"] = float(
        share.get(K.REGIONS[0], 0) / max(share.drop(K.REGIONS[0], errors="ignore").mean(), 1e-9)
    )
    return out


def _distance_gap(t: pd.DataFrame, target: str) -> float:
    """REVISE's person-object distance, read dimensionless: centre distance / (area_p area_o)^(1/4),
    the median for women minus the median for men (negative: the object is nearer to women)."""
    people = t.loc[t["category"] == "person", ["image", "cx", "cy", "w", "h", "gender"]]
    objs = t.loc[t["category"] == target, ["image", "cx", "cy", "w", "h"]]
    pairs = people.merge(objs, on="image", suffixes=("_p", "_o"))
    dist = (
        np.hypot(pairs.cx_p - pairs.cx_o, pairs.cy_p - pairs.cy_o)
        / (pairs.w_p * pairs.h_p * pairs.w_o * pairs.h_o) ** 0.25
    )
    med = dist.groupby(pairs["gender"]).median()
    return float(med.get(1, np.nan) - med.get(0, np.nan))


def bias_checks(config: Config, seed: int = 0) -> pd.DataFrame:
    """Every metric on an unbiased world and on one with all of :data:`BIASED`'s knobs turned."""
    rows = {}
    for name, biases in (("unbiased", Biases()), ("biased", BIASED)):
        s = make_scenes(config, config.n_bias, seed + 7, biases)
        table = object_table(s)
        images = pd.DataFrame(
            {
                "region": np.asarray(K.REGIONS)[s.region.cpu().numpy()],
                "visitor": s.visitor.cpu().numpy(),
            }
        )
        rows[name] = bias_metrics(table, images, BIASED)
    df = pd.DataFrame(rows)
    direction = {"entropy": -1}
    sign = [next((v for k, v in direction.items() if k in m), 1) for m in df.index]
    df["planted direction"] = ["down" if s < 0 else "up" for s in sign]
    df["moves as planted"] = [
        (b - u) * s > 0 for u, b, s in zip(df["unbiased"], df["biased"], sign)
    ]
    df.index.name = "metric"
    return df.reset_index()


# ---------------------------------------------------------------------------------------------
# language and COCO
# ---------------------------------------------------------------------------------------------
def language_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Per object: its referring expression, whether the grammar found a unique one, and whether
    the denotation of that text's phrase is exactly the object (it must be, when unique)."""
    rows = []
    for image, g in table.groupby("image"):
        for slot in g["slot"]:
            phrase, unique = L.referring_expression(g, int(slot))
            rows.append(
                {
                    "image": image,
                    "slot": int(slot),
                    "expression": L.text(phrase),
                    "unique": unique,
                    "denotes it alone": L.denotation(phrase, g) == {int(slot)},
                    "uses a relation": phrase.relation is not None,
                }
            )
    return pd.DataFrame(rows)


def coco_checks(scenes, layers, tmp_json: str | None = None) -> dict:
    """Export to COCO, read back with pycocotools: each annotation's decoded mask equals the
    visible mask it came from; every image has a caption."""
    data = to_coco(scenes, layers)
    back = read_coco(data)
    masks = layers.visible_masks.cpu().numpy()
    same = [
        np.array_equal(back.mask(a["id"]), masks[a["image_id"] - 1, a["slot"]])
        for a in data["annotations"]
    ]
    return {
        "images": len(data["images"]),
        "annotations": len(data["annotations"]),
        "captions": len(back.captions),
        "masks equal after the round trip": float(np.mean(same)),
        "with keypoints": int(sum("keypoints" in a for a in data["annotations"])),
    }


# ---------------------------------------------------------------------------------------------
# speed and the whole chapter
# ---------------------------------------------------------------------------------------------
def timing(config: Config, seed: int = 0) -> pd.DataFrame:
    """CPU seconds (process time, one thread if the caller set it) to generate and render
    ``timing_scenes`` scenes at each size, on the config's device."""
    rows = []
    device = _device(config)
    for size in config.timing_sizes:
        start, wall = time.process_time(), time.perf_counter()
        s = scenes2d(
            config.timing_scenes, size, max_objects=config.max_objects, seed=seed, device=device
        )
        s.render()
        if device.type == "cuda":
            torch.cuda.synchronize()
        cpu, w = time.process_time() - start, time.perf_counter() - wall
        rows.append(
            {
                "size": size,
                "scenes": config.timing_scenes,
                "device": device.type,
                "cpu s": cpu,
                "wall s": w,
                "scenes per s (wall)": config.timing_scenes / w,
            }
        )
    return pd.DataFrame(rows)


def run(config: Config, seed: int = 0) -> dict:
    """All the checks of the chapter, as data."""
    device = _device(config)
    start = time.process_time()
    scenes = make_scenes(config, config.n_scenes, seed)
    layers = scenes.render()
    gen_cpu = time.process_time() - start
    table = object_table(scenes, layers)
    out = {
        "raster": raster_checks(device),
        "consistency": consistency_checks(scenes),
        "generation": {"scenes": config.n_scenes, "size": config.size, "cpu s": gen_cpu},
        "objects": table.drop(columns=["parts"]),
        "language": language_checks(table),
        "coco": coco_checks(scenes, layers),
        "biases": bias_checks(config, seed),
        "timing": timing(config, seed),
    }
    out["findings"] = findings(out)
    return out


def findings(results: dict) -> pd.DataFrame:
    """The chapter's checks as a findings table (sanity checks of the tools, constructions of
    the world)."""
    ras, con, lang, coco, bias = (
        results[k] for k in ("raster", "consistency", "language", "coco", "biases")
    )
    t = results["objects"]
    ratio = np.maximum(t.w / t.h, t.h / t.w)
    unique = lang[lang["unique"]]
    return report.claims_table(
        {
            "Anti-aliased coverage sums to the closed-form area within 1 % for all eight kinds": (
                "sanity check",
                bool((ras["relative error"] < 0.01).all()),
                f"worst {ras['relative error'].max():.2%}",
            ),
            "Every visible pixel's id is the front-most object containing it": (
                "sanity check",
                con["ids equal the front object"] == 1.0,
                f"{con['pixels']} pixels",
            ),
            "Hard-edged RGB is the front object's colour; visible masks lie inside amodal ones": (
                "sanity check",
                con["RGB equals the front colour"] == 1.0 and con["visible inside amodal"],
            ),
            "Painter's weights of objects and background sum to one": (
                "sanity check",
                con["max |sum of weights - 1|"] < 1e-5,
                f"max error {con['max |sum of weights - 1|']:.1e}",
            ),
            "Each unique referring expression denotes exactly its object": (
                "sanity check",
                bool(unique["denotes it alone"].all()),
                f"{len(unique)} of {len(lang)} objects unique",
            ),
            "COCO masks survive the round trip through pycocotools": (
                "sanity check",
                coco["masks equal after the round trip"] == 1.0,
                f"{coco['annotations']} annotations",
            ),
            "Boxes span aspect ratios beyond 4:1, wide and tall": (
                "construction",
                bool(ratio.max() > 4 and (t.w > 1.5 * t.h).any() and (t.h > 1.5 * t.w).any()),
                f"max {ratio.max():.1f}:1",
            ),
            "Each planted bias moves its REVISE metric in the planted direction": (
                "construction",
                bool(bias["moves as planted"].all()),
                f"{int(bias['moves as planted'].sum())} of {len(bias)} metrics",
            ),
        }
    )
