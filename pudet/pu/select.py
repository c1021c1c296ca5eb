"""Scoring a pool with the PU classifier and choosing U^P.

Scoring streams the pool in fixed chunks of consecutive images; chunk ``c`` belongs to rank
``c % world_size``. Each finished chunk is written atomically to ``<out>/chunks/chunk_<c>.npz`` (image
ids, scores, and the unreadable images with their reasons), so a run killed at any point and restarted
with the same arguments skips the finished chunks; since scoring is deterministic the merged result is
identical to an uninterrupted run's. Memory holds one chunk's batches, not the pool's scores.
Rank 0 merges the chunks into ``scores.tsv`` (every image) and the selection into ``selected.json``.

Two selection rules write the same four files (``scores.tsv``, ``selected.json`` with its summary,
``unreadable.tsv``, ``score_histogram.png``): :func:`select_by_pu_scores` (U^P, the paper's) and
:func:`select_by_teacher_confidence` (U^C: the images whose best pseudo-box scores highest, the selection a
practitioner tries first).
"""
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
from detectron2.data import DatasetCatalog

from ..evaluation.plotting import png_figure
from ..evaluation.pool_truth import load_pool_truth, positive_images
from ..evaluation.ranking import ranking_metrics
from ..utils import atomic_write

__all__ = [
    "score_pool",
    "merge_chunks",
    "select_top",
    "select_by_pu_scores",
    "select_by_teacher_confidence",
    "write_scores",
    "write_selection",
    "plot_score_histogram",
    "max_score_per_image",
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
    from ..data.chunked import run_chunked

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
    from ..data.chunked import Unreadable, finished_chunks

    ids, scores, bad = [], [], []
    for path in finished_chunks(out_dir, num_images, chunk_size, _SUFFIX):
        with np.load(path) as z:
            ids.append(z["ids"])
            scores.append(z["scores"])
            bad.extend(map(Unreadable, z["bad_ids"].tolist(), z["bad_files"].tolist(), z["bad_reasons"].tolist()))
    return np.concatenate(ids), np.concatenate(scores), bad


def max_score_per_image(coco: dict):
    """Each image's best detection score in a pseudo-label COCO dict (0 where it has none): the score of the
    selection a practitioner tries first (the images on which the teacher is most confident). Returns
    (ids (N,), scores (N,) float32) in the file's image order."""
    best = {}
    for a in coco["annotations"]:
        best[a["image_id"]] = max(best.get(a["image_id"], 0.0), a["score"])
    ids = np.asarray([im["id"] for im in coco["images"]], dtype=np.int64)
    return ids, np.asarray([best.get(int(i), 0.0) for i in ids], dtype=np.float32)


def select_top(ids: np.ndarray, scores: np.ndarray, *, topk: Optional[int] = None,
               threshold: Optional[float] = None) -> np.ndarray:
    """Indices into ``ids`` of U^P, best first: the ``topk`` highest scores, or every score >= ``threshold``
    (exactly one of the two). Ties are broken by ascending image id, so the choice is deterministic."""
    if (topk is None) == (threshold is None):
        raise ValueError("select with exactly one of topk or threshold")
    order = np.lexsort((ids, -scores.astype(np.float64)))
    if topk is not None:
        if topk < 0:
            raise ValueError(f"topk must be >= 0, got {topk}")
        if topk > len(ids):
            logger.warning(f"top-K = {topk} is more than the {len(ids)} scored images: every image is selected")
        return order[:topk]
    return order[scores[order] >= threshold]


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


def plot_score_histogram(path: str, scores, positive=None, title: str = "PU scores", xlabel: str = "PU score g(x)"):
    """A histogram PNG of the scores; split into hidden positives and negatives when ``positive`` is given."""
    scores = np.asarray(scores, dtype=np.float64)
    bins = np.linspace(scores.min(), scores.max() + 1e-9, 50) if len(scores) else 10
    with png_figure(path, figsize=(6, 4)) as (fig, ax):
        if positive is None:
            ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=f"all ({len(scores)})")
        else:
            positive = np.asarray(positive, dtype=bool)
            ax.hist(scores[~positive], bins=bins, color="tab:red", alpha=0.6,
                    label=f"hidden negatives ({(~positive).sum()})")
            ax.hist(scores[positive], bins=bins, color="tab:green", alpha=0.6,
                    label=f"hidden positives ({positive.sum()})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("images")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()


def _rule(cfg, topk: Optional[int], threshold: Optional[float]):
    """(topk, threshold) of a selection: ``threshold`` when given, else ``topk``, else K = n_l (the size of
    ``PU.LABELED_DATASETS``, the paper's choice)."""
    if threshold is not None:
        return None, threshold
    if topk is None:
        topk = sum(len(DatasetCatalog.get(n)) for n in cfg.PU.LABELED_DATASETS)
    return topk, None


def _write_selection_files(out_dir: str, dataset: str, ids, scores, file_names: Dict[int, str], *, topk, threshold,
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
    from ..data.chunked import write_unreadable

    ids, scores, bad = merge_chunks(out_dir, len(dicts), chunk_size)
    topk, threshold = _rule(cfg, topk, threshold)
    summary = {"dataset": dataset, "weights": weights, "pool images": len(dicts), "scored": len(ids),
               "unreadable": len(bad)}
    summary = _write_selection_files(
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
    topk, threshold = _rule(cfg, topk, threshold)
    info = coco.get("info", {})
    dataset = info.get("dataset", "")
    unreadable = info.get("unreadable", 0)
    summary = {"dataset": dataset, "pseudo labels": pseudo_labels, "pool images": len(ids) + unreadable,
               "scored": len(ids), "unreadable": unreadable}
    summary = _write_selection_files(
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


def select_by_region_head(cfg, dataset: str, dicts: List[dict], out_dir: str, scored: dict, *,
                          topk: Optional[int] = None, threshold: Optional[float] = None, weights: str = "",
                          top_regions: int = 5) -> dict:
    """U^P from the region head's scores (``scored``: :func:`pudet.engine.region_pu.score_pool_regions`), chosen
    and written like :func:`select_by_pu_scores`, plus ``region_scores.npz``: each image's ``top_regions``
    best regions (``ids`` (B,), ``boxes`` (B, R, 4) XYXY in image coordinates, ``scores`` (B, R)), which say
    what made an image positive. Where ``dataset`` has a hidden truth, the summary's ``comparison`` holds the
    rows of :func:`pudet.evaluation.purifier.purifier_comparison` on the same region features, at K = the
    selection's size."""
    from ..data.chunked import write_unreadable
    from ..engine.region_pu import head_schedule
    from ..evaluation.purifier import purifier_comparison

    pool, scores, regions = scored["pool"], scored["scores"], scored["regions"]
    topk, threshold = _rule(cfg, topk, threshold)
    info = scored["info"]
    summary = {"dataset": dataset, "weights": weights, "head": f"region ({info['risk']})", "pool images": len(dicts),
               "scored": len(pool), "unreadable": len(scored["unreadable"]), "prior": info["prior"]}
    truth = load_pool_truth(dataset)
    if truth is not None:
        k = len(select_top(pool.ids, scores, topk=topk, threshold=threshold))
        summary["comparison"] = purifier_comparison(
            scored["positive"], pool, positive_images(truth), head_scores=scores,
            head_name=f"region head, {info['risk']} (this selection)", prior=info["prior"], loss=cfg.PU.LOSS,
            schedule=head_schedule(cfg, scored["num_classes"]), num_classes=scored["num_classes"], k=k)
    summary = _write_selection_files(
        out_dir, dataset, pool.ids, scores, {d["image_id"]: d["file_name"] for d in dicts}, topk=topk,
        threshold=threshold, summary=summary, rule_by=" by the region head", title=f"region PU scores on {dataset}",
        xlabel="PU score g(x) (best region)",
    )
    write_unreadable(os.path.join(out_dir, "unreadable.tsv"), scored["unreadable"])
    best = np.argsort(-regions, axis=1, kind="stable")[:, :top_regions]
    atomic_write(os.path.join(out_dir, "region_scores.npz"),
                 lambda f: np.savez(f, ids=pool.ids, boxes=np.take_along_axis(pool.boxes, best[..., None], axis=1),
                                    scores=np.take_along_axis(regions, best, axis=1)), mode="wb")
    return summary
