"""Steps of the purification workflow that tools/purify_net.py runs: class-prior estimation before PU
training, and scoring a pool with a trained PU classifier."""
import logging

import numpy as np
import torch
from detectron2.data import DatasetCatalog

from ..data.build import PU_SPLITS, build_batched_inference_loader
from ..data.mappers import PUDatasetMapper
from ..pu.prior import estimate_prior

__all__ = ["pooled_features", "estimate_prior_from_splits"]

logger = logging.getLogger(__name__)


def pooled_features(model, dicts, mapper, batch_size: int, num_workers: int) -> np.ndarray:
    """(N, C) pooled backbone features of the readable images of ``dicts`` (unreadable ones are left out)."""
    feats = []
    model.eval()
    with torch.no_grad():
        for batch in build_batched_inference_loader(dicts, mapper, batch_size, num_workers):
            readable = [x for x in batch if "unreadable" not in x]
            if readable:
                feats.append(model.features(readable).cpu().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)


def estimate_prior_from_splits(cfg, model, batch_size: int = 32) -> dict:
    """Elkan-Noto estimate of pi_p (pudet.pu.prior) on the PU classifier's pooled features of the PU
    training splits: every labeled image and ``PU.PRIOR_SAMPLES`` unlabeled ones (at most that many of
    each, drawn with a fixed seed). Returns ``{"prior", "c", "n_labeled", "n_unlabeled"}``."""
    rng = np.random.default_rng(0)
    mapper = PUDatasetMapper(cfg, False)
    samples = []
    for name in PU_SPLITS[:2]:
        dicts = DatasetCatalog.get(name)
        if len(dicts) > cfg.PU.PRIOR_SAMPLES:
            dicts = [dicts[i] for i in np.sort(rng.choice(len(dicts), cfg.PU.PRIOR_SAMPLES, replace=False))]
        samples.append(pooled_features(model, dicts, mapper, batch_size, cfg.DATALOADER.NUM_WORKERS))
    prior, c = estimate_prior(samples[0], samples[1])
    logger.info(f"Estimated class prior pi_p = {prior:.4f} (Elkan-Noto c = {c:.4f}) from "
                f"{len(samples[0])} labeled and {len(samples[1])} unlabeled images")
    return {"prior": prior, "c": c, "n_labeled": len(samples[0]), "n_unlabeled": len(samples[1])}
