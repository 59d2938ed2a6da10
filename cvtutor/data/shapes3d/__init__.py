"""The 3-D shape world: primitives with exact geometry, categories, a CAD library and rooms.

Shared by the 3-D shape chapters (SIZER, LIMP, SoftPoolNet, Mask2CAD, PointMixup, ShapeGF,
Convolutional Occupancy Networks, PointContrast); derived and checked in the world's chapter,
``notebooks/eccv2020/world_shapes3d.ipynb``.

- :mod:`.primitives`: analytic SDFs, exact occupancy, areas, volumes, area-uniform surface samples;
- :mod:`.shapes`: unions of posed primitives (:class:`ShapeBatch`), ten categories with part
  labels, the fixed CAD library, rooms;
- :mod:`.transforms`: normalisation, rotations, scale, jitter, dropout, resampling; partial scans
  from virtual cameras with overlaps and correspondences; voxelisation;
- :mod:`.meshes`: bent sheets and tubes with fixed connectivity, mesh operators, Dijkstra and the
  heat-method geodesic;
- :mod:`.points2d`: outlines of the bundled digits and of font glyphs as 2-D point sets;
- :mod:`.garments`: clothed bodies on a tube in four garment sizes (SIZER's world);
- :mod:`.readers`: the real data sets' file formats (tested on fixtures).
"""

from cvtutor.data.shapes3d import meshes, points2d, primitives, transforms
from cvtutor.data.shapes3d.shapes import (
    CATEGORIES,
    PARTS,
    ROOM_SEMANTICS,
    ShapeBatch,
    axis_rotation,
    cad_library,
    make_category,
    make_classes,
    make_rooms,
)

__all__ = [
    "meshes",
    "points2d",
    "primitives",
    "transforms",
    "CATEGORIES",
    "PARTS",
    "ROOM_SEMANTICS",
    "ShapeBatch",
    "axis_rotation",
    "cad_library",
    "make_category",
    "make_classes",
    "make_rooms",
]
