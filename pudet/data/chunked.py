"""Resumable, sharded, batched inference over a (possibly huge) list of dataset dicts.

The dicts are cut into fixed chunks of consecutive images; chunk ``c`` belongs to rank ``c % world_size``.
Each finished chunk is written atomically to ``<out>/chunks/chunk_<c>.npz``, so a run killed at any point
and restarted with the same arguments skips the finished chunks (:class:`ChunkedInference`); inference being
deterministic, the merged result equals an uninterrupted run's. A run with other images, weights, config or
options is refused in a folder holding another job's chunks (``chunks/manifest.json`` records what determines
them). Memory holds one chunk's small per-image records, never its images. Unreadable images (the mapper returns
``{"image_id", "file_name", "unreadable": reason}``) are recorded with their reason (:class:`Unreadable`) and
never stop the run. ``purify_net.py select`` and ``label`` both run on it.
"""
import hashlib
import json
import logging
import os
import shutil
import time
from typing import Callable, Dict, List, NamedTuple, Tuple

import numpy as np
import torch
from detectron2.utils import comm

from ..utils import atomic_write, file_sha256
from .build import build_batched_inference_loader

__all__ = ["ChunkedInference", "Unreadable", "default_inference_workers", "describe_job", "read_chunks",
           "write_unreadable"]

logger = logging.getLogger(__name__)

# config keys that do not change a result: where outputs go, how many loader processes read the images
_NEUTRAL_KEYS = ("OUTPUT_DIR", "DATALOADER.NUM_WORKERS")
# a chunk's arrays of its unreadable images
_UNREADABLE_KEYS = ("bad_ids", "bad_files", "bad_reasons")


class Unreadable(NamedTuple):
    """An image of the pool that could not be decoded, and why."""

    image_id: int
    file_name: str
    reason: str


def default_inference_workers(cfg) -> int:
    """The loader workers of ``purify_net.py select`` by default: ``DATALOADER.NUM_WORKERS``, but none for a
    model on the CPU (``MODEL.DEVICE``) of a machine of at most 2 cores, where workers decoding images take the
    cores from the forward's threads (``label``, whose forward is heavier per image, keeps
    ``DATALOADER.NUM_WORKERS``; why: BENCHMARKS.md, Design notes)."""
    if cfg.MODEL.DEVICE.startswith("cpu") and (os.cpu_count() or 1) <= 2:
        return 0
    return cfg.DATALOADER.NUM_WORKERS


def _chunk_path(out_dir, c):
    return os.path.join(out_dir, "chunks", f"chunk_{c:06d}.npz")


def _flatten(node, prefix=""):
    out = {}
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif key not in _NEUTRAL_KEYS:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def describe_job(cfg=None, weights: str = None, **options) -> dict:
    """What determines a chunked run's results besides its images, for :class:`ChunkedInference`'s ``job``: the
    weights file's identity (size and SHA-256: the same file under another path is the same job, a file
    retrained in place is not), every config value (except where outputs go and the loader's worker count),
    and ``options`` (e.g. a score floor)."""
    job = dict(options)
    if weights is not None:
        job["weights"] = {"size": os.path.getsize(weights), "sha256": file_sha256(weights)}
    if cfg is not None:
        job["config"] = json.loads(json.dumps(_flatten(cfg), default=str))
    return job


def _image_list_digest(dicts) -> str:
    h = hashlib.sha256()
    for d in dicts:
        h.update(f"{d['image_id']}\t{d['file_name']}\n".encode())
    return h.hexdigest()


def _short(v):
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _differences(found: dict, manifest: dict) -> List[str]:
    """Human-readable differences between a folder's manifest and this run's, config keys one by one."""
    diffs = []
    for key in sorted(set(found) | set(manifest)):
        a, b = found.get(key), manifest.get(key)
        if a == b:
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"config {k} ({_short(a.get(k))} there, {_short(b.get(k))} now)"
                      for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif key not in found:
            diffs.append(f"{key} (not recorded there: written by an older pudet)")
        else:
            diffs.append(f"{key} ({_short(a)} there, {_short(b)} now)")
    return diffs


def _check_manifest(out_dir, manifest, rank, overwrite):
    folder = os.path.join(out_dir, "chunks")
    path = os.path.join(folder, "manifest.json")
    if overwrite and rank == 0 and os.path.isdir(folder):
        logger.info(f"Overwriting the chunks in {folder}")
        shutil.rmtree(folder)
    if os.path.isfile(path) and not overwrite:
        with open(path) as f:
            found = json.load(f)
        diffs = _differences(found, manifest)
        if diffs:
            raise ValueError(
                f"{out_dir} holds results of another job; it differs in: {'; '.join(diffs)}. Resuming would reuse "
                "or mix them: choose another output folder, or start again in this one (--overwrite)"
            )
    elif rank == 0:
        atomic_write(path, lambda f: json.dump(manifest, f))
    comm.synchronize()  # with --overwrite, rank 0 clears the folder before any rank looks for finished chunks


