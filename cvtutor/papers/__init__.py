"""The registry of the book's tutorials: the getting-started notebook and the 48 papers.

The README's paper table, ``python -m cvtutor list`` and the ``_toc.yml`` check all read from
:data:`TUTORIALS`. A paper's ``status`` is ``planned`` until work on it starts, ``in progress``
while its module exists but it is not finished, and ``done`` when it meets the definition of done
(module, notebook, tests, fast-profile run in CI). ``tests/test_registry.py`` checks that a status
agrees with the files that exist.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

STATUSES = ("done", "in progress", "planned")
PARTS = {
    "start": "Getting started",
    "hands": "Hand pose",
    "eccv2020": "ECCV 2020, Part III",
}
#: The ECCV part's sections (DESIGN.md, "The book's sections"), in the book's order. Each opens
#: with the chapter of its shared world; ``_toc.yml`` captions read ``"ECCV 2020 · <theme>"``.
THEMES = (
    "Recognition, robustness and efficiency",
    "Scenes, objects and language",
    "Image synthesis and translation",
    "3-D shapes",
    "People, cameras and geometry",
    "Video and time",
    "Learning, planning and layout",
)
_THEME_OF = {
    **dict.fromkeys(("WI", "E04", "E07", "E14", "E17", "E30", "E35", "E36", "E40", "E41"), THEMES[0]),
    **dict.fromkeys(("WS", "E12", "E21", "E24", "E25", "E33", "E43", "E44"), THEMES[1]),
    **dict.fromkeys(("WT", "E03", "E06", "E08", "E10", "E13", "E23"), THEMES[2]),
    **dict.fromkeys(("W3", "E01", "E02", "E05", "E16", "E20", "E22", "E31", "E34"), THEMES[3]),
    **dict.fromkeys(("WP", "E15", "E18", "E27", "E32", "E37", "E38", "E42"), THEMES[4]),
    **dict.fromkeys(("WV", "E09", "E19", "E26", "E39"), THEMES[5]),
    **dict.fromkeys(("E11", "E28", "E29"), THEMES[6]),
}


@dataclass(frozen=True)
class Tutorial:
    """One entry of the book: an id (``H1``, ``E08``...), its module slug, title and part.

    ``paper`` is False for the tutorials that teach the book's own tools (getting started, the
    hand world) rather than reproduce a paper.
    """

    id: str
    slug: str
    title: str
    part: str
    status: str = "planned"
    paper: bool = True

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.id}: status {self.status!r} is not one of {STATUSES}")
        if self.part not in PARTS:
            raise ValueError(f"{self.id}: part {self.part!r} is not one of {tuple(PARTS)}")

    @property
    def theme(self) -> str | None:
        """The ECCV section this entry belongs to (None outside the ECCV part's themes)."""
        return _THEME_OF.get(self.id)

    @property
    def notebook(self) -> str:
        """Path of the notebook, relative to the repository root."""
        if self.part == "start":
            return f"notebooks/00_{self.slug}.ipynb"
        return f"notebooks/{self.part}/{self.slug}.ipynb"

    @property
    def module_name(self) -> str:
        return f"cvtutor.papers.{self.slug}"

    def has_module(self) -> bool:
        return (Path(__file__).parent / f"{self.slug}.py").exists() or (
            Path(__file__).parent / self.slug / "__init__.py"
        ).exists()


TUTORIALS: tuple[Tutorial, ...] = (
    Tutorial("GS", "getting_started", "Getting started: the notebook template on scikit-learn's digits", "start", "done",
             paper=False),
    Tutorial("HW", "hand_world", "The hand world: synthetic multi-modal hands, real-data loaders and the 3D pose protocol",
             "hands", "done", paper=False),
    Tutorial('H1', 'knowledge_as_priors', 'Knowledge as Priors: Cross-Modal Knowledge Generalization (CVPR 2020) + supplement',
             'hands', 'done'),
    Tutorial('H2', 'disentangling_latent_hands', 'Disentangling Latent Hands for Image Synthesis and Pose Estimation (CVPR 2019), supplement only',
             'hands', 'done'),
    Tutorial('H3', 'multimodal_vae', 'Multimodal Representation Learning using VAEs (3D hand pose; thesis)', 'hands',
             'done'),
    Tutorial('E01', 'sizer', 'SIZER: A Dataset and Model for Parsing 3D Clothing and Learning Size Sensitive 3D Clothing (ECCV 2020)', 'eccv2020', 'done'),
    Tutorial('E02', 'limp', 'LIMP: Learning Latent Shape Representations with Metric Preservation Priors (ECCV 2020)', 'eccv2020', 'done'),
    Tutorial('E03', 'sketch2photo', 'Unsupervised Sketch to Photo Synthesis (ECCV 2020)', 'eccv2020'),
    Tutorial('E04', 'robust_corruptions', 'A Simple Way to Make Neural Networks Robust Against Diverse Image Corruptions (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E05', 'softpoolnet', 'SoftPoolNet: Shape Descriptor for Point Cloud Completion and Classification (ECCV 2020)', 'eccv2020', 'done'),
    Tutorial('E06', 'face_aging_daae', 'Hierarchical Face Aging Through Disentangled Latent Characteristics (ECCV 2020)', 'eccv2020',
             'in progress'),
    Tutorial('E07', 'openhybrid', 'Hybrid Models for Open Set Recognition (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E08', 'topogan', 'TopoGAN: A Topology-Aware Generative Adversarial Network (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E09', 'ahernet', 'Learning to Localize Actions from Moments (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E10', 'forkgan', 'ForkGAN: Seeing into the Rainy Night (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E11', 'tcgm', 'TCGM: An Information-Theoretic Framework for Semi-supervised Multi-modality Learning (ECCV 2020)',
             'eccv2020', 'done'),
    Tutorial('E12', 'exchnet', 'ExchNet: A Unified Hashing Network for Large-Scale Fine-Grained Image Retrieval (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E13', 'tsit', 'TSIT: A Simple and Versatile Framework for Image-to-Image Translation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E14', 'proxybnn', 'ProxyBNN: Learning Binarized Neural Networks via Proxy Matrices (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E15', 'hmor', 'HMOR: Hierarchical Multi-person Ordinal Relations for Monocular Multi-person 3D Pose Estimation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E16', 'mask2cad', 'Mask2CAD: 3D Shape Prediction by Learning to Segment and Retrieve (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E17', 'surrogate_loss', 'A Unified Framework of Surrogate Loss by Refactoring and Interpolation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E18', 'deep_reflectance_volumes', 'Deep Reflectance Volumes: Relightable Reconstructions from Multi-view Photometric Images (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E19', 'memdpc', 'Memory-Augmented Dense Predictive Coding for Video Representation Learning (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E20', 'pointmixup', 'PointMixup: Augmentation for Point Clouds (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E21', 'isp_reid', 'Identity-Guided Human Semantic Parsing for Person Re-identification (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E22', 'shapegf', 'Learning Gradient Fields for Shape Generation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E23', 'coco_funit', 'COCO-FUNIT: Few-Shot Unsupervised Image Translation with a Content Conditioned Style Encoder (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E24', 'cpnet', 'Corner Proposal Network for Anchor-Free, Two-Stage Object Detection (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E25', 'phraseclick', 'PhraseClick: Toward Achieving Flexible Interactive Segmentation by Phrase and Click (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E26', 'av_video_parsing', 'Unified Multisensory Perception: Weakly-Supervised Audio-Visual Video Parsing (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E27', 'rsn_delicate_local', 'Learning Delicate Local Representations for Multi-person Pose Estimation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E28', 'topological_maps', 'Learning to Plan with Uncertain Topological Maps (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E29', 'neural_design_network', 'Neural Design Network: Graphic Layout Generation with Constraints (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E30', 'rpl_reciprocal_points', 'Learning Open Set Network with Discriminative Reciprocal Points (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E31', 'conv_occupancy', 'Convolutional Occupancy Networks (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E32', 'crowd_3d_pose_mvg', 'Multi-person 3D Pose Estimation in Crowded Scenes Based on Multi-view Geometry (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E33', 'tide', 'TIDE: A General Toolbox for Identifying Object Detection Errors (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E34', 'pointcontrast', 'PointContrast: Unsupervised Pre-training for 3D Point Cloud Understanding (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E35', 'dsa_pruning', 'DSA: More Efficient Budgeted Pruning via Differentiable Sparsity Allocation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E36', 'autoaugment_kd', 'Circumventing Outliers of AutoAugment with Knowledge Distillation (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E37', 's2dnet', 'S2DNet: Learning Image Features for Accurate Sparse-to-Dense Matching (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E38', 'rtm3d', 'RTM3D: Real-Time Monocular 3D Detection from Object Keypoints for Autonomous Driving (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E39', 'graph_memory_vos', 'Video Object Segmentation with Episodic Graph Memory Networks (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E40', 'sandglass_mobilenext', 'Rethinking Bottleneck Structure for Efficient Mobile Network Design (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E41', 'side_tuning', 'Side-Tuning: A Baseline for Network Adaptation via Additive Side Networks (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E42', 'part_aware_3d_pose_nas', 'Towards Part-Aware Monocular 3D Human Pose Estimation: An Architecture Search Approach (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E43', 'revise', 'REVISE: A Tool for Measuring and Mitigating Bias in Visual Datasets (ECCV 2020)', 'eccv2020',
             'done'),
    Tutorial('E44', 'info_ground', 'Contrastive Learning for Weakly Supervised Phrase Grounding (ECCV 2020)', 'eccv2020', 'done'),
    # The shared worlds: each opens its theme section of the ECCV part (like the hand world).
    Tutorial("WI", "world_images", "The image-classification world: procedural image sets, corruptions, "
             "open-set and incremental splits", "eccv2020", "done", paper=False),
    Tutorial("WS", "world_scenes2d", "The 2-D scene world: a batched rasteriser, attributed scenes with parts "
             "and language, critters, pedestrians", "eccv2020", "done", paper=False),
    Tutorial("WT", "world_translation", "The image-translation world: one scene, many domains; GAN building "
             "blocks; metrics without downloaded weights", "eccv2020", "done", paper=False),
    Tutorial("W3", "world_shapes3d", "The 3-D shape world: procedural shapes, point clouds, partial scans, "
             "occupancy, meshes and geodesics", "eccv2020", "done", paper=False),
    Tutorial("WP", "world_people", "People, cameras and geometry: one geometry core, a body world with crowds "
             "and camera rigs", "eccv2020", "done", paper=False),
    Tutorial("WV", "world_video", "The video and time world: sprite videos with masks and motion, untrimmed "
             "feature sequences, audio-visual events", "eccv2020", "done", paper=False),
    Tutorial('E45', 'collab_gesture_handpose', 'Collaborative Learning of Gesture Recognition and 3D Hand Pose Estimation with Multi-order Feature Analysis (ECCV 2020)',
             'hands', 'done'),
)

_BY_SLUG = {t.slug: t for t in TUTORIALS}


def papers() -> tuple[Tutorial, ...]:
    """The 48 papers, without the tutorials on the book's own tools."""
    return tuple(t for t in TUTORIALS if t.paper)


def get(slug: str) -> Tutorial:
    """The registry entry of ``slug``; an unknown slug raises ``KeyError`` listing the known ones."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        known = ", ".join(sorted(_BY_SLUG))
        raise KeyError(f"unknown tutorial slug {slug!r}; available slugs: {known}") from None


def load(slug: str) -> ModuleType:
    """Import the module of ``slug``; a planned paper without a module raises a clear error."""
    tutorial = get(slug)
    if not tutorial.has_module():
        runnable = ", ".join(t.slug for t in TUTORIALS if t.has_module())
        raise ModuleNotFoundError(
            f"{slug!r} ({tutorial.id}) is {tutorial.status} and has no module yet; "
            f"runnable slugs: {runnable}"
        )
    return importlib.import_module(tutorial.module_name)


def status_table(held: Mapping[str, str] | None = None) -> str:
    """The README's table of tutorials, as Markdown (``python -m cvtutor table``). ``held`` fills the
    column "findings held (fast)" by slug (``"7 of 9"``, from ``cvtutor.scoreboard.held_counts``);
    a tutorial without a fast result shows "—". The slug stays the last column (the book links it)."""
    held = held or {}
    lines = ["| id | paper | part | status | findings held (fast) | slug |", "|---|---|---|---|---|---|"]
    for t in TUTORIALS:
        lines.append(f"| {t.id} | {t.title} | {PARTS[t.part]} | {t.status} | {held.get(t.slug, '—')} | `{t.slug}` |")
    return "\n".join(lines)
