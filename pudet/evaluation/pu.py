"""Validation of the PU classifier on held-out labeled and unlabeled images."""
import itertools
import logging
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..pu.risk import nnpu_risk, pu_risk_parts
from .pool_truth import load_pool_truth, positive_images
from .ranking import ranking_metrics

__all__ = ["PUEvaluator", "heldout_metrics"]

logger = logging.getLogger(__name__)


def heldout_metrics(pos_scores, unl_scores, unl_ids, *, prior: float, k_fraction: float, loss: str,
                    truth: Optional[Dict[int, bool]] = None) -> "OrderedDict[str, float]":
    """A PU classifier's validation on held-out scores: the counts, the nnPU risk and its parts at ``prior``
    and, where ``truth`` (image id -> positive) is given, the AUC, precision@K and recall@K (percent) of the
    unlabeled scores, with K = round(``k_fraction`` * their number)."""
    pos = torch.as_tensor(np.asarray(pos_scores, dtype=np.float32))
    unl = torch.as_tensor(np.asarray(unl_scores, dtype=np.float32))
    res = OrderedDict(labeled=len(pos), unlabeled=len(unl))
    if len(pos) and len(unl):
        _, risk = nnpu_risk(pos, unl, prior, loss=loss)
        positive_part, negative_part = pu_risk_parts(pos, unl, prior, loss)
        res.update({"nnPU risk": risk.item(), "positive part": positive_part.item(),
                    "negative part": negative_part.item()})
    if truth is not None and len(unl):
        k = int(round(k_fraction * len(unl)))
        metrics = ranking_metrics(unl.numpy(), [truth[int(i)] for i in unl_ids], k)
        res.update({"AUC": 100 * metrics["AUC"], "precision@K": 100 * metrics["precision@K"],
                    "recall@K": 100 * metrics["recall@K"], "K": k})
    return res


class PUEvaluator(DatasetEvaluator):
    """On a held-out set of labeled (``pu_label`` 1) and unlabeled (0) images, reports the nnPU risk and its
    parts at ``prior`` (the PU objective on data not trained on) and, where the unlabeled images' hidden
    truth is known (``metadata.truth_json``), the AUC, precision@K and recall@K of the unlabeled images'
    scores, with K = round(``k_fraction`` * number of held-out unlabeled images) (the paper's K = n_l)."""

    def __init__(self, dataset_name: str, prior: float, k_fraction: float, loss: str = "sigmoid"):
        self._prior = prior
        self._k_fraction = k_fraction
        self._loss = loss
        truth = load_pool_truth(dataset_name)
        self._truth = None if truth is None else positive_images(truth)
        self.reset()

    def reset(self):
        self._records = []  # (pu_label, image_id, score)
        self._unreadable = 0

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            if "pu_score" in out:
                self._records.append((int(inp["pu_label"]), inp["image_id"], float(out["pu_score"])))
            else:
                self._unreadable += 1

    def evaluate(self):
        records = comm.gather(self._records, dst=0)
        unreadable = sum(comm.gather(self._unreadable, dst=0))
        if not comm.is_main_process():
            return {}
        records = list(itertools.chain(*records))
        res = heldout_metrics([s for lab, _, s in records if lab == 1], [s for lab, _, s in records if lab == 0],
                              [i for lab, i, _ in records if lab == 0], prior=self._prior, k_fraction=self._k_fraction,
                              loss=self._loss, truth=self._truth)
        res["unreadable"] = unreadable
        logger.info(f"PU validation: {dict(res)}")
        return {"pu": res}