class ChunkedInference:
    """One resumable, sharded, batched inference job writing into ``out_dir/chunks``, on this process's rank of
    ``detectron2.utils.comm`` (its progress bar on the main process).

    A folder holding chunks of another job is refused, naming what differs: the manifest
    (``chunks/manifest.json``) records ``kind``, the images (their count and a digest of their ids and file
    names, in order), the chunk and batch sizes (a batch pads its images together, which can change results)
    and ``job`` (see :func:`describe_job`). ``overwrite`` deletes the folder's chunks first.

    Each chunk is one ``.npz`` file: the arrays that ``pack`` makes of its records, and the chunk's unreadable
    images (written and read here only: :meth:`read` returns them as :class:`Unreadable`).
    """

    def __init__(self, out_dir: str, *, kind: str, mapper, batch_size: int, chunk_size: int, num_workers: int,
                 job: dict = None, overwrite: bool = False):
        self.out_dir = out_dir
        self.kind = kind
        self.mapper = mapper
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.num_workers = num_workers
        self.job = job or {}
        self.overwrite = overwrite

    def run(self, dicts: List[dict], predict: Callable, pack: Callable) -> int:
        """Runs this rank's unfinished chunks of ``dicts``. Returns how many images it processed.

        Args:
            predict: maps a list of readable mapped dicts to one small record per image (no image tensors).
            pack: ``pack(records) -> {name: array}``, the arrays a chunk holds of its records.
        """
        from tqdm import tqdm

        rank, world_size = comm.get_rank(), comm.get_world_size()
        manifest = {"kind": self.kind, "num_images": len(dicts), "image list": _image_list_digest(dicts),
                    "chunk_size": self.chunk_size, "batch_size": self.batch_size, **self.job}
        os.makedirs(self.out_dir, exist_ok=True)
        _check_manifest(self.out_dir, json.loads(json.dumps(manifest)), rank, self.overwrite)
        size = self.chunk_size
        num_chunks = (len(dicts) + size - 1) // size
        mine = [c for c in range(num_chunks) if c % world_size == rank]
        todo = [c for c in mine if not os.path.isfile(_chunk_path(self.out_dir, c))]
        total = sum(min(size, len(dicts) - c * size) for c in todo)
        if len(todo) < len(mine):
            logger.info(f"Resuming: {len(mine) - len(todo)} of this rank's {len(mine)} chunks are already done")
        bar = tqdm(total=total, unit="img", desc=self.kind, disable=not comm.is_main_process(), smoothing=0.1)
        # one loader over every chunk to do (its workers start once and read ahead across chunks), batched chunk
        # by chunk; each chunk is written when its last batch is done
        parts = [dicts[c * size: (c + 1) * size] for c in todo]
        if parts:
            loader = iter(build_batched_inference_loader([d for p in parts for d in p], self.mapper,
                                                         self.batch_size, self.num_workers, size))
        start, done = time.perf_counter(), 0
        with torch.no_grad():
            for c, part in zip(todo, parts):
                records, bad = [], []
                for _ in range(0, len(part), self.batch_size):
                    batch = next(loader)
                    good = [x for x in batch if "unreadable" not in x]
                    bad.extend(Unreadable(x["image_id"], x["file_name"], x["unreadable"]) for x in batch
                               if "unreadable" in x)
                    if good:
                        records.extend(predict(good))
                    bar.update(len(batch))
                    done += len(batch)
                    bar.set_postfix_str(f"{done / max(time.perf_counter() - start, 1e-9):.1f} img/s")
                arrays = {**pack(records), **_unreadable_arrays(bad)}
                atomic_write(_chunk_path(self.out_dir, c), lambda f: np.savez(f, **arrays), mode="wb")
        bar.close()
        elapsed = time.perf_counter() - start
        if done:
            logger.info(f"{self.kind}: {done} images in {elapsed:.1f}s ({done / elapsed:.1f} img/s)")
        return done

    def read(self, num_images: int) -> Tuple[List[Dict[str, np.ndarray]], List[Unreadable]]:
        """Every chunk's arrays (as ``pack`` made them), in order, and the unreadable images; a missing chunk is
        a FileNotFoundError naming it."""
        return read_chunks(self.out_dir, num_images, self.chunk_size)


def read_chunks(out_dir: str, num_images: int, chunk_size: int) -> Tuple[List[Dict[str, np.ndarray]],
                                                                         List[Unreadable]]:
    """The chunks of a finished :class:`ChunkedInference` in ``out_dir``: each chunk's arrays, in order, and
    the unreadable images. Raises FileNotFoundError naming the first chunk missing."""
    chunks, bad = [], []
    for c in range((num_images + chunk_size - 1) // chunk_size):
        path = _chunk_path(out_dir, c)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"chunk {c} is missing ({path}): the run did not finish")
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        bad.extend(map(Unreadable, *(arrays.pop(k).tolist() for k in _UNREADABLE_KEYS)))
        chunks.append(arrays)
    return chunks, bad


def _unreadable_arrays(bad: List[Unreadable]) -> Dict[str, np.ndarray]:
    return dict(zip(_UNREADABLE_KEYS, (np.asarray([b.image_id for b in bad], dtype=np.int64),
                                      np.asarray([b.file_name for b in bad], dtype=str),
                                      np.asarray([b.reason for b in bad], dtype=str))))


def write_unreadable(path: str, bad: List[Unreadable]) -> None:
    """Writes the unreadable images of a run as TSV (image_id, file_name, reason), atomically."""
    atomic_write(path, lambda f: f.writelines(
        ["image_id\tfile_name\treason\n"] + [f"{b.image_id}\t{b.file_name}\t{b.reason}\n" for b in bad]))
