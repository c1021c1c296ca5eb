"""Loaders: PU training batches (labeled and unlabeled images in every batch), the PU train/holdout
splits, the student's batches over L and pseudo-labelled U^P, and a batched inference loader."""
import logging
from dataclasses import dataclass

import numpy as np
import torch.utils.data as torchdata
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog, build_detection_train_loader
from detectron2.data.build import get_detection_dataset_dicts, trivial_batch_collator
from detectron2.data.common import DatasetFromList, MapDataset, ToIterableDataset
from detectron2.data.samplers import TrainingSampler
from detectron2.utils import comm

from ..config import pseudo_score_thresh
from .datasets.pseudo_labeled import check_pseudo_categories, pseudo_dataset_name
from .mappers import PseudoLabelMapper, PUDatasetMapper

__all__ = [
    "PUSplits",
    "register_pu_splits",
    "build_pu_train_loader",
    "build_expanded_train_loader",
    "build_batched_inference_loader",
    "build_skipping_train_loader",
]

logger = logging.getLogger(__name__)

_SPLIT_SEED = 20210619


@dataclass(frozen=True)
class PUSplits:
    """The dataset names of one PU configuration's splits: ``<PU.SPLITS_PREFIX>_train_labeled``,
    ``_train_unlabeled`` and ``_holdout`` (a process holds several configurations under several prefixes)."""

    train_labeled: str
    train_unlabeled: str
    holdout: str

    @classmethod
    def from_config(cls, cfg) -> "PUSplits":
        prefix = cfg.PU.SPLITS_PREFIX
        return cls(f"{prefix}_train_labeled", f"{prefix}_train_unlabeled", f"{prefix}_holdout")


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


def register_pu_splits(cfg) -> PUSplits:
    """Registers the :class:`PUSplits` of ``cfg`` (by default ``pu_train_labeled``, ``pu_train_unlabeled``
    and ``pu_holdout``) from ``cfg.PU``'s labeled (positive) and unlabeled datasets, and returns their names.
    Each image carries ``pu_label`` (1 labeled, 0 unlabeled). A fixed, seeded ``PU.HOLDOUT_FRACTION``
    (capped at ``PU.HOLDOUT_MAX``) of each side is held out: the holdout split holds both held-out parts, the
    train splits the rest. Lazy and idempotent; the hidden truth of a single unlabeled dataset that has one
    (``truth_json``) is passed on to the holdout split's metadata for validation."""
    sources = {
        "labeled": list(cfg.PU.LABELED_DATASETS),
        "unlabeled": list(cfg.PU.UNLABELED_DATASETS),
        "holdout": [cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX],
    }
    if not sources["labeled"] or not sources["unlabeled"]:
        raise ValueError("PU.LABELED_DATASETS and PU.UNLABELED_DATASETS must each name at least one dataset")
    splits = PUSplits.from_config(cfg)
    if splits.train_labeled in DatasetCatalog.list():
        if MetadataCatalog.get(splits.train_labeled).pu_sources != sources:
            raise ValueError(f"the PU splits '{cfg.PU.SPLITS_PREFIX}_*' are already registered from other datasets "
                             "in this process: set another PU.SPLITS_PREFIX")
        return splits
    frac, cap = cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX

    def split(side, holdout):
        names, label = (sources["labeled"], 1) if side == "labeled" else (sources["unlabeled"], 0)
        dicts = _labeled_dicts(names, label)
        mask = _holdout_mask(len(dicts), frac, cap)
        return [d for d, m in zip(dicts, mask) if m == holdout]

    DatasetCatalog.register(splits.train_labeled, lambda: split("labeled", False))
    DatasetCatalog.register(splits.train_unlabeled, lambda: split("unlabeled", False))
    DatasetCatalog.register(splits.holdout, lambda: split("labeled", True) + split("unlabeled", True))
    truths = [MetadataCatalog.get(n).get("truth_json", None) for n in sources["unlabeled"]]
    for name in (splits.train_labeled, splits.train_unlabeled, splits.holdout):
        MetadataCatalog.get(name).set(pu_sources=sources, evaluator_type="pu")
    if len(truths) == 1 and truths[0]:
        MetadataCatalog.get(splits.holdout).set(truth_json=truths[0])
    return splits


