"""The files of a selection and the rule that chooses it. Every selection writes the same files into its folder
(:func:`write_selection_files`): ``scores.tsv`` (every scored image), ``selected.json`` (the selection, best
first, with its summary), ``unreadable.tsv`` and ``score_histogram.png``. The selections: U^P by the image head
(:func:`pudet.purification.image_head.select_by_pu_scores`, the paper's) or the region head
(:func:`pudet.purification.region_head.select_by_region_head`), and U^C by the teacher's confidence
(:func:`select_by_teacher_confidence`: the images whose best pseudo-box scores highest, the selection a
practitioner tries first). No selection reads a pool's hidden truth: ``tools/evaluate_pool_truth.py selection``
measures a selection against it afterwards."""
import json
import os
from typing import Dict, Optional

import numpy as np
from detectron2.data import DatasetCatalog

from ..evaluation.plotting import plot_score_histogram
from ..pu.selection import max_score_per_image, select_top
from ..utils import atomic_write

__all__ = ["default_rule", "read_scores", "select_by_teacher_confidence", "write_scores", "write_selection",
           "write_selection_files"]


def write_scores(path: str, ids, scores, file_names: Dict[int, str], positive: Optional[Dict[int, bool]] = None):
    """Every scored image as TSV: image_id, score, file_name (and, given ``positive``, the hidden truth), in
    pool order."""

    def write(f):
        f.write("image_id\tscore\tfile_name" + ("\tpositive" if positive else "") + "\n")
        for i, s in zip(ids.tolist(), scores.tolist()):
            extra = f"\t{int(positive[i])}" if positive else ""
            f.write(f"{i}\t{s:.7g}\t{file_names[i]}{extra}\n")

    atomic_write(path, write)


def read_scores(path: str):
    """A ``scores.tsv`` of :func:`write_scores`: ``(ids (N,) int64, scores (N,) float32, {id: file_name})``."""
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    ids = np.asarray([int(r[0]) for r in rows], dtype=np.int64)
    return ids, np.asarray([float(r[1]) for r in rows], dtype=np.float32), {int(r[0]): r[2] for r in rows}


def write_selection(path: str, ids, scores, chosen, file_names: Dict[int, str], summary: dict):
    """U^P as json: ``{"summary": ..., "images": [{"file_name", "image_id", "score"}, ...]}``, best first."""
    images = [{"file_name": file_names[int(ids[j])], "image_id": int(ids[j]), "score": float(scores[j])}
              for j in chosen]
    atomic_write(path, lambda f: json.dump({"summary": summary, "images": images}, f, indent=1))


def default_rule(cfg, topk: Optional[int], threshold: Optional[float]):
    """(topk, threshold) of a selection: ``threshold`` when given, else ``topk``, else K = n_l (the size of
    ``PU.LABELED_DATASETS``, the paper's choice)."""
    if threshold is not None:
        return None, threshold
    if topk is None:
        topk = sum(len(DatasetCatalog.get(n)) for n in cfg.PU.LABELED_DATASETS)
    return topk, None


def write_selection_files(out_dir: str, ids, scores, file_names: Dict[int, str], *, topk, threshold,
                          summary: dict, rule_by: str, title: str, xlabel: str) -> dict:
    """Chooses the images (:func:`select_top`), completes ``summary`` (the rule and how many were chosen) and
    writes ``scores.tsv``, ``selected.json`` and ``score_histogram.png``. Returns the summary."""
    chosen = select_top(ids, scores, topk=topk, threshold=threshold)
    rule = f"top-{topk}" if topk is not None else f"score >= {threshold}"
    summary = {**summary, "rule": rule + rule_by, "selected": len(chosen),
               "lowest selected score": float(scores[chosen[-1]]) if len(chosen) else None}
    write_scores(os.path.join(out_dir, "scores.tsv"), ids, scores, file_names)
    write_selection(os.path.join(out_dir, "selected.json"), ids, scores, chosen, file_names, summary)
    plot_score_histogram(os.path.join(out_dir, "score_histogram.png"), scores, None, title=title, xlabel=xlabel)
    return summary


def select_by_teacher_confidence(cfg, pseudo_labels: str, out_dir: str, *, topk: Optional[int] = None,
                                 threshold: Optional[float] = None) -> dict:
    """U^C from a pseudo-label file of the whole pool (``purify_net.py label``): each image scored by its best
    box (:func:`max_score_per_image`), then chosen and written like the PU selections (default K = n_l);
    ``unreadable.tsv`` is the one written beside the pseudo-label file. Returns the summary."""
    with open(pseudo_labels) as f:
        coco = json.load(f)
    ids, scores = max_score_per_image(coco)
    topk, threshold = default_rule(cfg, topk, threshold)
    info = coco.get("info", {})
    dataset = info.get("dataset", "")
    unreadable = info.get("unreadable", 0)
    summary = {"dataset": dataset, "pseudo labels": pseudo_labels, "pool images": len(ids) + unreadable,
               "scored": len(ids), "unreadable": unreadable}
    summary = write_selection_files(
        out_dir, ids, scores, {im["id"]: im["file_name"] for im in coco["images"]}, topk=topk,
        threshold=threshold, summary=summary, rule_by=" by the teacher's best box score",
        title=f"teacher's best box score on {dataset}", xlabel="best box score",
    )
    bad = os.path.join(os.path.dirname(pseudo_labels), "unreadable.tsv")
    if os.path.isfile(bad):
        with open(bad) as f:
            text = f.read()
        atomic_write(os.path.join(out_dir, "unreadable.tsv"), lambda f: f.write(text))
    return summary
