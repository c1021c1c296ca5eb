"""Pseudo-labelling (Algorithm 1 step 3): batched teacher inference over unlabeled images -> a COCO-format
file whose annotations keep the teacher's scores (down to a low floor), so that one file serves every tau.

Runs on :mod:`pudet.data.chunked`: resumable, sharded across ranks, tolerant of unreadable images.
"""
import json
import logging
import os
from typing import Dict, List

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils import comm

from ..data.chunked import ChunkedInference, describe_job, read_chunks, write_unreadable
from ..data.mappers import InferenceMapper
from ..evaluation.pseudo_labels import label_diagnostics
from ..modeling.checkpoint import load_weights_strictly
from ..modeling.region_pu import box_pu_scorer
from ..utils import atomic_write

__all__ = ["teacher_categories", "label_images", "merge_pseudo_labels", "write_pseudo_labels", "finish_pseudo_labels",
           "random_subset", "selection_dicts", "label_source", "pseudo_label"]

logger = logging.getLogger(__name__)

def teacher_categories(train_dataset: str) -> List[dict]:
    """COCO ``categories`` of the dataset the teacher was trained on: ``[{"id", "name"}]`` in contiguous order,
    with the dataset's own ids (e.g. COCO's 1..90) where it has them."""
    meta = MetadataCatalog.get(train_dataset)
    if meta.get("thing_dataset_id_to_contiguous_id", None) is None:
        DatasetCatalog.get(train_dataset)  # loading a COCO-format dataset records its id mapping
    mapping = meta.get("thing_dataset_id_to_contiguous_id", None)
    names = meta.thing_classes
    if mapping is None:
        return [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    inverse = {v: k for k, v in mapping.items()}
    return [{"id": int(inverse[i]), "name": n} for i, n in enumerate(names)]


def label_images(model, dicts: List[dict], inference: ChunkedInference, *, category_ids: List[int]) -> int:
    """Runs the teacher on this rank's unfinished chunks of ``dicts`` (several images per forward;
    ``inference``: resumable, sharded). Returns how many images it processed. ``category_ids[c]`` is the
    dataset id of contiguous class ``c`` (which the job, :func:`~pudet.data.chunked.describe_job`, records).

    Each image's record: ``{"image_id", "file_name", "height", "width", "detections": [[x, y, w, h, score,
    category_id], ...]}`` in original image coordinates (the teacher's ``SCORE_THRESH_TEST`` is the floor);
    where ``model`` also gives ``pu_scores`` (:class:`pudet.modeling.region_pu.BoxPUScorer`), each detection
    ends with its region PU score.
    """

    def predict(batch):
        records = []
        for x, out in zip(batch, model(batch)):
            inst = out["instances"].to("cpu")
            boxes = inst.pred_boxes.tensor.numpy().astype(np.float64)
            boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
            dets = [[round(float(v), 2) for v in b] + [round(float(s), 5), int(category_ids[int(c)])]
                    for b, s, c in zip(boxes, inst.scores.numpy(), inst.pred_classes.numpy())]
            if inst.has("pu_scores"):
                dets = [d + [round(float(p), 4)] for d, p in zip(dets, inst.pu_scores.numpy())]
            records.append({"image_id": x["image_id"], "file_name": x["file_name"], "height": x["height"],
                            "width": x["width"], "detections": dets})
        return records

    def pack(records):
        return {"images": np.asarray([json.dumps(r) for r in records], dtype=str)}

    model.eval()
    return inference.run(dicts, predict, pack)


def merge_pseudo_labels(out_dir: str, num_images: int, chunk_size: int, categories: List[dict], info: Dict):
    """Reads every chunk into one COCO dict (images, annotations with ``score``, categories, info). Returns
    ``(coco, unreadable)`` with ``unreadable`` a list of :class:`~pudet.data.chunked.Unreadable`."""
    images, annotations = [], []
    chunks, unreadable = read_chunks(out_dir, num_images, chunk_size)
    for rec in (json.loads(r) for c in chunks for r in c["images"].tolist()):
        images.append({"id": rec["image_id"], "file_name": rec["file_name"], "height": rec["height"],
                       "width": rec["width"]})
        for det in rec["detections"]:
            x, y, w, h, score, cat = det[:6]
            annotations.append({"id": len(annotations) + 1, "image_id": rec["image_id"], "bbox": [x, y, w, h],
                                "area": w * h, "category_id": cat, "score": score, "iscrowd": 0,
                                **({"pu_score": det[6]} if len(det) > 6 else {})})
    coco = {"info": {**info, "images": len(images), "unreadable": len(unreadable)}, "images": images,
            "annotations": annotations, "categories": categories}
    return coco, unreadable


def write_pseudo_labels(path: str, coco: dict) -> None:
    """Writes a pseudo-label COCO dict atomically."""
    atomic_write(path, lambda f: json.dump(coco, f))


def finish_pseudo_labels(out_dir: str, num_images: int, chunk_size: int, categories: List[dict], info: Dict):
    """Merges the finished chunks of :func:`label_images` in ``out_dir`` and writes ``pseudo_labels.json`` and
    ``unreadable.tsv`` there. Returns ``(coco, unreadable)`` as :func:`merge_pseudo_labels`."""
    coco, unreadable = merge_pseudo_labels(out_dir, num_images, chunk_size, categories, info)
    write_pseudo_labels(os.path.join(out_dir, "pseudo_labels.json"), coco)
    write_unreadable(os.path.join(out_dir, "unreadable.tsv"), unreadable)
    return coco, unreadable


def random_subset(dicts: List[dict], k: int, seed: int) -> List[dict]:
    """``k`` dicts drawn without replacement with ``seed`` (the random-selection baseline U^R), in pool order."""
    if not 0 < k <= len(dicts):
        raise ValueError(f"--random must be between 1 and the pool size {len(dicts)}, got {k}")
    idx = np.sort(np.random.default_rng(seed).choice(len(dicts), size=k, replace=False))
    return [dicts[i] for i in idx]


def selection_dicts(selection_json: str) -> List[dict]:
    """The images of a ``purify_net.py select`` output (``selected.json``), as unlabeled dataset dicts."""
    with open(selection_json) as f:
        images = json.load(f)["images"]
    return [{"file_name": im["file_name"], "image_id": im["image_id"]} for im in images]


def label_source(*, selection: str = "", dataset: str = "", random: int = 0, seed: int = 0):
    """The images ``purify_net.py label`` pseudo-labels: those of a ``selected.json`` (``selection``; its pool is
    the one its summary names), or of the registered ``dataset`` (all of them, or ``random`` of them drawn with
    ``seed``: U^R). Returns ``(dicts, dataset name, a description for the file's info)``."""
    if selection:
        with open(selection) as f:
            return selection_dicts(selection), json.load(f)["summary"]["dataset"], f"selection {selection}"
    dicts = DatasetCatalog.get(dataset)
    if not random:
        return dicts, dataset, f"dataset {dataset}"
    return random_subset(dicts, random, seed), dataset, f"{random} random images of {dataset} (seed {seed})"


def pseudo_label(cfg, *, weights: str, selection: str = "", dataset: str = "", random: int = 0, seed: int = 0,
                 pu_weights: str = "", pu_thresh: float = 0.0, taus=(0.5, 0.7, 0.9), batch_size: int = 8,
                 chunk_size: int = 1024, num_workers=None, overwrite: bool = False, teacher_config: str = ""):
    """The teacher (``cfg``'s detector with ``weights``) pseudo-labels the images of :func:`label_source` into
    ``OUTPUT_DIR`` (resumable, sharded); with ``pu_weights`` (a region head trained on this teacher) each box
    also gets its region PU score. Writes ``pseudo_labels.json``, ``unreadable.tsv`` and the diagnostics
    (:func:`pudet.evaluation.pseudo_labels.label_diagnostics`, box-level purification at ``pu_thresh`` with
    ``pu_weights``), and returns the diagnostics on the main process, None on the others."""
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"teacher weights {weights} not found: train it with tools/train_net.py or pass "
                                "--weights")
    dicts, dataset, source = label_source(selection=selection, random=random, seed=seed,
                                          dataset=dataset or cfg.PU.UNLABELED_DATASETS[0])
    model = build_model(cfg)
    load_weights_strictly(model, weights)
    categories = teacher_categories(cfg.DATASETS.TRAIN[0])
    job = describe_job(cfg, weights, category_ids=[c["id"] for c in categories])
    if pu_weights:
        job["pu_weights"] = describe_job(weights=pu_weights)["weights"]
        model = box_pu_scorer(model, pu_weights, weights)
    out = cfg.OUTPUT_DIR
    label_images(model, dicts, ChunkedInference(
        out, kind="pseudo-labels", mapper=InferenceMapper(cfg), batch_size=batch_size, chunk_size=chunk_size,
        num_workers=cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers, job=job,
        overwrite=overwrite), category_ids=[c["id"] for c in categories])
    comm.synchronize()
    if not comm.is_main_process():
        return None
    info = {"teacher_config": teacher_config, "teacher_weights": weights, "source": source, "dataset": dataset,
            "min_score": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST}
    coco, _ = finish_pseudo_labels(out, len(dicts), chunk_size, categories, info)
    return label_diagnostics(coco, out, taus=taus, labeled_datasets=cfg.DATASETS.TRAIN,
                             pu_score_thresh=pu_thresh if pu_weights else None)