class _SkipUnreadable(torchdata.IterableDataset):
    """Maps the dicts that an iterable dataset yields, skipping those the mapper returns None for (unreadable
    images): the next dict of the sampler's stream takes the place of a skipped one, so the stream stays
    deterministic for a seed. detectron2's own retry for map-style datasets is not used: v0.6 draws the
    replacement with ``random.sample`` on a set, which Python 3.11 refuses. Raises when every image of the
    dataset was skipped with none mapped (a dataset of unreadable images would otherwise loop forever)."""

    def __init__(self, dataset, mapper, size: int):
        self.dataset, self.mapper, self.size = dataset, mapper, size

    def __iter__(self):
        failed = set()
        for d in self.dataset:
            mapped = self.mapper(d)
            if mapped is not None:
                failed.clear()
                yield mapped
                continue
            failed.add(d["file_name"])
            if len(failed) >= self.size:
                raise RuntimeError(f"every one of the {self.size} images of a training dataset is unreadable "
                                   f"(e.g. {d['file_name']}): see the warnings above for the reasons")


def build_skipping_train_loader(dicts, mapper, sampler, **kwargs):
    """detectron2's ``build_detection_train_loader`` over ``dicts`` drawn by ``sampler``, where images that
    ``mapper`` cannot read (it returns None) are skipped: see :class:`_SkipUnreadable`."""
    dataset = _SkipUnreadable(ToIterableDataset(DatasetFromList(dicts, copy=False), sampler), mapper, len(dicts))
    return build_detection_train_loader(dataset=dataset, mapper=None, **kwargs)


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
    splits = PUSplits.from_config(cfg)
    loaders = []
    for name, n in ((splits.train_labeled, n_labeled), (splits.train_unlabeled, n_unlabeled)):
        dicts = DatasetCatalog.get(name)
        loaders.append(build_skipping_train_loader(
            dicts, mapper, TrainingSampler(len(dicts)), total_batch_size=n, aspect_ratio_grouping=False,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        ))
    logger.info(f"PU batches: {n_labeled} labeled + {n_unlabeled} unlabeled images (all GPUs together)")
    return _ConcatBatches(*loaders)


class _AlternatingBatches:
    """Yields whole batches from one loader at a time: ``counts[0]`` batches of the first, then ``counts[1]``
    of the second, and so on, repeated (every rank follows the same pattern, so all ranks step on the same
    source together)."""

    def __init__(self, loaders, counts):
        self.loaders, self.counts = loaders, counts

    def __iter__(self):
        iterators = [iter(loader) for loader in self.loaders]
        while True:
            for it, n in zip(iterators, self.counts):
                for _ in range(n):
                    yield next(it)


