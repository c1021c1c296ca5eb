"""How well a pool is purified, against its hidden truth: a selection's ranking (:func:`selection_metrics`), and
the region head beside the rules and bounds that the same region features allow (uPU, naive PN, the teacher's
own confidence, an oracle trained on the true labels, random: :func:`purifier_comparison`), so a user sees how
close the purifier is to what its features can give. ``tools/evaluate_pool_truth.py selection`` runs them on a
selection's files."""
import logging
from typing import Dict, List

import numpy as np

from ..modeling.region_pu import Bags, HeadSchedule, cross_fit_scores, score_bags, train_region_head
from .ranking import ranking_metrics

__all__ = ["purifier_comparison", "selection_metrics", "teacher_confidence"]

logger = logging.getLogger(__name__)


def selection_metrics(ids: np.ndarray, scores: np.ndarray, k: int, truth: Dict[int, bool]) -> dict:
    """A selection of the ``k`` best-scoring images against the hidden truth (image id -> positive): ``{"K",
    "AUC", "precision@K", "recall@K", "pool positive fraction"}`` (fractions) over every scored image."""
    flags = [truth[int(i)] for i in ids]
    return {**ranking_metrics(scores, flags, k), "pool positive fraction": sum(flags) / len(flags)}


def teacher_confidence(bags: Bags, num_classes: int) -> np.ndarray:
    """(B,) each image's highest known-class probability over its regions: the teacher's own confidence at
    the bags' scales (the last ``num_classes + 1`` feature columns are log-probabilities, background last)."""
    logp = bags.features[:, :, -(num_classes + 1):-1].astype(np.float32)  # (B, I, K)
    best = np.where(bags.valid, np.exp(logp).max(axis=2), 0.0)
    return best.max(axis=1)


def purifier_comparison(positive: Bags, pool: Bags, truth: Dict[int, bool], *, head_scores: np.ndarray,
                        head_name: str, prior: float, loss: str, schedule: HeadSchedule, num_classes: int,
                        k: int) -> List[dict]:
    """Rows ``{"selection", "AUC", "precision@K", "recall@K"}`` (percent) on ``pool``: the trained head
    (``head_scores``), the same region head trained with uPU and with naive PN (U taken as negative) at the
    same prior, the teacher's confidence, an oracle (the same head trained on the pool's TRUE labels,
    5-fold out-of-fold scores) and random selection."""
    positive_pool = np.array([truth[int(i)] for i in pool.ids])
    rows = []

    def add(name, scores):
        m = ranking_metrics(scores, positive_pool, k)
        rows.append({"selection": name, "AUC": 100 * m["AUC"], "precision@K": 100 * m["precision@K"],
                     "recall@K": 100 * m["recall@K"]})

    add(head_name, head_scores)
    for risk, name in (("upu", "region head, uPU"), ("pn", "region head, naive PN (pool as negative)")):
        head = train_region_head(positive, pool, risk=risk, prior=prior, loss=loss, schedule=schedule)
        add(name, score_bags(head, pool)[0])
    add("teacher's best region, known-class probability", teacher_confidence(pool, num_classes))
    if 0 < positive_pool.sum() < len(positive_pool):
        oof_pos, oof_neg = cross_fit_scores(pool.subset(positive_pool), pool.subset(~positive_pool), risk="pn",
                                            prior=float(positive_pool.mean()), loss="logistic", schedule=schedule)
        oracle = np.zeros(len(pool), np.float32)
        oracle[positive_pool], oracle[~positive_pool] = oof_pos, oof_neg
        add("oracle: the region head on the pool's true labels (5-fold)", oracle)
    pi = float(positive_pool.mean())
    rows.append({"selection": "random (expected)", "AUC": 50.0, "precision@K": 100 * pi,
                 "recall@K": 100 * k / len(pool) if len(pool) else float("nan")})
    return rows
