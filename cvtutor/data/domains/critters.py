"""Critters as the few-shot translation domain (E23, COCO-FUNIT): pose is the scene, class the
domain.

A thin view of :mod:`cvtutor.data.scenes2d.critters` (the 2-D scene world) in this world's terms:
:meth:`CritterDomains.scenes` samples poses (the content every domain shares), and domain
``"class_k"`` draws them with class k's appearance (palette, texture, part proportions). The
layout is the same pose, not the same pixels: part proportions belong to the class.
"""
from __future__ import annotations

import torch

from cvtutor.data.domains.base import DomainWorld
from cvtutor.data.scenes2d import critters as cr


class CritterDomains(DomainWorld):
    """``n_classes`` critter classes (seeded by ``class_seed``) as domains ``class_0 ...``."""

    def __init__(self, size: int = 32, device=None, n_classes: int = 8, class_seed: int = 0):
        super().__init__(size, device)
        self.classes = cr.critter_classes(n_classes, seed=class_seed, device=self.device)
        self.domains = tuple(f"class_{k}" for k in range(n_classes))

    def scenes(self, n: int, seed: int = 0) -> dict:
        self._check_n(n)
        return {"poses": cr.sample_poses(n, seed=seed, device=self.device), "seed": seed}

    def _render(self, sc: dict, domain: str) -> dict[str, torch.Tensor]:
        poses = sc["poses"]
        k = self.domains.index(domain)
        labels = torch.full((len(poses),), k, dtype=torch.long, device=self.device)
        out = cr.render_critters(self.classes, labels, poses, size=self.size, seed=sc["seed"])
        return {"image": out.image, "label": out.parts, "mask": out.mask, "cls": labels}