def build_expanded_train_loader(cfg, labeled_mapper=None, pseudo_mapper=None):
    """The student's infinite loader over L (``DATASETS.TRAIN``) and the pseudo-labelled datasets of
    ``DATASETS.TRAIN_PSEUDO`` (loaded at tau = ``DATASETS.PSEUDO_SCORE_THRESH``; registered by
    :func:`pudet.data.register_datasets`).

    ``DATALOADER.PSEUDO_BATCHING``:
      * ``"alternate"`` (the paper's): every batch of ``SOLVER.IMS_PER_BATCH`` images comes from one source,
        ``DATALOADER.PSEUDO_BATCHES`` pseudo-labelled batches, then ``DATALOADER.LABELED_BATCHES`` labeled ones;
      * ``"mixed"``: every batch holds both, split in the ratio PSEUDO_BATCHES : LABELED_BATCHES.
    With 1 : 1 (the defaults) half of the images come from each source, the smaller one tiled, as in the authors'
    code (DeFeat.pytorch: even indices of an epoch from L, odd ones from the pool); the epoch's length is
    :mod:`pudet.data.schedule`'s rule. That code's batches mix the two sources (its sampler shuffles the indices);
    the paper's text builds each batch from one source, which ``"alternate"`` does and ``"mixed"`` does not.
    Each source is drawn by its own ``TrainingSampler`` (shuffled, sharded across ranks; seeded by ``SEED``
    when it is >= 0, so the order is deterministic). Labeled images are mapped by detectron2's
    ``DatasetMapper``, pseudo-labelled ones by :class:`PseudoLabelMapper` (plus colour jitter). The
    pseudo-labelled datasets' categories are checked against the labeled set's before training starts.
    """
    pseudo_names = [pseudo_dataset_name(p, pseudo_score_thresh(cfg), cfg.DATASETS.PSEUDO_PU_SCORE_THRESH)
                    for p in cfg.DATASETS.TRAIN_PSEUDO]
    if not pseudo_names or not cfg.DATASETS.TRAIN:
        raise ValueError("build_expanded_train_loader needs DATASETS.TRAIN (labeled) and DATASETS.TRAIN_PSEUDO")
    labeled = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
    pseudo = get_detection_dataset_dicts(pseudo_names, filter_empty=not cfg.DATASETS.PSEUDO_KEEP_EMPTY)
    for name in pseudo_names:
        check_pseudo_categories(name, cfg.DATASETS.TRAIN[0])
    n_pseudo, n_labeled = cfg.DATALOADER.PSEUDO_BATCHES, cfg.DATALOADER.LABELED_BATCHES
    if n_pseudo < 1 or n_labeled < 1:
        raise ValueError(f"DATALOADER.PSEUDO_BATCHES and LABELED_BATCHES must be >= 1, got {n_pseudo}, {n_labeled}")
    seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
    labeled_mapper = labeled_mapper or DatasetMapper(cfg, True)
    pseudo_mapper = pseudo_mapper or PseudoLabelMapper(cfg, True)

    def loader(dicts, mapper, batch_size, offset):
        return build_skipping_train_loader(
            dicts, mapper, TrainingSampler(len(dicts), seed=seed + offset), total_batch_size=batch_size,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING, num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    total = cfg.SOLVER.IMS_PER_BATCH
    mode = cfg.DATALOADER.PSEUDO_BATCHING
    logger.info(f"Training on {len(labeled)} labeled and {len(pseudo)} pseudo-labelled images, {mode} batches "
                f"(pseudo : labeled = {n_pseudo} : {n_labeled})")
    if mode == "alternate":
        return _AlternatingBatches(
            [loader(pseudo, pseudo_mapper, total, 1), loader(labeled, labeled_mapper, total, 0)], [n_pseudo, n_labeled]
        )
    if mode == "mixed":
        per_pseudo = int(round(total * n_pseudo / (n_pseudo + n_labeled)))
        world = comm.get_world_size()
        if min(per_pseudo, total - per_pseudo) < world or per_pseudo % world or (total - per_pseudo) % world:
            raise ValueError(f"SOLVER.IMS_PER_BATCH={total} splits into {per_pseudo} pseudo-labelled + "
                             f"{total - per_pseudo} labeled images: each must be a positive multiple of {world} GPUs")
        return _ConcatBatches(loader(pseudo, pseudo_mapper, per_pseudo, 1),
                              loader(labeled, labeled_mapper, total - per_pseudo, 0))
    raise ValueError(f"DATALOADER.PSEUDO_BATCHING must be 'alternate' or 'mixed', got '{mode}'")


def build_batched_inference_loader(dicts, mapper, batch_size: int, num_workers: int, chunk_size: int = 0):
    """A loader over ``dicts`` in order, ``batch_size`` per batch, as lists of mapped dicts. With ``chunk_size``,
    no batch spans two chunks of ``chunk_size`` consecutive dicts: each chunk is batched as it would be alone.
    The dicts are serialized (detectron2's ``DatasetFromList``), so that workers reading a long list do not
    copy it page by page."""
    dataset = MapDataset(DatasetFromList(dicts, copy=False), mapper)
    chunk_size = chunk_size or max(len(dicts), 1)
    batches = [range(b, min(b + batch_size, c + chunk_size, len(dicts)))
               for c in range(0, len(dicts), chunk_size) for b in range(c, min(c + chunk_size, len(dicts)), batch_size)]
    return torchdata.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                collate_fn=trivial_batch_collator)
