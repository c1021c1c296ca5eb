"""The image head's workflow (the paper's PU classifier, ``PU.HEAD: image``): training with ``PUTrainer`` after
the prior is resolved (:func:`train_image_head`), scoring a pool (:func:`score_pool`) and choosing U^P from the
scores (:func:`select_by_pu_scores`).

Scoring streams the pool in fixed chunks of consecutive images (:mod:`pudet.data.chunked`); chunk ``c`` belongs
to rank ``c % world_size``. Each finished chunk is written atomically to ``<out>/chunks/chunk_<c>.npz`` (image
ids, scores, and the unreadable images with their reasons), so a run killed at any point and restarted with the
same arguments skips the finished chunks; since scoring is deterministic the merged result is identical to an
uninterrupted run's. Memory holds one chunk's batches, not the pool's scores. Rank 0 merges the chunks into the
selection's files (:func:`pudet.purification.selection_files.write_selection_files`).
"""
import os
from typing import List, Optional

import numpy as np
from detectron2.checkpoint import DetectionCheckpointer

from ..data.chunked import ChunkedInference, read_chunks, write_unreadable
from ..engine.trainers import PUTrainer
from .prior import resolve_prior
from .selection_files import default_rule, write_selection_files

__all__ = ["train_image_head", "score_pool", "merge_chunks", "select_by_pu_scores"]

def train_image_head(cfg, *, resume: bool = False, eval_only: bool = False) -> dict:
    """Trains (or with ``eval_only`` evaluates) the image head into ``OUTPUT_DIR``, the prior resolved first
    (:func:`pudet.purification.prior.resolve_prior`). Returns the held-out validation results and the prior
    used."""
    cfg = resolve_prior(cfg)
    if eval_only:
        model = PUTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
        results = PUTrainer.test(cfg, model)
    else:
        trainer = PUTrainer(cfg)
        trainer.resume_or_load(resume=resume)
        results = trainer.train()
    return {"prior": {"pi_p": {"used": cfg.PU.PRIOR}}, **results}


def score_pool(model, dicts: List[dict], inference: ChunkedInference) -> int:
    """Scores this rank's chunks of ``dicts`` that are not finished yet (``inference``: resumable, sharded over
    ``detectron2.utils.comm``'s ranks). Returns how many images it scored.

    ``model`` maps a list of mapped dicts to ``[{"pu_score": tensor}]`` (unreadable inputs, which carry
    ``"unreadable"``, are not passed to it).
    """
    def predict(batch):
        return [(x["image_id"], float(o["pu_score"])) for x, o in zip(batch, model(batch))]

    def pack(records):
        return {"ids": np.asarray([i for i, _ in records], dtype=np.int64),
                "scores": np.asarray([s for _, s in records], dtype=np.float32)}

    model.eval()
    return inference.run(dicts, predict, pack)


def merge_chunks(out_dir: str, num_images: int, chunk_size: int):
    """Reads every chunk. Returns (ids (N,), scores (N,) float32, [:class:`~pudet.data.chunked.Unreadable`])."""
    chunks, bad = read_chunks(out_dir, num_images, chunk_size)
    return np.concatenate([c["ids"] for c in chunks]), np.concatenate([c["scores"] for c in chunks]), bad


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
        out_dir, ids, scores, {d["image_id"]: d["file_name"] for d in dicts}, topk=topk, threshold=threshold,
        summary=summary, rule_by="", title=f"PU scores on {dataset}", xlabel="PU score g(x)",
    )
    write_unreadable(os.path.join(out_dir, "unreadable.tsv"), bad)
    return summary
