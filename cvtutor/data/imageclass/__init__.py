"""The image-classification world of the ECCV section "Recognition, robustness and efficiency".

Derived and shown in ``notebooks/eccv2020/world_images.ipynb``. Rooms:

- :mod:`.sets`: image sets generated on the device, seeded (``digits16``, ``ShapesTextures`` and
  its fine variant, out-of-distribution sets);
- :mod:`.corruptions`: the ``-C`` suites (15 corruptions at severities 1-5, speckle held out);
- :mod:`.splits`: open-set known/unknown partitions, class-incremental tasks, label fractions;
- :mod:`.augment`: batched per-image RandAugment and torchvision v2 policy wrappers;
- :mod:`.readers`: readers of the real formats (MNIST IDX, CIFAR pickles, SVHN ``.mat``,
  ImageFolder, list files, CIFAR-10-C ``.npy``).
"""

from cvtutor.data.imageclass.sets import OOD_KINDS, ImageSet, digits16, ood_images, shapes_textures

__all__ = ["ImageSet", "digits16", "shapes_textures", "ood_images", "OOD_KINDS"]
