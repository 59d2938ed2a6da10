"""A small CenterNet: objects as points (Zhou, Wang, Krähenbühl, "Objects as Points", 2019).

A fully convolutional network maps an image to three maps at output stride R:

* a **heatmap** Ŷ ∈ [0, 1]^{C × H/R × W/R}, one channel per class, peaking at object centres;
* the **size** Ŝ (2 channels): width and height of the object centred there (in output cells);
* the **offset** Ô (2 channels): the sub-cell position of the centre, lost by the stride.

Training targets (:func:`centernet_targets`): an object of class c with centre p (input pixels) has
its peak at the cell p̃ = ⌊p / R⌋; the target heatmap is the maximum over objects of Gaussians
exp(-((x - p̃_x)² / 2σ_x² + (y - p̃_y)² / 2σ_y²)), with a size-adaptive σ = (w, h) / (6R)
(floored at ``min_sigma`` cells; the paper derives σ from a radius as CornerNet does, we use
TTFNet's simpler size-proportional rule). The loss (:func:`centernet_loss`) is

    L_det = L_k + λ_size L_size + λ_off L_off,     λ_size = 0.1, λ_off = 1        (Eq. 4 of the paper)

with the penalty-reduced pixel-wise focal loss L_k (Eq. 1, :func:`focal_loss`), and L1 losses on
the size (Eq. 3) and the offset (Eq. 2) read at the true peaks only.

Decoding (:func:`decode`): the peaks of Ŷ (cells equal to the max of their 3×3 neighbourhood: a
max-pool replaces NMS), the top k over all classes, each turned into a box
((p̃ + Ô) R - Ŝ R / 2, Ŝ R) with the peak's value as its score.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + conv(conv(x)), the second convolution dilated to widen the receptive field at stride R."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(_conv(width, width), nn.Conv2d(width, width, 3, padding=dilation,
                                                                 dilation=dilation, bias=False),
                                  nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class CenterNet(nn.Module):
    """Backbone at output stride 4 (two stride-2 convolutions, then residual blocks with dilations
    ``dilations``) and CenterNet's three heads (3×3 conv, ReLU, 1×1 conv each).

    ``forward(images (B, 3, H, W))`` returns ``{"heatmap": logits (B, C, H/4, W/4), "size": (B, 2, ...),
    "offset": (B, 2, ...)}``; the heatmap is returned as logits, Ŷ = sigmoid(logits).
    """

    stride = 4

    def __init__(self, n_classes: int, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4), in_channels: int = 3,
                 head_width: int | None = None, prior: float = 0.1):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes = n_classes
        self.backbone = nn.Sequential(_conv(in_channels, width // 2, stride=2), _conv(width // 2, width, stride=2),
                                      *[Residual(width, d) for d in dilations])
        hw = head_width or width

        def head(cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(width, hw, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hw, cout, 1))

        self.heatmap, self.size, self.offset = head(n_classes), head(2), head(2)
        # start every cell at Ŷ = prior (CenterNet's bias -2.19 for 0.1), so the focal loss starts small
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - prior) / prior))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[2] % self.stride or images.shape[3] % self.stride:
            raise ValueError(f"images must be (B, C, H, W) with H and W multiples of {self.stride}, "
                             f"got shape {tuple(images.shape)}")
        f = self.backbone(images)
        return {"heatmap": self.heatmap(f), "size": self.size(f), "offset": self.offset(f)}


# ---------------------------------------------------------------------------------------------
# targets and loss
# ---------------------------------------------------------------------------------------------
def centernet_targets(boxes: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, n_classes: int,
                      out_hw: tuple[int, int], stride: int = 4, min_sigma: float = 0.5) -> dict[str, torch.Tensor]:
    """CenterNet's training targets for padded ground truth.

    ``boxes`` (B, M, 4) ``[x, y, w, h]`` in input pixels, ``labels`` (B, M) in 0..C-1, ``valid`` (B, M).
    Returns ``heatmap`` (B, C, h, w) (Gaussians, exactly 1 at each peak), ``index`` (B, M) (the flat
    peak cell y·w + x), ``size`` (B, M, 2) (w, h in output cells), ``offset`` (B, M, 2)
    (p / R - p̃ in [0, 1)) and ``valid``.
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
        raise ValueError(f"need boxes (B, M, 4), labels (B, M), valid (B, M); got {tuple(boxes.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(valid.shape)}")
    h, w = out_hw
    boxes = boxes.float()
    centre = (boxes[..., :2] + boxes[..., 2:] / 2) / stride                 # (B, M, 2) in output cells
    peak = centre.floor().clamp(min=torch.zeros(2, device=boxes.device),
                                max=torch.tensor([w - 1.0, h - 1.0], device=boxes.device))
    size = boxes[..., 2:] / stride
    sigma = (size / 6).clamp_min(min_sigma)                                 # (B, M, 2)
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32)
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32)
    gx = ((xs[None, None] - peak[..., 0, None]) / sigma[..., 0, None]) ** 2     # (B, M, w)
    gy = ((ys[None, None] - peak[..., 1, None]) / sigma[..., 1, None]) ** 2     # (B, M, h)
    gauss = torch.exp(-0.5 * (gy[..., :, None] + gx[..., None, :])) * valid[..., None, None]  # (B, M, h, w)
    onehot = F.one_hot(labels.clamp(0, n_classes - 1), n_classes).float() * valid[..., None]  # (B, M, C)
    heatmap = (onehot[..., None, None] * gauss[:, :, None]).amax(dim=1) if boxes.shape[1] else \
        torch.zeros(boxes.shape[0], n_classes, h, w, device=boxes.device)
    index = (peak[..., 1] * w + peak[..., 0]).long()
    return {"heatmap": heatmap, "index": index, "size": size, "offset": centre - peak, "valid": valid}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """Penalty-reduced pixel-wise focal loss, Eq. (1) of Objects as Points (from CornerNet):

        L_k = -1/N Σ_xyc { (1 - Ŷ)^α log Ŷ                  if Y = 1,
                           (1 - Y)^β Ŷ^α log(1 - Ŷ)         otherwise },

    N the number of peaks (cells with Y = 1). Near a peak the Gaussian target lowers the penalty of a
    high Ŷ by (1 - Y)^β. Computed from logits with log-sigmoids, in float32.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have the same shape, got {tuple(logits.shape)} and {tuple(target.shape)}")
    logits, target = logits.float(), target.float()
    p = torch.sigmoid(logits)
    pos = target >= 1.0
    pos_loss = (1 - p) ** alpha * F.logsigmoid(logits)
    neg_loss = (1 - target) ** beta * p ** alpha * F.logsigmoid(-logits)
    n = pos.sum().clamp_min(1)
    return -(torch.where(pos, pos_loss, neg_loss)).sum() / n


def _gather(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """maps (B, K, h, w), index (B, M) of flat cells -> (B, M, K)."""
    b, k = maps.shape[:2]
    flat = maps.reshape(b, k, -1)
    return flat.gather(2, index[:, None, :].expand(-1, k, -1)).transpose(1, 2)


def centernet_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], size_weight: float = 0.1,
                   offset_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """L_det = L_k + λ_size L_size + λ_off L_off (Eq. 4), with the L1 size (Eq. 3) and offset (Eq. 2)
    losses averaged over the objects. Returns the named terms and their weighted sum ``loss``."""
    valid = targets["valid"].float()
    n = valid.sum().clamp_min(1)
    heat = focal_loss(outputs["heatmap"], targets["heatmap"])
    size = (_gather(outputs["size"].float(), targets["index"]) - targets["size"]).abs().sum(-1)
    offset = (_gather(outputs["offset"].float(), targets["index"]) - targets["offset"]).abs().sum(-1)
    size, offset = (size * valid).sum() / n, (offset * valid).sum() / n
    return {"loss": heat + size_weight * size + offset_weight * offset, "heatmap": heat, "size": size,
            "offset": offset}


# ---------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def decode(outputs: dict[str, torch.Tensor], k: int = 100, stride: int = 4,
           one_class_per_cell: bool = False) -> dict[str, torch.Tensor]:
    """The top ``k`` peaks of the heatmap of each image as boxes.

    A cell is a peak when it equals the maximum of its 3×3 neighbourhood in its class channel
    (CenterNet's max-pool in place of NMS). With ``one_class_per_cell`` only the best class of each
    cell may peak there (not in the paper: it removes the same object seen as two classes).
    Returns ``boxes`` (B, k, 4) ``[x, y, w, h]`` in input pixels, ``scores`` (B, k) (the peak values
    Ŷ, descending) and ``labels`` (B, k) in 0..C-1.
    """
    heat = torch.sigmoid(outputs["heatmap"].float())
    b, c, h, w = heat.shape
    keep = F.max_pool2d(heat, 3, stride=1, padding=1) == heat
    if one_class_per_cell:
        keep &= heat == heat.amax(dim=1, keepdim=True)
    heat = heat * keep
    k = min(k, c * h * w)
    scores, flat = heat.reshape(b, -1).topk(k)
    labels, cell = flat // (h * w), flat % (h * w)
    size = _gather(outputs["size"].float(), cell).clamp_min(0) * stride            # (B, k, 2)
    offset = _gather(outputs["offset"].float(), cell)
    centre = torch.stack([cell % w, cell // w], -1).float()
    xy = (centre + offset) * stride - size / 2
    return {"boxes": torch.cat([xy, size], -1), "scores": scores, "labels": labels}
