"""The region-level PU classifier (``PU.HEAD: region``): the frozen teacher detector proposes regions, a small
trainable head scores each region, and an image's score is the highest of its regions' scores
(multiple-instance learning: one known object among clutter makes an image positive).

A detector's global image features say little about whether a scene holds an object of a known class; its
region features say much more (measured on the built-in benchmark: pool AUC 56-59 for an oracle on pooled
image features, 78-86 on region features). So the classifier reads, for the teacher's top-N RPN proposals at
one or more input scales (``PU.REGION.SCALES``: a half-size copy lets the detector find objects larger than
it was trained on), each proposal's box-head feature and its class log-probabilities.

:class:`RegionFeatureExtractor` turns images into bags of region features (run once per image and cached,
since the teacher is frozen); :class:`RegionPUHead` scores them. Training and caching live in
:mod:`pudet.engine.region_pu`.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Boxes
from torch import nn

__all__ = ["RegionFeatureExtractor", "RegionPUHead", "BoxPUScorer", "masked_max"]

_EMPTY_BAG_SCORE = -1e4


def masked_max(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-bag maximum of instance scores.

    Args:
        scores: (B, I) instance scores.
        valid: (B, I) bool, False for padding.
    Returns:
        (B,) the highest valid score of each bag (a large negative number for a bag with none).
    """
    return scores.masked_fill(~valid, _EMPTY_BAG_SCORE).amax(dim=1)


class RegionFeatureExtractor(nn.Module):
    """Bags of region features from a frozen ``GeneralizedRCNN`` (kept in eval mode, no gradients).

    For each input scale ``s``, the image is resized by ``s`` and the detector's top ``topk`` RPN proposals
    (by objectness, after NMS) are pooled through its box head; a region's feature is the box head's output
    (``FC_DIM`` values) followed by the box predictor's log-probabilities over the ``K + 1`` classes.
    """

    def __init__(self, detector: GeneralizedRCNN, *, scales: Sequence[float], topk: int):
        super().__init__()
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"PU.REGION.SCALES must be positive factors, got {list(scales)}")
        if topk < 1:
            raise ValueError(f"PU.REGION.TOPK must be >= 1, got {topk}")
        self.detector = detector.eval().requires_grad_(False)
        self.scales = tuple(float(s) for s in scales)
        self.topk = int(topk)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen

    @property
    def feature_dim(self) -> int:
        roi = self.detector.roi_heads
        return roi.box_head.output_shape.channels + roi.num_classes + 1

    @property
    def num_instances(self) -> int:
        return self.topk * len(self.scales)

    def box_features(self, features: Dict[str, torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """(sum of boxes, feature_dim) features of ``boxes`` (in the coordinates of the images that gave
        ``features``): box-head output, then class log-probabilities."""
        roi = self.detector.roi_heads
        x = roi.box_head(roi.box_pooler([features[f] for f in roi.box_in_features], boxes))  # (R, FC_DIM)
        logits, _ = roi.box_predictor(x)  # (R, K + 1)
        return torch.cat([x, F.log_softmax(logits, dim=1)], dim=1)

    @torch.no_grad()
    def forward(self, batched_inputs: List[dict]) -> List[Dict[str, torch.Tensor]]:
        """Inputs as for detectron2 inference (``image`` (C, H, W) at the test size, ``height``/``width`` the
        original size). Returns one dict per input: ``features`` (I, D), ``boxes`` (I, 4) XYXY in original
        image coordinates, ``valid`` (I,) bool (False pads a scale that gave fewer than ``topk``
        proposals), with I = ``topk * len(scales)``, scale by scale."""
        det = self.detector
        n, d, k = len(batched_inputs), self.feature_dim, self.topk
        out_feats = torch.zeros(n, self.num_instances, d)
        out_boxes = torch.zeros(n, self.num_instances, 4)
        out_valid = torch.zeros(n, self.num_instances, dtype=torch.bool)
        for j, s in enumerate(self.scales):
            inputs = [{"image": _rescale(x["image"], s)} for x in batched_inputs]
            images = det.preprocess_image(inputs)
            features = det.backbone(images.tensor)
            proposals, _ = det.proposal_generator(images, features, None)
            boxes = [p.proposal_boxes[:k] for p in proposals]
            feats = self.box_features(features, boxes).cpu().split([len(b) for b in boxes])
            for i, (x, inp, b, f) in enumerate(zip(batched_inputs, inputs, boxes, feats)):
                h, w = inp["image"].shape[-2:]
                factor = torch.tensor([x["width"] / w, x["height"] / h] * 2)
                m = len(b)
                out_feats[i, j * k: j * k + m] = f
                out_boxes[i, j * k: j * k + m] = b.tensor.cpu() * factor
                out_valid[i, j * k: j * k + m] = True
        return [{"features": f, "boxes": b, "valid": v} for f, b, v in zip(out_feats, out_boxes, out_valid)]


def _rescale(image: torch.Tensor, scale: float) -> torch.Tensor:
    """(C, H, W) image resized by ``scale`` (bilinear, antialiased when shrinking), as float."""
    if scale == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False,
                         antialias=scale < 1.0)[0]


class RegionPUHead(nn.Module):
    """Scores region features: standardisation (statistics of the training features, kept as buffers), then
    a linear layer, or a one-hidden-layer MLP when ``hidden_dim`` > 0. :meth:`bag_scores` gives g(x).
    With ``last_columns`` > 0 it reads only the last ``last_columns`` = ``in_dim`` values of each region's
    features (the class log-probabilities of :class:`RegionFeatureExtractor`'s layout)."""

    def __init__(self, in_dim: int, hidden_dim: int = 0, last_columns: int = 0):
        super().__init__()
        if last_columns and last_columns != in_dim:
            raise ValueError(f"a head reading the last {last_columns} feature columns has in_dim {last_columns}, "
                             f"got {in_dim}")
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        if hidden_dim > 0:
            self.scorer = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, 1))
        else:
            self.scorer = nn.Linear(in_dim, 1)
        self.in_dim, self.hidden_dim, self.last_columns = in_dim, hidden_dim, last_columns

    def columns(self, features: torch.Tensor) -> torch.Tensor:
        """The part of ``(..., D)`` region features this head reads."""
        return features[..., -self.last_columns:] if self.last_columns else features

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., D) region features -> (...) region scores."""
        return self.scorer((self.columns(features).float() - self.feature_mean) / self.feature_std).squeeze(-1)

    def bag_scores(self, features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, I, D) features and (B, I) validity -> (B,) image scores g(x), the max over valid regions."""
        return masked_max(self(features), valid)


class BoxPUScorer(nn.Module):
    """The detector's inference with one more field per detection: ``pu_scores``, the region head's score of the
    detected box (box-level purification: a box the teacher names as a known class but whose region looks
    like an unknown object scores low). The detector and the head are frozen; the backbone runs once."""

    def __init__(self, detector: GeneralizedRCNN, head: RegionPUHead):
        super().__init__()
        self.extractor = RegionFeatureExtractor(detector, scales=[1.0], topk=1)
        self.head = head.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen

    @torch.no_grad()
    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        det = self.extractor.detector
        images = det.preprocess_image(batched_inputs)
        features = det.backbone(images.tensor)
        proposals, _ = det.proposal_generator(images, features, None)
        results, _ = det.roi_heads(images, features, proposals, None)
        boxes = [r.pred_boxes for r in results]
        scores = self.head(self.extractor.box_features(features, boxes)).split([len(b) for b in boxes])
        for r, s in zip(results, scores):
            r.pu_scores = s
        return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)
