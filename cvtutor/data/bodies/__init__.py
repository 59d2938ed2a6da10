"""The body world shared by the people papers (E15, E27, E32, E42).

A 23-joint skeleton (Human3.6M's 17 joints plus 6 foot joints, with a COCO-17 mapping) with forward
kinematics under per-joint limits (:mod:`.skeleton`), and crowds of such people on a ground plane
seen by a camera ring, rendered by the exact ray caster (:mod:`.world`); readers of COCO keypoints,
Human3.6M, MuPoTS-3D, CMU Panoptic and 3DPW (:mod:`.readers`).

    world = BodyWorld(n_people=6, n_views=4, image_size=64, seed=0)
    scenes = world.sample(8)          # dict of tensors, see BodyWorld.sample
"""
from cvtutor.data.bodies.skeleton import (
    BONES, COCO_FLIP_PAIRS, COCO_NAMES, FLIP_PAIRS, JOINT_NAMES, N_H36M, N_JOINTS, PARENT, PRESETS,
    angle_limits, bone_lengths, clip_to_limits, coco17, forward_kinematics, preset_angles,
    sample_subjects, subject_splits,
)
from cvtutor.data.bodies.world import BodyWorld, body_spheres, crop_by_box, person_boxes, to_crop
from cvtutor.data.bodies.readers import (
    load_3dpw, load_coco_keypoints, load_h36m_npz, load_mupots_annot, load_panoptic_bodies,
    load_panoptic_calibration, panoptic_project, topdown_crops,
)

__all__ = [
    "BONES", "COCO_FLIP_PAIRS", "COCO_NAMES", "FLIP_PAIRS", "JOINT_NAMES", "N_H36M", "N_JOINTS",
    "PARENT", "PRESETS", "BodyWorld", "angle_limits", "body_spheres", "bone_lengths",
    "clip_to_limits", "coco17", "crop_by_box", "forward_kinematics", "load_3dpw",
    "load_coco_keypoints", "load_h36m_npz", "load_mupots_annot", "load_panoptic_bodies",
    "load_panoptic_calibration", "panoptic_project", "person_boxes", "preset_angles",
    "sample_subjects", "subject_splits", "to_crop", "topdown_crops",
]
