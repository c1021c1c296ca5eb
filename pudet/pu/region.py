"""Training the region-level PU head on bags of cached region features (multiple-instance PU learning).

A bag is an image: its regions' features (I, D), their boxes and a validity mask. A labeled image is a
positive bag, a pool image an unlabeled bag; the image's score is its best region's score
(:meth:`pudet.modeling.region_pu.RegionPUHead.bag_scores`) and the PU risks of :mod:`pudet.pu.risk` are
applied to those scores exactly as for the image-level classifier. The features are fixed (the teacher is
frozen), so training takes seconds; :func:`cross_fit_scores` gives every bag a score from a head that did not
see it (for the class prior and for honest oracle figures).
"""
import logging
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from ..modeling.pu_classifier import RISKS
from ..modeling.region_pu import RegionPUHead, masked_max

__all__ = ["Bags", "HeadSchedule", "train_region_head", "score_bags", "cross_fit_scores"]

logger = logging.getLogger(__name__)


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
    # float32 and standardised once (float16 arithmetic and gathers are many times slower on CPU); the
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
