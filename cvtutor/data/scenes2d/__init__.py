"""The 2-D scene world (chapter ``world_scenes2d``): attributed scenes of objects made of parts,
drawn by :mod:`cvtutor.data.raster`, described by :mod:`cvtutor.data.language`, exported to COCO.

* :mod:`.catalog`: categories (templates of parts), colours, textures, scene types;
* :mod:`.generate`: :func:`scenes2d` samples scenes on the device (:class:`Scenes2D`), with the
  planted biases of :class:`Biases`;
* :mod:`.export`: the object table of a batch and its COCO data set (instances with masks,
  keypoints, captions).
"""

from cvtutor.data.scenes2d.catalog import CATEGORIES, COLOR_NAMES, NAMES, PARTS, SCENE_NAMES
from cvtutor.data.scenes2d.generate import Biases, Scenes2D, scenes2d

__all__ = [
    "CATEGORIES",
    "COLOR_NAMES",
    "NAMES",
    "PARTS",
    "SCENE_NAMES",
    "Biases",
    "Scenes2D",
    "scenes2d",
]
