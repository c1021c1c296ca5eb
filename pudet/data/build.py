"""Loaders: PU training batches (labeled and unlabeled images in every batch), the PU train/holdout
splits, and a batched, sharded inference loader over a slice of a dataset."""
import logging

import numpy as np
import torch.utils.data as torchdata
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.data.build import trivial_batch_collator
from detectron2.data.common import DatasetFromList, MapDataset
from detectron2.utils import comm

from .mappers import PUDatasetMapper

__all__ = ["PU_SPLITS", "register_pu_splits", "build_pu_train_loader", "build_batched_inference_loader"]

logger = logging.getLogger(__name__)

PU_SPLITS = ("pu_train_labeled", "pu_train_unlabeled", "pu_holdout")
_SPLIT_SEED = 20210619


def _holdout_mask(n: int, fraction: float, cap: int) -> np.ndarray:
    """A fixed (seeded) subset of ``n`` items: round(fraction * n) of them, at most ``cap``."""
    count = min(int(round(fraction * n)), cap)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(_SPLIT_SEED).permutation(n)[:count]] = True
    return mask


def _labeled_dicts(names, label):
    dicts = []
    for name in names:
        for d in DatasetCatalog.get(name):
            dicts.append({"file_name": d["file_name"], "image_id": d["image_id"], "pu_label": label})
    return dicts


def register_pu_splits(cfg) -> None:
    """Registers ``pu_train_labeled``, ``pu_train_unlabeled`` and ``pu_holdout`` from ``cfg.PU``'s
    labeled (positive) and unlabeled datasets. Each image carries ``pu_label`` (1 labeled, 0 unlabeled).
    A fixed, seeded ``PU.HOLDOUT_FRACTION`` (capped at ``PU.HOLDOUT_MAX``) of each side is held out:
    ``pu_holdout`` holds both held-out parts, the train splits the rest. Lazy and idempotent; the
    hidden truth of a single unlabeled dataset that has one (``truth_json``) is passed on to
    ``pu_holdout``'s metadata for validation."""
    sources = {
        "labeled": list(cfg.PU.LABELED_DATASETS),
        "unlabeled": list(cfg.PU.UNLABELED_DATASETS),
        "holdout": [cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX],
    }
    if not sources["labeled"] or not sources["unlabeled"]:
        raise ValueError("PU.LABELED_DATASETS and PU.UNLABELED_DATASETS must each name at least one dataset")
    if PU_SPLITS[0] in DatasetCatalog.list():
        if MetadataCatalog.get(PU_SPLITS[0]).pu_sources != sources:
            raise ValueError("the PU splits are already registered from other datasets in this process")
        return
    frac, cap = cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX

    def split(side, holdout):
        names, label = (sources["labeled"], 1) if side == "labeled" else (sources["unlabeled"], 0)
        dicts = _labeled_dicts(names, label)
        mask = _holdout_mask(len(dicts), frac, cap)
        return [d for d, m in zip(dicts, mask) if m == holdout]

    DatasetCatalog.register(PU_SPLITS[0], lambda: split("labeled", False))
    DatasetCatalog.register(PU_SPLITS[1], lambda: split("unlabeled", False))
    DatasetCatalog.register(PU_SPLITS[2], lambda: split("labeled", True) + split("unlabeled", True))
    truths = [MetadataCatalog.get(n).get("truth_json", None) for n in sources["unlabeled"]]
    for name in PU_SPLITS:
        MetadataCatalog.get(name).set(pu_sources=sources, evaluator_type="pu")
    if len(truths) == 1 and truths[0]:
        MetadataCatalog.get(PU_SPLITS[2]).set(truth_json=truths[0])


class _ConcatBatches:
    """Iterates two infinite batch loaders together, yielding the concatenation of one batch of each."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __iter__(self):
        for a, b in zip(self.first, self.second):
            yield a + b


def build_pu_train_loader(cfg, mapper=None):
    """Infinite loader of PU training batches: each batch (per GPU) holds ``PU.LABELED_FRACTION`` of
    ``SOLVER.IMS_PER_BATCH`` labeled images (``pu_label`` 1) and the rest unlabeled (``pu_label`` 0),
    each side drawn by detectron2's ``TrainingSampler`` (shuffled, seeded, sharded across ranks)."""
    total = cfg.SOLVER.IMS_PER_BATCH
    n_labeled = int(round(total * cfg.PU.LABELED_FRACTION))
    n_unlabeled = total - n_labeled
    world = comm.get_world_size()
    if n_labeled < world or n_unlabeled < world or n_labeled % world or n_unlabeled % world:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={total} with PU.LABELED_FRACTION={cfg.PU.LABELED_FRACTION} gives "
            f"{n_labeled} labeled + {n_unlabeled} unlabeled images per batch; each must be a positive "
            f"multiple of the number of GPUs ({world})"
        )
    mapper = mapper or PUDatasetMapper(cfg, True)
    loaders = [
        build_detection_train_loader(
            dataset=DatasetCatalog.get(name), mapper=mapper, total_batch_size=n,
            aspect_ratio_grouping=False, num_workers=cfg.DATALOADER.NUM_WORKERS,
        )
        for name, n in ((PU_SPLITS[0], n_labeled), (PU_SPLITS[1], n_unlabeled))
    ]
    logger.info(f"PU batches: {n_labeled} labeled + {n_unlabeled} unlabeled images (all GPUs together)")
    return _ConcatBatches(*loaders)


def build_batched_inference_loader(dicts, mapper, batch_size: int, num_workers: int):
    """A loader over ``dicts`` in order, ``batch_size`` per batch, as lists of mapped dicts."""
    dataset = MapDataset(DatasetFromList(dicts, copy=False, serialize=False), mapper)
    return torchdata.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=trivial_batch_collator, drop_last=False,
    )
