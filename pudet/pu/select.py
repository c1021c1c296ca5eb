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
import os
import time
from typing import Dict, List, Optional

import numpy as np
import torch

__all__ = [
    "ranking_metrics",
    "score_pool",
    "merge_chunks",
    "select_top",
    "write_scores",
    "write_selection",
    "atomic_write",
    "plot_score_histogram",
]

logger = logging.getLogger(__name__)


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


def atomic_write(path: str, write_fn, mode: str = "w") -> None:
    """Calls ``write_fn(f)`` on a temporary file, then renames it to ``path``: never a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    with open(tmp, mode) as f:
        write_fn(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _chunk_path(out_dir, c):
    return os.path.join(out_dir, "chunks", f"chunk_{c:06d}.npz")


def score_pool(model, dicts: List[dict], out_dir: str, *, mapper, batch_size: int = 32,
               num_workers: int = 2, chunk_size: int = 4096, rank: int = 0, world_size: int = 1,
               progress: bool = True) -> int:
    """Scores this rank's chunks of ``dicts`` that are not finished yet. Returns how many images it scored.

    ``model`` maps a list of mapped dicts to ``[{"pu_score": tensor}]`` (unreadable inputs, which carry
    ``"unreadable"``, are not passed to it). A manifest (pool size, chunk size) guards against resuming
    with other arguments.
    """
    from tqdm import tqdm

    from ..data.build import build_batched_inference_loader

    os.makedirs(os.path.join(out_dir, "chunks"), exist_ok=True)
    _check_manifest(out_dir, len(dicts), chunk_size, rank)
    num_chunks = (len(dicts) + chunk_size - 1) // chunk_size
    mine = [c for c in range(num_chunks) if c % world_size == rank]
    todo = [c for c in mine if not os.path.isfile(_chunk_path(out_dir, c))]
    total = sum(min(chunk_size, len(dicts) - c * chunk_size) for c in todo)
    if len(todo) < len(mine):
        logger.info(f"Resuming: {len(mine) - len(todo)} of this rank's {len(mine)} chunks are already scored")
    bar = tqdm(total=total, unit="img", desc="scoring", disable=not progress, smoothing=0.1)
    start, done = time.perf_counter(), 0
    model.eval()
    with torch.no_grad():
        for c in todo:
            part = dicts[c * chunk_size: (c + 1) * chunk_size]
            ids, scores, bad_ids, bad_reasons = [], [], [], []
            for batch in build_batched_inference_loader(part, mapper, batch_size, num_workers):
                good = [x for x in batch if "unreadable" not in x]
                for x in batch:
                    if "unreadable" in x:
                        bad_ids.append(x["image_id"])
                        bad_reasons.append(f"{x['file_name']}\t{x['unreadable']}")
                if good:
                    out = model(good)
                    ids.extend(x["image_id"] for x in good)
                    scores.extend(float(o["pu_score"]) for o in out)
                bar.update(len(batch))
                done += len(batch)
                bar.set_postfix_str(f"{done / max(time.perf_counter() - start, 1e-9):.1f} img/s")
            atomic_write(
                _chunk_path(out_dir, c),
                lambda f: np.savez(f, ids=np.asarray(ids, dtype=np.int64), scores=np.asarray(scores, dtype=np.float32),
                                   bad_ids=np.asarray(bad_ids, dtype=np.int64), bad_reasons=np.asarray(bad_reasons, dtype=str)),
                mode="wb",
            )
    bar.close()
    elapsed = time.perf_counter() - start
    if done:
        logger.info(f"Scored {done} images in {elapsed:.1f}s ({done / elapsed:.1f} img/s)")
    return done


def _check_manifest(out_dir, num_images, chunk_size, rank):
    path = os.path.join(out_dir, "chunks", "manifest.json")
    manifest = {"num_images": num_images, "chunk_size": chunk_size}
    if os.path.isfile(path):
        with open(path) as f:
            found = json.load(f)
        if found != manifest:
            raise ValueError(
                f"{out_dir} holds scores of another run ({found}, now {manifest}): use another output "
                "folder, or delete its chunks/ to start over"
            )
    elif rank == 0:
        atomic_write(path, lambda f: json.dump(manifest, f))


def merge_chunks(out_dir: str, num_images: int, chunk_size: int):
    """Reads every chunk. Returns (ids (N,), scores (N,) float32, [(image_id, "file<TAB>reason")])."""
    num_chunks = (num_images + chunk_size - 1) // chunk_size
    ids, scores, bad = [], [], []
    for c in range(num_chunks):
        path = _chunk_path(out_dir, c)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"chunk {c} is missing ({path}): scoring did not finish")
        with np.load(path) as z:
            ids.append(z["ids"])
            scores.append(z["scores"])
            bad.extend(zip(z["bad_ids"].tolist(), z["bad_reasons"].tolist()))
    return np.concatenate(ids), np.concatenate(scores), bad


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
