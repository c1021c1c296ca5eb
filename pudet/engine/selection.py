"""Scoring a pool with the image-level PU classifier, and writing a selection (U^P, or U^C by the teacher's
confidence) with its summary.

Scoring streams the pool in fixed chunks of consecutive images; chunk ``c`` belongs to rank
``c % world_size``. Each finished chunk is written atomically to ``<out>/chunks/chunk_<c>.npz`` (image
ids, scores, and the unreadable images with their reasons), so a run killed at any point and restarted
with the same arguments skips the finished chunks; since scoring is deterministic the merged result is
identical to an uninterrupted run's. Memory holds one chunk's batches, not the pool's scores.
Rank 0 merges the chunks into ``scores.tsv`` (every image) and the selection into ``selected.json``.

Every selection writes the same four files (``scores.tsv``, ``selected.json`` with its summary,
``unreadable.tsv``, ``score_histogram.png``: :func:`write_selection_files`): :func:`select_by_pu_scores` (U^P, the
paper's), :func:`select_by_teacher_confidence` (U^C: the images whose best pseudo-box scores highest, the
selection a practitioner tries first) and the region head's
(:func:`pudet.engine.region_purification.select_by_region_head`).
"""
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
from detectron2.data import DatasetCatalog

from ..data.chunked import Unreadable, finished_chunks, run_chunked, write_unreadable
from ..evaluation.plotting import plot_score_histogram
from ..evaluation.pool_truth import load_pool_truth, positive_images
from ..evaluation.ranking import ranking_metrics
from ..pu.selection import max_score_per_image, select_top
from ..utils import atomic_write

__all__ = [
    "score_pool",
    "merge_chunks",
    "default_rule",
    "select_by_pu_scores",
    "select_by_teacher_confidence",
    "write_scores",
    "write_selection",
    "write_selection_files",
]

logger = logging.getLogger(__name__)

_SUFFIX = ".npz"


def score_pool(model, dicts: List[dict], out_dir: str, *, mapper, batch_size: int = 32,
               num_workers: int = 2, chunk_size: int = 4096, rank: int = 0, world_size: int = 1,
               progress: bool = True, job: dict = None, overwrite: bool = False) -> int:
    """Scores this rank's chunks of ``dicts`` that are not finished yet (resumable, sharded: see
    :mod:`pudet.data.chunked`; ``job`` and ``overwrite`` as in :func:`~pudet.data.chunked.run_chunked`).
    Returns how many images it scored.

    ``model`` maps a list of mapped dicts to ``[{"pu_score": tensor}]`` (unreadable inputs, which carry
    ``"unreadable"``, are not passed to it).
    """
    def predict(batch):
        return [(x["image_id"], float(o["pu_score"])) for x, o in zip(batch, model(batch))]

    def save_chunk(f, records, bad):
        np.savez(f, ids=np.asarray([i for i, _ in records], dtype=np.int64),
                 scores=np.asarray([s for _, s in records], dtype=np.float32),
                 bad_ids=np.asarray([b.image_id for b in bad], dtype=np.int64),
                 bad_files=np.asarray([b.file_name for b in bad], dtype=str),
                 bad_reasons=np.asarray([b.reason for b in bad], dtype=str))

    model.eval()
    return run_chunked(dicts, out_dir, mapper=mapper, predict=predict, save_chunk=save_chunk, suffix=_SUFFIX,
                       batch_size=batch_size, num_workers=num_workers, chunk_size=chunk_size, rank=rank,
                       world_size=world_size, progress=progress, desc="scoring", kind="pu-scores", job=job,
                       overwrite=overwrite)


def merge_chunks(out_dir: str, num_images: int, chunk_size: int):
    """Reads every chunk. Returns (ids (N,), scores (N,) float32, [:class:`~pudet.data.chunked.Unreadable`])."""
    ids, scores, bad = [], [], []
    for path in finished_chunks(out_dir, num_images, chunk_size, _SUFFIX):
        with np.load(path) as z:
            ids.append(z["ids"])
            scores.append(z["scores"])
            bad.extend(map(Unreadable, z["bad_ids"].tolist(), z["bad_files"].tolist(), z["bad_reasons"].tolist()))
    return np.concatenate(ids), np.concatenate(scores), bad


