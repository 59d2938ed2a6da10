"""One geometry core for the people, camera and 3-D-box chapters (and the hand world).

Derived in the *People, cameras and geometry* chapter (``notebooks/eccv2020/world_people.ipynb``):

- :mod:`.cameras`: pinhole ``K``, projection / back-projection, look-at rings and hemispheres;
- :mod:`.rotations`: axis rotations, SO(3) / SE(3) exp and log;
- :mod:`.homography`: normalised DLT (4 or N points), the ground-plane homography ``K[r₁ r₂ t]``;
- :mod:`.triangulate`: linear multi-view triangulation;
- :mod:`.procrustes`: Umeyama's similarity alignment;
- :mod:`.optim`: batched Gauss–Newton / Levenberg–Marquardt;
- :mod:`.boxes3d`: 3-D box corners, rotated BEV IoU, 3-D IoU.
"""
from cvtutor.data.geometry.boxes3d import (
    bev_corners, bev_iou, box3d_corners, convex_intersection_area, iou_3d,
)
from cvtutor.data.geometry.cameras import (
    backproject, camera_hemisphere, camera_ring, disc_radius_px, intrinsics, look_at, pinhole,
    project, projection_matrix, world_to_camera,
)
from cvtutor.data.geometry.homography import (
    apply_homography, ground_plane_homography, homography_dlt, to_homogeneous,
)
from cvtutor.data.geometry.optim import autograd_jacobian, levenberg_marquardt
from cvtutor.data.geometry.procrustes import apply_similarity, umeyama
from cvtutor.data.geometry.rotations import (
    hat, make_se3, random_rotation, rot_x, rot_y, rot_z, se3_exp, se3_log, so3_exp, so3_log,
    transform, vee,
)
from cvtutor.data.geometry.triangulate import triangulate_dlt

__all__ = [
    "apply_homography", "apply_similarity", "autograd_jacobian", "backproject", "bev_corners",
    "bev_iou", "box3d_corners", "camera_hemisphere", "camera_ring", "convex_intersection_area",
    "disc_radius_px", "ground_plane_homography", "hat", "homography_dlt", "intrinsics", "iou_3d",
    "levenberg_marquardt", "look_at", "make_se3", "pinhole", "project", "projection_matrix",
    "random_rotation", "rot_x", "rot_y", "rot_z", "se3_exp", "se3_log", "so3_exp", "so3_log",
    "to_homogeneous", "transform", "triangulate_dlt", "umeyama", "vee", "world_to_camera",
]

# the crowd pose chapter's two-view geometry (notebooks/eccv2020/crowd_3d_pose_mvg.ipynb)
from cvtutor.data.geometry.epipolar import (  # noqa: E402
    epipolar_lines, fundamental_matrix, symmetric_epipolar_distance,
)

__all__ += ["epipolar_lines", "fundamental_matrix", "symmetric_epipolar_distance"]
