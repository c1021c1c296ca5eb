"""Region bags (:class:`~pudet.modeling.region_pu.Bags`): the frozen detector turns every image of L, of L's
object crops (``PU.REGION.CROP_VIEWS``) and of a pool into a bag of region features, cached under
``PU.REGION.FEATURE_DIR`` (default ``OUTPUT_DIR/features``) in resumable, sharded chunks
(:mod:`pudet.data.chunked`): ``labeled/``, ``crops/`` and one folder per dataset. A folder is read back when it
is complete and was made by the same detector and settings (its manifest), and only one chunk is held in
memory while extracting."""
import os
from typing import List, Tuple

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.utils import comm

from ..data.chunked import ChunkedInference, read_chunks
from ..data.mappers import InferenceMapper, ObjectCropMapper
from ..modeling.region_pu import Bags, RegionFeatureExtractor

__all__ = ["extract_bags", "load_bags", "labeled_bags", "crop_bags", "dataset_bags", "positive_bags", "feature_dir"]

CHUNK_SIZE = 2048
BATCH_SIZE = 16


def feature_dir(cfg) -> str:
    """Where the bags are cached: ``PU.REGION.FEATURE_DIR``, default ``OUTPUT_DIR/features``."""
    return cfg.PU.REGION.FEATURE_DIR or os.path.join(cfg.OUTPUT_DIR, "features")


def _manifest(cfg, extractor, source: str) -> dict:
    weights = cfg.PU.INIT_FROM_DETECTOR
    stat = os.stat(weights)
    return {"kind": "region-features", "source": source, "detector_weights": os.path.abspath(weights),
            "detector_weights_size": stat.st_size, "detector_weights_mtime": int(stat.st_mtime),
            "scales": list(extractor.scales), "topk": extractor.topk, "crop_views": cfg.PU.REGION.CROP_VIEWS,
            "min_size_test": cfg.INPUT.MIN_SIZE_TEST}


def extract_bags(extractor: RegionFeatureExtractor, dicts: List[dict], inference: ChunkedInference) -> int:
    """Extracts this rank's unfinished chunks of region-feature bags (``inference``: resumable, sharded,
    unreadable images recorded). Returns how many images it processed."""

    def predict(batch):
        return [(x["image_id"], o) for x, o in zip(batch, extractor(batch))]

    def pack(records):
        d, n = extractor.feature_dim, extractor.num_instances
        return {"ids": np.asarray([i for i, _ in records], dtype=np.int64),
                "features": np.stack([o["features"].numpy() for _, o in records]).astype(np.float16)
                if records else np.zeros((0, n, d), np.float16),
                "boxes": np.stack([o["boxes"].numpy() for _, o in records]).astype(np.float32)
                if records else np.zeros((0, n, 4), np.float32),
                "valid": np.stack([o["valid"].numpy() for _, o in records]) if records else np.zeros((0, n), bool)}

    return inference.run(dicts, predict, pack)


def load_bags(out_dir: str, num_images: int, chunk_size: int = CHUNK_SIZE) -> Tuple[Bags, list]:
    """Every chunk of ``out_dir`` as one :class:`Bags`, and the unreadable images (a list of
    :class:`~pudet.data.chunked.Unreadable`)."""
    chunks, bad = read_chunks(out_dir, num_images, chunk_size)
    return Bags.concat([Bags(c["ids"], c["features"], c["boxes"], c["valid"]) for c in chunks]), bad


def _bags(cfg, extractor, source: str, dicts: List[dict], mapper, *, features: str, num_workers) -> Tuple[Bags, list]:
    out = os.path.join(features or feature_dir(cfg), source)
    manifest = _manifest(cfg, extractor, source)
    extract_bags(extractor, dicts, ChunkedInference(
        out, kind=manifest.pop("kind"), mapper=mapper, batch_size=BATCH_SIZE, chunk_size=CHUNK_SIZE,
        num_workers=cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers, job=manifest))
    comm.synchronize()
    return load_bags(out, len(dicts))


def _labeled_dicts(cfg) -> List[dict]:
    return [d for n in cfg.PU.LABELED_DATASETS for d in DatasetCatalog.get(n)]


def labeled_bags(cfg, extractor, *, features: str = "", num_workers=None) -> Tuple[Bags, list]:
    """The bags of L (``PU.LABELED_DATASETS``), in ``<features>/labeled`` (default :func:`feature_dir`).
    Returns ``(bags, unreadable)`` on every rank."""
    return _bags(cfg, extractor, "labeled", _labeled_dicts(cfg), InferenceMapper(cfg), features=features,
                 num_workers=num_workers)


def crop_bags(cfg, extractor, *, features: str = "", num_workers=None) -> Tuple[Bags, list]:
    """The bags of ``PU.REGION.CROP_VIEWS`` object crops of each labeled image, in ``<features>/crops``.
    Returns ``(bags, unreadable)`` on every rank."""
    dicts = ObjectCropMapper.crop_dicts(_labeled_dicts(cfg), cfg.PU.REGION.CROP_VIEWS)
    return _bags(cfg, extractor, "crops", dicts, ObjectCropMapper(cfg), features=features, num_workers=num_workers)


def dataset_bags(cfg, extractor, dataset: str, *, features: str = "", num_workers=None) -> Tuple[Bags, list]:
    """The bags of the registered ``dataset`` (e.g. the pool), in ``<features>/<dataset>``. Returns
    ``(bags, unreadable)`` on every rank."""
    return _bags(cfg, extractor, dataset, DatasetCatalog.get(dataset), InferenceMapper(cfg), features=features,
                 num_workers=num_workers)


def positive_bags(cfg, extractor, **kwargs) -> List[Bags]:
    """The positive bags: L's, then L's object crops when ``PU.REGION.CROP_VIEWS`` > 0 (keyword arguments as
    :func:`labeled_bags`)."""
    sources = [labeled_bags(cfg, extractor, **kwargs)[0]]
    if cfg.PU.REGION.CROP_VIEWS > 0:
        sources.append(crop_bags(cfg, extractor, **kwargs)[0])
    return sources
