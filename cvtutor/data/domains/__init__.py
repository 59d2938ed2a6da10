"""The image-translation world (chapter ``world_translation``): one seeded scene, many domains.

Each world samples scene descriptions and renders them, batched on the device through
:mod:`cvtutor.data.raster`, in any of its domains; the layout (silhouette or label map) is the
same in every domain of one scene, so translation can train unpaired (:func:`unpaired`) and be
evaluated against the true target (:func:`paired`).

* :class:`Objects` (E03): photo, grayscale, sketch, edges of shoe/chair silhouettes;
* :class:`Streets` (E10): day and rainy night, 7-class label maps, sign glyphs;
* :class:`Landscapes` (E13): summer, winter, night, 6-class label maps;
* :class:`Faces` (E06): identity x continuous age x extraneous factors;
* :class:`CritterDomains` (E23): critter poses drawn in the appearance of each class.
"""
from cvtutor.data.domains.base import DomainWorld, paired, unpaired
from cvtutor.data.domains.critters import CritterDomains
from cvtutor.data.domains.faces import Faces
from cvtutor.data.domains.landscapes import Landscapes
from cvtutor.data.domains.objects import Objects
from cvtutor.data.domains.streets import Streets

WORLDS = {"objects": Objects, "streets": Streets, "landscapes": Landscapes, "faces": Faces,
          "critters": CritterDomains}

__all__ = ["WORLDS", "CritterDomains", "DomainWorld", "Faces", "Landscapes", "Objects",
           "Streets", "paired", "unpaired"]
