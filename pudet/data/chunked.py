"""Resumable, sharded, batched inference over a (possibly huge) list of dataset dicts.

The dicts are cut into fixed chunks of consecutive images; chunk ``c`` belongs to rank ``c % world_size``.
Each finished chunk is written atomically to ``<out>/chunks/chunk_<c><suffix>``, so a run killed at any
point and restarted with the same arguments skips the finished chunks; inference being deterministic, the
merged result equals an uninterrupted run's. Memory holds one chunk's small per-image records, never its
images. Unreadable images (the mapper returns ``{"image_id", "file_name", "unreadable": reason}``) are
recorded with their reason and never stop the run. ``purify_net.py select`` and ``label`` both run on it.
"""
import json
import logging
import os
import time
from typing import Callable, Iterator, List

import torch

from ..utils import atomic_write
from .build import build_batched_inference_loader

__all__ = ["run_chunked", "finished_chunks", "write_unreadable"]

logger = logging.getLogger(__name__)


def _chunk_path(out_dir, c, suffix):
    return os.path.join(out_dir, "chunks", f"chunk_{c:06d}{suffix}")


def _check_manifest(out_dir, manifest, rank):
    path = os.path.join(out_dir, "chunks", "manifest.json")
    if os.path.isfile(path):
        with open(path) as f:
            found = json.load(f)
        if found != manifest:
            raise ValueError(
                f"{out_dir} holds results of another run ({found}, now {manifest}): use another output "
                "folder, or delete its chunks/ to start over"
            )
    elif rank == 0:
        atomic_write(path, lambda f: json.dump(manifest, f))


def run_chunked(dicts: List[dict], out_dir: str, *, mapper, predict: Callable, save_chunk: Callable,
                suffix: str, batch_size: int, num_workers: int, chunk_size: int, rank: int = 0,
                world_size: int = 1, progress: bool = True, desc: str = "inference", manifest: dict = None) -> int:
    """Runs this rank's unfinished chunks of ``dicts``. Returns how many images it processed.

    Args:
        predict: maps a list of readable mapped dicts to one small record per image (no image tensors).
        save_chunk: ``save_chunk(f, records, bad)`` writes a chunk to the open binary file ``f``; ``bad`` is
            ``[(image_id, "file_name<TAB>reason")]``.
        suffix: the chunk files' extension.
        manifest: extra facts that must match to resume (the pool size and chunk size always must).
    """
    from tqdm import tqdm

    os.makedirs(os.path.join(out_dir, "chunks"), exist_ok=True)
    _check_manifest(out_dir, {"num_images": len(dicts), "chunk_size": chunk_size, **(manifest or {})}, rank)
    num_chunks = (len(dicts) + chunk_size - 1) // chunk_size
    mine = [c for c in range(num_chunks) if c % world_size == rank]
    todo = [c for c in mine if not os.path.isfile(_chunk_path(out_dir, c, suffix))]
    total = sum(min(chunk_size, len(dicts) - c * chunk_size) for c in todo)
    if len(todo) < len(mine):
        logger.info(f"Resuming: {len(mine) - len(todo)} of this rank's {len(mine)} chunks are already done")
    bar = tqdm(total=total, unit="img", desc=desc, disable=not progress, smoothing=0.1)
    start, done = time.perf_counter(), 0
    with torch.no_grad():
        for c in todo:
            part = dicts[c * chunk_size: (c + 1) * chunk_size]
            records, bad = [], []
            for batch in build_batched_inference_loader(part, mapper, batch_size, num_workers):
                good = [x for x in batch if "unreadable" not in x]
                bad.extend((x["image_id"], f"{x['file_name']}\t{x['unreadable']}") for x in batch if "unreadable" in x)
                if good:
                    records.extend(predict(good))
                bar.update(len(batch))
                done += len(batch)
                bar.set_postfix_str(f"{done / max(time.perf_counter() - start, 1e-9):.1f} img/s")
            atomic_write(_chunk_path(out_dir, c, suffix), lambda f: save_chunk(f, records, bad), mode="wb")
    bar.close()
    elapsed = time.perf_counter() - start
    if done:
        logger.info(f"{desc}: {done} images in {elapsed:.1f}s ({done / elapsed:.1f} img/s)")
    return done


def finished_chunks(out_dir: str, num_images: int, chunk_size: int, suffix: str) -> Iterator[str]:
    """The paths of every chunk in order; raises FileNotFoundError naming the first one missing."""
    for c in range((num_images + chunk_size - 1) // chunk_size):
        path = _chunk_path(out_dir, c, suffix)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"chunk {c} is missing ({path}): the run did not finish")
        yield path


def write_unreadable(path: str, bad) -> None:
    """Writes the unreadable images of a run (``[(image_id, "file_name<TAB>reason")]``) as TSV, atomically."""
    atomic_write(path, lambda f: f.writelines(["image_id\tfile_name\treason\n"] + [f"{i}\t{r}\n" for i, r in bad]))
