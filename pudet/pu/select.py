"""Scoring a pool with the PU classifier and choosing U^P.

Scoring streams the pool in fixed chunks of consecutive images; chunk ``c`` belongs to rank
``c % world_size``. Each finished chunk is written atomically to ``<out>/chunks/chunk_<c>.npz`` (image
ids, scores, and the unreadable images with their reasons), so a run killed at any point and restarted
with the same arguments skips the finished chunks; since scoring is deterministic the merged result is
identical to an uninterrupted run's. Memory holds one chunk's batches, not the pool's scores.
Rank 0 merges the chunks into ``scores.tsv`` (every image) and the selection into ``selected.json``.
"""
import json
import logging
from typing import Dict, List, Optional

import numpy as np

from ..utils import atomic_write

__all__ = [
    "ranking_metrics",
    "score_pool",
    "merge_chunks",
    "select_top",
    "write_scores",
    "write_selection",
    "plot_score_histogram",
    "max_score_per_image",
]

logger = logging.getLogger(__name__)

_SUFFIX = ".npz"


def ranking_metrics(scores, positive, k: int) -> Dict[str, float]:
    """AUC, precision@k and recall@k of ``scores`` against the binary truth ``positive``.

    Ties at the k-th score are broken by position (stable sort on descending score), as in selection.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError(f"scores and truth must be 1-D of one length, got {scores.shape} and {positive.shape}")
    k = int(min(max(k, 0), len(scores)))
    order = np.argsort(-scores, kind="stable")
    hits = int(positive[order[:k]].sum())
    n_pos = int(positive.sum())
    both = 0 < n_pos < len(scores)
    return {
        "AUC": float(roc_auc_score(positive, scores)) if both else float("nan"),
        "precision@K": hits / k if k else float("nan"),
        "recall@K": hits / n_pos if n_pos else float("nan"),
        "K": k,
    }


def score_pool(model, dicts: List[dict], out_dir: str, *, mapper, batch_size: int = 32,
               num_workers: int = 2, chunk_size: int = 4096, rank: int = 0, world_size: int = 1,
               progress: bool = True) -> int:
    """Scores this rank's chunks of ``dicts`` that are not finished yet (resumable, sharded: see
    :mod:`pudet.data.chunked`). Returns how many images it scored.

    ``model`` maps a list of mapped dicts to ``[{"pu_score": tensor}]`` (unreadable inputs, which carry
    ``"unreadable"``, are not passed to it).
    """
    from ..data.chunked import run_chunked

    def predict(batch):
        return [(x["image_id"], float(o["pu_score"])) for x, o in zip(batch, model(batch))]

    def save_chunk(f, records, bad):
        np.savez(f, ids=np.asarray([i for i, _ in records], dtype=np.int64),
                 scores=np.asarray([s for _, s in records], dtype=np.float32),
                 bad_ids=np.asarray([i for i, _ in bad], dtype=np.int64),
                 bad_reasons=np.asarray([r for _, r in bad], dtype=str))

    model.eval()
    return run_chunked(dicts, out_dir, mapper=mapper, predict=predict, save_chunk=save_chunk, suffix=_SUFFIX,
                       batch_size=batch_size, num_workers=num_workers, chunk_size=chunk_size, rank=rank,
                       world_size=world_size, progress=progress, desc="scoring")


def merge_chunks(out_dir: str, num_images: int, chunk_size: int):
    """Reads every chunk. Returns (ids (N,), scores (N,) float32, [(image_id, "file<TAB>reason")])."""
    from ..data.chunked import finished_chunks

    ids, scores, bad = [], [], []
    for path in finished_chunks(out_dir, num_images, chunk_size, _SUFFIX):
        with np.load(path) as z:
            ids.append(z["ids"])
            scores.append(z["scores"])
            bad.extend(zip(z["bad_ids"].tolist(), z["bad_reasons"].tolist()))
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
    images = [{"file_name": file_names[int(ids[j])], "image_id": int(ids[j]), "score": float(scores[j])} for j in chosen]
    atomic_write(path, lambda f: json.dump({"summary": summary, "images": images}, f, indent=1))


def plot_score_histogram(path: str, scores, positive=None, title: str = "PU scores"):
    """A histogram PNG of the scores; split into hidden positives and negatives when ``positive`` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.asarray(scores, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    bins = np.linspace(scores.min(), scores.max() + 1e-9, 50) if len(scores) else 10
    if positive is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=f"all ({len(scores)})")
    else:
        positive = np.asarray(positive, dtype=bool)
        ax.hist(scores[~positive], bins=bins, color="tab:red", alpha=0.6, label=f"hidden negatives ({(~positive).sum()})")
        ax.hist(scores[positive], bins=bins, color="tab:green", alpha=0.6, label=f"hidden positives ({positive.sum()})")
    ax.set_xlabel("PU score g(x)")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"), mode="wb")
    plt.close(fig)
