"""Evaluates a detector on an unlabeled pool whose hidden truth is known (the wild-digits benchmark).

Answers the question purification depends on: how often does the detector fire confidently on negative
scenes (no known object) compared with positive ones, and how good are its boxes on the positives; and
gives what no purifier can, the pool's true positives with their true boxes as a pseudo-label file (the
ceiling of purification + pseudo-labelling).
"""
import copy
import itertools
import json
import logging
import os
from collections import Counter, OrderedDict
from typing import Dict, Optional

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils import comm

__all__ = ["PoolTruthEvaluator", "load_pool_truth", "negative_scene_boxes", "oracle_pseudo_labels",
           "positive_images"]

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


def _truth_of(dataset_name: str) -> dict:
    truth = load_pool_truth(dataset_name)
    if truth is None:
        raise ValueError(f"{dataset_name} has no hidden truth (metadata.truth_json) to evaluate against")
    return truth


def negative_scene_boxes(coco: dict, score_thresh: float = 0.5) -> dict:
    """How the detector is fooled by a pool: over the NEGATIVE scenes (no known object) of a pseudo-label file
    of ``purify_net.py label`` (its pool, ``coco["info"]["dataset"]``, must have a hidden truth), the boxes
    scoring above ``score_thresh`` (above, as :class:`PoolTruthEvaluator` counts).

    Returns ``{"score_thresh", "negative images", "boxes/img", "fired" (fraction of negative scenes with at
    least one such box), "per class": {category name: boxes/img}}``.
    """
    truth = _truth_of(coco["info"]["dataset"])
    negative = {im["id"] for im in truth["images"] if not im["positive"]}
    images = [im["id"] for im in coco["images"] if im["id"] in negative]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    boxes = [a for a in coco["annotations"] if a["image_id"] in negative and a["score"] > score_thresh]
    per_class = Counter(names[a["category_id"]] for a in boxes)
    n = len(images)
    return {
        "score_thresh": score_thresh, "negative images": n,
        "boxes/img": len(boxes) / n if n else float("nan"),
        "fired": len({a["image_id"] for a in boxes}) / n if n else float("nan"),
        "per class": {name: per_class.get(name, 0) / n if n else float("nan") for name in names.values()},
    }


def oracle_pseudo_labels(dataset_name: str, k: int, seed: int) -> dict:
    """What a perfect purifier selecting ``k`` images and a perfect teacher would give: ``k`` positive scenes
    of the pool ``dataset_name`` drawn with ``seed`` (all of them where it has fewer), with their TRUE boxes
    of the known classes, as a pseudo-label dict in the format ``purify_net.py label`` writes
    (:func:`pudet.engine.pseudo_label.finish_pseudo_labels`; absolute file names, every box scoring 1.0 so
    that every tau keeps it). Not a purifier: it reads the hidden truth, to measure the ceiling."""
    truth = _truth_of(dataset_name)
    root = MetadataCatalog.get(dataset_name).image_root
    positives = [im for im in truth["images"] if im["positive"]]
    chosen = np.sort(np.random.default_rng(seed).choice(len(positives), size=min(k, len(positives)),
                                                        replace=False))
    images = [{"id": im["id"], "file_name": os.path.join(root, im["file_name"]), "height": im["height"],
               "width": im["width"]} for im in (positives[i] for i in chosen)]
    ids = {im["id"] for im in images}
    boxes = [a for a in truth["annotations"] if a["image_id"] in ids]
    annotations = [{"id": i + 1, "image_id": a["image_id"], "bbox": list(a["bbox"]), "area": a["area"],
                    "category_id": a["category_id"], "score": 1.0, "iscrowd": 0} for i, a in enumerate(boxes)]
    source = f"oracle: {len(images)} true-positive scenes of {dataset_name} (seed {seed}) with their true boxes"
    info = {"source": source, "dataset": dataset_name, "images": len(images), "unreadable": 0}
    return {"info": info, "images": images, "annotations": annotations,
            "categories": copy.deepcopy(truth["categories"])}


def oracle_selection(oracle: dict) -> dict:
    """The images of :func:`oracle_pseudo_labels`'s ``oracle`` as a selection in the format of
    ``purify_net.py select``'s ``selected.json`` (``{"summary", "images": [{"file_name", "image_id", "score"}]}``):
    the oracle's K scenes, for the teacher to pseudo-label (a perfect purifier with the teacher's labels)."""
    images = [{"file_name": im["file_name"], "image_id": im["id"], "score": 1.0} for im in oracle["images"]]
    summary = {"dataset": oracle["info"]["dataset"], "rule": "oracle: true-positive scenes", "selected": len(images)}
    return {"summary": summary, "images": images}


class PoolTruthEvaluator(DatasetEvaluator):
    """For a pool with ``metadata.truth_json`` (COCO format, images flagged ``positive``), reports:

    * ``boxes/img@{t} neg`` and ``boxes/img@{t} pos``: mean number of predicted boxes scoring above
      ``score_thresh`` on negative and on positive scenes;
    * ``fired@{t} neg`` / ``fired@{t} pos``: percentage of scenes with at least one such box;
    * ``AP``, ``AP50``: COCO box AP of the predictions on the positive scenes against their hidden boxes.
    """

    def __init__(self, dataset_name: str, score_thresh: float = 0.5):
        self._truth = _truth_of(dataset_name)
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
