"""The region-level PU classifier (``PU.HEAD: region``): the frozen teacher detector proposes regions, a small
trainable head scores each region, and an image's score is the highest of its regions' scores
(multiple-instance learning: one known object among clutter makes an image positive).

A detector's global image features say little about whether a scene holds an object of a known class; its
region features say much more. So the classifier reads, for the teacher's top-N RPN proposals at
one or more input scales (``PU.REGION.SCALES``: a half-size copy lets the detector find objects larger than
it was trained on), each proposal's box-head feature and its class log-probabilities.

:class:`RegionFeatureExtractor` turns images into bags of region features (run once per image and cached,
since the teacher is frozen); :class:`RegionPUHead` scores them. A bag is an image: its regions' features (I, D),
their boxes and a validity mask (:class:`Bags`). A labeled image is a positive bag, a pool image an unlabeled
bag; the image's score is its best region's score (:meth:`RegionPUHead.bag_scores`) and the PU risks of
:mod:`pudet.pu.risk` are applied to those scores exactly as for the image-level classifier. The features are
fixed (the teacher is frozen), so :func:`train_region_head` takes seconds; :func:`cross_fit_scores` gives every
bag a score from a head that did not see it (for the class prior and for honest oracle figures). A trained head
is saved and loaded strictly (:func:`save_region_head`, :func:`load_region_head`). The workflow (extraction,
caching, the prior, selection) is :mod:`pudet.purification.region_head`.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Boxes
from torch import nn

from ..pu.risk import RISKS
from ..utils import atomic_write

__all__ = ["RegionFeatureExtractor", "RegionPUHead", "BoxPUScorer", "masked_max", "Bags", "HeadSchedule",
           "train_region_head", "score_bags", "cross_fit_scores", "save_region_head", "load_region_head",
           "check_head_fits", "box_pu_scorer"]

HEAD_FORMAT = "pudet-region-pu-head-v1"

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


@dataclass
class Bags:
    """Region-feature bags: ``ids`` (B,) image ids, ``features`` (B, I, D) float16, ``boxes`` (B, I, 4) XYXY in
    original image coordinates, ``valid`` (B, I) bool."""

    ids: np.ndarray
    features: np.ndarray
    boxes: np.ndarray
    valid: np.ndarray

    def __len__(self):
        return len(self.ids)

    def subset(self, index) -> "Bags":
        return Bags(self.ids[index], self.features[index], self.boxes[index], self.valid[index])

    @staticmethod
    def concat(parts: List["Bags"]) -> "Bags":
        return Bags(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("ids", "features", "boxes", "valid")))


@dataclass
class HeadSchedule:
    """How a region head trains: Adam for ``iters`` steps of ``batch_bags`` positive + ``batch_bags``
    unlabeled bags drawn at random; ``last_columns`` > 0: the head reads only the last that many feature
    columns (the class log-probabilities; :class:`RegionPUHead`)."""

    iters: int = 300
    lr: float = 0.01
    weight_decay: float = 1e-4
    batch_bags: int = 64
    hidden_dim: int = 0
    seed: int = 0
    last_columns: int = 0


def train_region_head(positive: Bags, unlabeled: Bags, *, risk: str, prior: float, loss: str = "logistic",
                      schedule: Optional[HeadSchedule] = None, beta: float = 0.0, gamma: float = 1.0) -> RegionPUHead:
    """A :class:`RegionPUHead` trained with ``risk`` ("nnpu", "upu" or "pn") on positive and unlabeled bags.
    Features are standardised with the statistics of both sides' valid regions."""
    if risk not in RISKS:
        raise ValueError(f"unknown PU risk '{risk}'; expected one of {sorted(RISKS)}")
    if not 0.0 < prior < 1.0:
        raise ValueError(f"the class prior must lie in (0, 1), got {prior}")
    if not len(positive) or not len(unlabeled):
        raise ValueError(f"training needs positive and unlabeled bags, got {len(positive)} and {len(unlabeled)}")
    s = schedule or HeadSchedule()
    gen = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    # float32 and standardised once (float16 arithmetic and gathers are slow on CPU); the
    # steps then feed the head's scorer directly
    in_dim = s.last_columns or positive.features.shape[-1]
    head = RegionPUHead(in_dim, s.hidden_dim, s.last_columns)
    pos_x = head.columns(torch.from_numpy(positive.features)).float()
    unl_x = head.columns(torch.from_numpy(unlabeled.features)).float()
    pos_v, unl_v = torch.from_numpy(positive.valid), torch.from_numpy(unlabeled.valid)
    regions = torch.cat([pos_x[pos_v], unl_x[unl_v]])  # (R, D)
    head.set_normalization(regions.mean(dim=0), regions.std(dim=0))
    del regions
    for x in (pos_x, unl_x):
        x.sub_(head.feature_mean).div_(head.feature_std)
    opt = torch.optim.Adam(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    kwargs = {"beta": beta, "gamma": gamma} if risk == "nnpu" else {}

    def bag_scores(x, v, index):
        return masked_max(head.scorer(x[index]).squeeze(-1), v[index])

    head.train()
    for _ in range(s.iters):
        p = torch.randint(len(positive), (s.batch_bags,), generator=gen)
        u = torch.randint(len(unlabeled), (s.batch_bags,), generator=gen)
        objective, _ = RISKS[risk](bag_scores(pos_x, pos_v, p), bag_scores(unl_x, unl_v, u), prior, loss=loss, **kwargs)
        opt.zero_grad()
        objective.backward()
        opt.step()
    head.eval()
    return head


@torch.no_grad()
def score_bags(head: RegionPUHead, bags: Bags, batch: int = 1024):
    """Returns ``(image scores (B,), region scores (B, I))`` as float32 arrays (invalid regions: -inf)."""
    head.eval()
    region_scores = []
    for i in range(0, len(bags), batch):
        x = torch.from_numpy(bags.features[i: i + batch].astype(np.float32))
        v = torch.from_numpy(bags.valid[i: i + batch])
        region_scores.append(head(x).masked_fill(~v, float("-inf")))
    regions = torch.cat(region_scores) if region_scores else torch.zeros(0, bags.features.shape[1])
    return regions.amax(dim=1).numpy(), regions.numpy()


def cross_fit_scores(positive: Bags, unlabeled: Bags, *, risk: str, prior: float, loss: str = "logistic",
                     schedule: Optional[HeadSchedule] = None, folds: int = 5, seed: int = 0):
    """Out-of-fold image scores: every bag is scored by a head trained on the other folds (of each side).
    Returns ``(positive scores (B_p,), unlabeled scores (B_u,))``."""
    rng = np.random.default_rng(seed)
    fold_p = rng.permutation(len(positive)) % folds
    fold_u = rng.permutation(len(unlabeled)) % folds
    out_p, out_u = np.zeros(len(positive), np.float32), np.zeros(len(unlabeled), np.float32)
    for k in range(folds):
        head = train_region_head(positive.subset(fold_p != k), unlabeled.subset(fold_u != k), risk=risk,
                                 prior=prior, loss=loss, schedule=schedule)
        out_p[fold_p == k] = score_bags(head, positive.subset(fold_p == k))[0]
        out_u[fold_u == k] = score_bags(head, unlabeled.subset(fold_u == k))[0]
    return out_p, out_u


def save_region_head(head: RegionPUHead, path: str, **info) -> None:
    """Writes ``head`` (atomically) with ``info`` (the prior, risk, scales, top-K and detector it was trained with)."""
    state = {"format": HEAD_FORMAT, "in_dim": head.in_dim, "hidden_dim": head.hidden_dim,
             "last_columns": head.last_columns, "model": head.state_dict(), **info}
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def load_region_head(path: str) -> Tuple[RegionPUHead, dict]:
    """A head saved by :func:`save_region_head` (strict), and the checkpoint's other entries."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"region PU head {path} not found: train it with 'purify_net.py train' first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path} is not a region PU head (PU.HEAD region) saved by purify_net.py train")
    head = RegionPUHead(state["in_dim"], state["hidden_dim"], state.get("last_columns", 0))
    head.load_state_dict(state["model"])
    head.eval()
    return head, {k: v for k, v in state.items() if k != "model"}


def check_head_fits(head: RegionPUHead, extractor: RegionFeatureExtractor, weights: str) -> None:
    """A head trained on another detector's features (another box-head width or class count) is an error."""
    gives = extractor.detector.roi_heads.num_classes + 1 if head.last_columns else extractor.feature_dim
    if head.in_dim != gives:
        what = "class log-probabilities" if head.last_columns else "region features"
        raise ValueError(f"{weights} scores {head.in_dim} {what}; this detector gives {gives}")


def box_pu_scorer(detector: GeneralizedRCNN, head_weights: str, detector_weights: str) -> BoxPUScorer:
    """The detector's inference plus each detection's region PU score (box-level purification), for a region
    head trained on this detector's regions (a head trained on another detector's features is an error)."""
    head, info = load_region_head(head_weights)
    trained_on = info.get("detector_weights")
    if trained_on and os.path.abspath(trained_on) != os.path.abspath(detector_weights):
        raise ValueError(f"the region PU head {head_weights} was trained on the regions of {trained_on}, not of "
                         f"{detector_weights}: box PU scores need the same detector")
    scorer = BoxPUScorer(detector, head)
    check_head_fits(head, scorer.extractor, head_weights)
    return scorer
