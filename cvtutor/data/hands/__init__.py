"""The synthetic hand world shared by the hand papers (H1, H2, H3, E45).

No MANO model or hand data set can be downloaded, so every modality of a hand is rendered here
from one procedural generator: a 21-joint skeleton with 20-DoF forward kinematics
(:mod:`.skeleton`), a pinhole camera and the canonical/view frames (:mod:`.camera`), and an exact
sphere-proxy ray caster (:mod:`.render`), wrapped by :class:`HandWorld` (:mod:`.world`).

    world = HandWorld(domain="rhd", image_size=32, seed=0, device="cpu")
    batch = world.sample(64)          # dict of tensors, see HandWorld.sample
"""
from cvtutor.data.hands.camera import (backproject, canonical_transform, denormalize_pose, intrinsics,
                                       normalize_pose, project, view_correction)
from cvtutor.data.hands.render import N_PARTS, N_SPHERES, raycast_spheres, sphere_proxy
from cvtutor.data.hands.skeleton import (BONES, CANON2RHD, CANON2STB, FINGERS, GESTURES, JOINT_NAMES, N_JOINTS,
                                         PARENT, RHD2CANON, ROOT, SCALE_BONE, STB2CANON, bone_lengths,
                                         forward_kinematics, reorder, sample_angles)
from cvtutor.data.hands.inputs import depth_input, rgb_input
from cvtutor.data.hands.world import (DOMAINS, MOTION_PAIRS, SEQUENCE_CLASSES, SPECS, HandWorld, domain_table)

__all__ = [
    "BONES", "CANON2RHD", "CANON2STB", "DOMAINS", "FINGERS", "GESTURES", "JOINT_NAMES", "MOTION_PAIRS", "N_JOINTS",
    "N_PARTS", "N_SPHERES", "PARENT", "RHD2CANON", "ROOT", "SCALE_BONE", "SEQUENCE_CLASSES", "SPECS", "STB2CANON",
    "HandWorld", "backproject", "bone_lengths", "canonical_transform", "denormalize_pose", "depth_input", "domain_table",
    "forward_kinematics", "intrinsics", "normalize_pose", "project", "raycast_spheres", "reorder", "rgb_input", "sample_angles",
    "sphere_proxy", "view_correction",
]
