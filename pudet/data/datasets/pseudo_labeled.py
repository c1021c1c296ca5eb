"""Pseudo-labelled datasets: COCO-format files written by ``purify_net.py label`` (boxes with scores).

The score threshold tau is applied when the dataset is loaded, so one file serves every tau; so is box-level
purification, where the file was labelled with a region PU head (``purify_net.py label --pu-weights``): a box
whose region PU score is below ``DATASETS.PSEUDO_PU_SCORE_THRESH`` is dropped. Images left with no box are
dropped, or kept as background-only images (``keep_empty``).
"""
import json
import logging
from typing import Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

__all__ = ["register_pseudo_labeled", "load_pseudo_labeled", "pseudo_dataset_name", "check_pseudo_categories"]

logger = logging.getLogger(__name__)


def pseudo_dataset_name(json_file: str, score_thresh: float, pu_score_thresh: Optional[float] = None) -> str:
    """The name under which :func:`pudet.data.register_datasets` registers a ``DATASETS.TRAIN_PSEUDO`` file."""
    purified = "" if pu_score_thresh is None else f",pu>={pu_score_thresh:g}"
    return f"pseudo@{score_thresh:g}{purified}:{json_file}"


def load_pseudo_labeled(json_file: str, image_root: str, name: str, score_thresh: float, keep_empty: bool,
                        pu_score_thresh: Optional[float] = None):
    """detectron2 dataset dicts of a pseudo-label file, keeping the boxes scoring at least ``score_thresh`` and,
    when ``pu_score_thresh`` is given, whose region PU score is at least that. A file that is not whole JSON
    (e.g. cut short by a full disk or a copy) is an error naming it."""
    try:
        dicts = load_coco_json(json_file, image_root, name, extra_annotation_keys=["score", "pu_score"])
    except json.JSONDecodeError as e:
        raise ValueError(f"pseudo-label file {json_file} (dataset {name}) is not valid JSON ({e}): it may be cut "
                         "short; write it again with `purify_net.py label`") from e
    if pu_score_thresh is not None and any("pu_score" not in a for d in dicts for a in d.get("annotations", [])):
        raise ValueError(f"{json_file} has no region PU scores, so DATASETS.PSEUDO_PU_SCORE_THRESH cannot apply: "
                         "label it with 'purify_net.py label --pu-weights <region head>', or set the key to None")
    kept, boxes = [], 0
    for d in dicts:
        annos = [a for a in d.get("annotations", []) if a["score"] >= score_thresh
                 and (pu_score_thresh is None or a["pu_score"] >= pu_score_thresh)]
        if annos or keep_empty:
            kept.append({**d, "annotations": annos})
            boxes += len(annos)
    purified = "" if pu_score_thresh is None else f" and region PU score >= {pu_score_thresh}"
    logger.info(f"{name}: {len(kept)} of {len(dicts)} images and {boxes} boxes at score >= {score_thresh}{purified}")
    return kept


def register_pseudo_labeled(name: str, json_file: str, image_root: str = "", score_thresh: float = 0.5,
                            keep_empty: bool = False, pu_score_thresh: Optional[float] = None) -> None:
    """Registers a pseudo-label file as a detection dataset. Lazy (nothing is read here) and idempotent for
    the same arguments; other arguments under a registered name are an error."""
    args = {"json_file": json_file, "image_root": image_root, "score_thresh": score_thresh, "keep_empty": keep_empty,
            "pu_score_thresh": pu_score_thresh}
    if name in DatasetCatalog.list():
        if MetadataCatalog.get(name).get("pseudo_label_args", None) != args:
            raise ValueError(f"'{name}' is already registered with other arguments")
        return
    DatasetCatalog.register(name, lambda: load_pseudo_labeled(json_file, image_root, name, score_thresh, keep_empty,
                                                              pu_score_thresh))
    MetadataCatalog.get(name).set(pseudo_label_args=args, json_file=json_file, image_root=image_root,
                                  evaluator_type="coco")


def check_pseudo_categories(pseudo_name: str, labeled_name: str) -> None:
    """Raises ValueError unless a loaded pseudo-labelled dataset has the labeled dataset's categories (names
    and dataset ids): a mismatch would silently train wrong classes."""
    p, l = MetadataCatalog.get(pseudo_name), MetadataCatalog.get(labeled_name)
    ours = (list(p.get("thing_classes", [])), p.get("thing_dataset_id_to_contiguous_id", None))
    theirs = (list(l.get("thing_classes", [])), l.get("thing_dataset_id_to_contiguous_id", None))
    if ours != theirs:
        raise ValueError(
            f"the categories of {pseudo_name} ({ours[0]}, ids {ours[1]}) differ from those of the labeled "
            f"dataset {labeled_name} ({theirs[0]}, ids {theirs[1]}): pseudo-label with a teacher trained on "
            f"{labeled_name}"
        )
