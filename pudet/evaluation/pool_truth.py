"""Evaluates a detector on an unlabeled pool whose hidden truth is known (the wild-digits benchmark).

Answers the question purification depends on: how often does the detector fire confidently on negative
scenes (no known object) compared with positive ones, and how good are its boxes on the positives.
"""
import copy
import itertools
import json
import logging
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils import comm

__all__ = ["PoolTruthEvaluator", "load_pool_truth", "positive_images"]

logger = logging.getLogger(__name__)


def load_pool_truth(dataset_name: str) -> Optional[dict]:
    """The hidden truth of a registered pool (``metadata.truth_json``: COCO format, each image flagged
    ``positive``), or None for a pool without one (any pool in the wild)."""
    truth_json = MetadataCatalog.get(dataset_name).get("truth_json", None)
    if not truth_json:
        return None
    with open(truth_json) as f:
        return json.load(f)


def positive_images(truth: dict) -> Dict[int, bool]:
    """image id -> whether the scene holds a known object, from :func:`load_pool_truth`'s dict."""
    return {im["id"]: bool(im["positive"]) for im in truth["images"]}


class PoolTruthEvaluator(DatasetEvaluator):
    """For a pool with ``metadata.truth_json`` (COCO format, images flagged ``positive``), reports:

    * ``boxes/img@{t} neg`` and ``boxes/img@{t} pos``: mean number of predicted boxes scoring above
      ``score_thresh`` on negative and on positive scenes;
    * ``fired@{t} neg`` / ``fired@{t} pos``: percentage of scenes with at least one such box;
    * ``AP``, ``AP50``: COCO box AP of the predictions on the positive scenes against their hidden boxes.
    """

    def __init__(self, dataset_name: str, score_thresh: float = 0.5):
        self._truth = load_pool_truth(dataset_name)
        if self._truth is None:
            raise ValueError(f"{dataset_name} has no hidden truth (metadata.truth_json) to evaluate against")
        self._categories = sorted(c["id"] for c in self._truth["categories"])
        self._score_thresh = score_thresh
        self._dataset_name = dataset_name
        self.reset()

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            instances = out["instances"].to("cpu")
            results = instances_to_coco_json(instances, inp["image_id"])
            for r in results:
                r["category_id"] = self._categories[r["category_id"]]
            self._predictions.append({"image_id": inp["image_id"], "detections": results})

    def evaluate(self):
        predictions = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return {}
        predictions = list(itertools.chain(*predictions))
        by_image = {p["image_id"]: p["detections"] for p in predictions}
        t = self._score_thresh
        res = OrderedDict()
        for flag, tag in ((False, "neg"), (True, "pos")):
            ids = [im["id"] for im in self._truth["images"] if im["positive"] == flag and im["id"] in by_image]
            counts = np.array([sum(d["score"] > t for d in by_image[i]) for i in ids], dtype=np.float64)
            res[f"images {tag}"] = len(ids)
            res[f"boxes/img@{t} {tag}"] = float(counts.mean()) if len(ids) else float("nan")
            res[f"fired@{t} {tag}"] = 100.0 * float((counts > 0).mean()) if len(ids) else float("nan")
        res.update(self._positive_ap(by_image))
        logger.info(f"Pool evaluation on {self._dataset_name}: {dict(res)}")
        return {"pool": res}

    def _positive_ap(self, by_image):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        positives = [im["id"] for im in self._truth["images"] if im["positive"] and im["id"] in by_image]
        detections = [d for i in positives for d in by_image[i]]
        if not positives or not detections:
            return {"AP": 0.0, "AP50": 0.0}
        gt = COCO()
        gt.dataset = copy.deepcopy(self._truth)
        gt.createIndex()
        coco_eval = COCOeval(gt, gt.loadRes(detections), "bbox")
        coco_eval.params.imgIds = positives
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        return {"AP": 100.0 * float(coco_eval.stats[0]), "AP50": 100.0 * float(coco_eval.stats[1])}