def write_scores(path: str, ids, scores, file_names: Dict[int, str], positive: Optional[Dict[int, bool]] = None):
    """Every scored image as TSV: image_id, score, file_name (and hidden truth where known), in pool order."""

    def write(f):
        f.write("image_id\tscore\tfile_name" + ("\tpositive" if positive else "") + "\n")
        for i, s in zip(ids.tolist(), scores.tolist()):
            extra = f"\t{int(positive[i])}" if positive else ""
            f.write(f"{i}\t{s:.7g}\t{file_names[i]}{extra}\n")

    atomic_write(path, write)


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


def write_selection_files(out_dir: str, dataset: str, ids, scores, file_names: Dict[int, str], *, topk, threshold,
                           summary: dict, rule_by: str, title: str, xlabel: str) -> dict:
    """Chooses the images (:func:`select_top`), completes ``summary`` (the rule, how many were chosen and,
    where ``dataset`` has a hidden truth, the ranking's AUC, precision@K, recall@K and the pool's positive
    fraction), and writes ``scores.tsv``, ``selected.json`` and ``score_histogram.png``. Returns the summary."""
    chosen = select_top(ids, scores, topk=topk, threshold=threshold)
    rule = f"top-{topk}" if topk is not None else f"score >= {threshold}"
    summary = {**summary, "rule": rule + rule_by, "selected": len(chosen),
               "lowest selected score": float(scores[chosen[-1]]) if len(chosen) else None}
    truth = load_pool_truth(dataset) if dataset else None
    positive = None if truth is None else positive_images(truth)
    flags = None if positive is None else [positive[i] for i in ids.tolist()]
    if flags is not None:
        summary.update({k: v for k, v in ranking_metrics(scores, flags, len(chosen)).items() if k != "K"})
        summary["pool positive fraction"] = sum(flags) / len(flags)
    write_scores(os.path.join(out_dir, "scores.tsv"), ids, scores, file_names, positive)
    write_selection(os.path.join(out_dir, "selected.json"), ids, scores, chosen, file_names, summary)
    plot_score_histogram(os.path.join(out_dir, "score_histogram.png"), scores, flags, title=title, xlabel=xlabel)
    return summary


def select_by_pu_scores(cfg, dataset: str, dicts: List[dict], out_dir: str, *, chunk_size: int,
                        topk: Optional[int] = None, threshold: Optional[float] = None, weights: str = "") -> dict:
    """U^P from the finished chunks of :func:`score_pool` in ``out_dir``: the ``topk`` best images, or those
    scoring at least ``threshold`` (default: K = n_l). Writes ``scores.tsv``, ``selected.json``,
    ``unreadable.tsv`` and ``score_histogram.png`` to ``out_dir``; returns the selection's summary."""
    ids, scores, bad = merge_chunks(out_dir, len(dicts), chunk_size)
    topk, threshold = default_rule(cfg, topk, threshold)
    summary = {"dataset": dataset, "weights": weights, "pool images": len(dicts), "scored": len(ids),
               "unreadable": len(bad)}
    summary = write_selection_files(
        out_dir, dataset, ids, scores, {d["image_id"]: d["file_name"] for d in dicts}, topk=topk,
        threshold=threshold, summary=summary, rule_by="", title=f"PU scores on {dataset}", xlabel="PU score g(x)",
    )
    write_unreadable(os.path.join(out_dir, "unreadable.tsv"), bad)
    return summary


def select_by_teacher_confidence(cfg, pseudo_labels: str, out_dir: str, *, topk: Optional[int] = None,
                                 threshold: Optional[float] = None) -> dict:
    """U^C from a pseudo-label file of the whole pool (``purify_net.py label``): each image scored by its best
    box (:func:`max_score_per_image`), then chosen and written like :func:`select_by_pu_scores` (default
    K = n_l); ``unreadable.tsv`` is the one written beside the pseudo-label file. Returns the summary."""
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
        out_dir, dataset, ids, scores, {im["id"]: im["file_name"] for im in coco["images"]}, topk=topk,
        threshold=threshold, summary=summary, rule_by=" by the teacher's best box score",
        title=f"teacher's best box score on {dataset}", xlabel="best box score",
    )
    bad = os.path.join(os.path.dirname(pseudo_labels), "unreadable.tsv")
    if os.path.isfile(bad):
        with open(bad) as f:
            text = f.read()
        atomic_write(os.path.join(out_dir, "unreadable.tsv"), lambda f: f.write(text))
    return summary
