"""The purification steps of ``tools/purify_net.py``: training the PU classifier (the paper's image head, or the
region head) and choosing U^P from a pool with it (or U^C by the teacher's confidence)."""
import os

from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils import comm

from ..data.chunked import ChunkedInference, default_inference_workers, describe_job
from ..data.mappers import PUDatasetMapper
from ..modeling.checkpoint import load_weights_strictly
from .image_head import score_pool, select_by_pu_scores, train_image_head
from .region_head import score_pool_regions, select_by_region_head, train_region_pu
from .selection_files import select_by_teacher_confidence

__all__ = ["select_pool", "train_purifier"]


def train_purifier(cfg, *, resume: bool = False, eval_only: bool = False) -> dict:
    """Trains (or with ``eval_only`` evaluates) the PU classifier of ``cfg.PU.HEAD`` into ``OUTPUT_DIR``
    (:func:`~pudet.purification.image_head.train_image_head`, :func:`~pudet.purification.region_head.train_region_pu`).
    Returns the held-out validation results and the prior used (``{}`` on the other ranks of the region head)."""
    if cfg.PU.HEAD == "region":
        return train_region_pu(cfg)
    return train_image_head(cfg, resume=resume, eval_only=eval_only)


def select_pool(cfg, *, weights: str, dataset: str = "", by: str = "pu", pseudo_labels: str = "", topk=None,
                threshold=None, batch_size: int = 32, chunk_size: int = 4096, num_workers=None,
                overwrite: bool = False):
    """Scores every image of ``dataset`` (default ``PU.UNLABELED_DATASETS[0]``) with the PU classifier
    ``weights`` (of ``cfg.PU.HEAD``), or with ``by="teacher-confidence"`` by its best box in the pool's
    ``pseudo_labels``, and writes the selection (the ``topk`` best, or those scoring at least ``threshold``;
    default K = n_l) to ``OUTPUT_DIR``. Returns the selection's summary on the main process, None on the others."""
    out = cfg.OUTPUT_DIR
    if by == "teacher-confidence":
        if not comm.is_main_process():
            return None
        return select_by_teacher_confidence(cfg, pseudo_labels, out, topk=topk, threshold=threshold)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"PU classifier weights {weights} not found: train it first or pass --weights")
    dataset = dataset or cfg.PU.UNLABELED_DATASETS[0]
    dicts = DatasetCatalog.get(dataset)
    if cfg.PU.HEAD == "region":
        scored = score_pool_regions(cfg, weights, dataset, num_workers=num_workers)
        if not comm.is_main_process():
            return None
        return select_by_region_head(cfg, dataset, dicts, out, scored, topk=topk, threshold=threshold,
                                     weights=weights)
    model = build_model(cfg)  # not PUTrainer's: its PU.INIT_FROM_DETECTOR is overwritten by the weights anyway
    load_weights_strictly(model, weights)
    score_pool(model, dicts, ChunkedInference(
        out, kind="pu-scores", mapper=PUDatasetMapper(cfg, False), batch_size=batch_size, chunk_size=chunk_size,
        num_workers=default_inference_workers(cfg) if num_workers is None else num_workers,
        job=describe_job(cfg, weights), overwrite=overwrite))
    comm.synchronize()
    if not comm.is_main_process():
        return None
    return select_by_pu_scores(cfg, dataset, dicts, out, chunk_size=chunk_size, topk=topk, threshold=threshold,
                               weights=weights)
