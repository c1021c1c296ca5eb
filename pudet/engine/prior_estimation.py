"""The class prior pi_p of the image-level PU classifier, estimated (:mod:`pudet.pu.prior`) on its pooled backbone
features before PU training, once per output folder (``prior.json``)."""
import json
import logging
import os

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.utils import comm

from ..data.build import PUSplits, build_batched_inference_loader
from ..data.mappers import PUDatasetMapper
from ..evaluation import save_results
from ..pu.prior import estimate_prior
from .trainers import PUTrainer

__all__ = ["pooled_features", "estimate_prior_from_splits", "prior_job", "resolve_prior"]

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
    """Estimate of pi_p (pudet.pu.prior, ``PU.PRIOR_ESTIMATOR``) on the PU classifier's pooled features of the
    PU training splits: every labeled image and ``PU.PRIOR_SAMPLES`` unlabeled ones (at most that many of
    each, drawn with a fixed seed). Returns ``{"prior", "estimator", "bbe", "elkan-noto", "c", "n_labeled",
    "n_unlabeled"}``."""
    if cfg.PU.PRIOR_ESTIMATOR not in ("bbe", "elkan-noto"):
        raise ValueError(f"PU.PRIOR_ESTIMATOR must be 'bbe' or 'elkan-noto', got '{cfg.PU.PRIOR_ESTIMATOR}'")
    rng = np.random.default_rng(0)
    mapper = PUDatasetMapper(cfg, False)
    samples = []
    splits = PUSplits.from_config(cfg)
    for name in (splits.train_labeled, splits.train_unlabeled):
        dicts = DatasetCatalog.get(name)
        if len(dicts) > cfg.PU.PRIOR_SAMPLES:
            dicts = [dicts[i] for i in np.sort(rng.choice(len(dicts), cfg.PU.PRIOR_SAMPLES, replace=False))]
        samples.append(pooled_features(model, dicts, mapper, batch_size, cfg.DATALOADER.NUM_WORKERS))
    estimates = estimate_prior(samples[0], samples[1])
    prior = estimates[cfg.PU.PRIOR_ESTIMATOR]
    logger.info(f"Estimated class prior pi_p = {prior:.4f} ({cfg.PU.PRIOR_ESTIMATOR}; BBE {estimates['bbe']:.4f}, "
                f"Elkan-Noto {estimates['elkan-noto']:.4f}) from {len(samples[0])} labeled and {len(samples[1])} "
                "unlabeled images")
    return {"prior": prior, "estimator": cfg.PU.PRIOR_ESTIMATOR, **estimates, "n_labeled": len(samples[0]),
            "n_unlabeled": len(samples[1])}


def prior_job(cfg) -> dict:
    """What an estimate of the prior depends on: the datasets, their held-out part, the estimator, how many
    images it samples and the detector whose backbone features it reads."""
    return {"labeled": list(cfg.PU.LABELED_DATASETS), "unlabeled": list(cfg.PU.UNLABELED_DATASETS),
            "holdout": [cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX], "estimator": cfg.PU.PRIOR_ESTIMATOR,
            "samples": cfg.PU.PRIOR_SAMPLES, "detector": cfg.PU.INIT_FROM_DETECTOR}


def resolve_prior(cfg):
    """``cfg`` with ``PU.PRIOR`` resolved: as given when > 0; when -1, the estimate of
    :func:`estimate_prior_from_splits` on the PU classifier ``PUTrainer.build_model(cfg)`` builds, computed
    once on rank 0 and kept in ``OUTPUT_DIR/prior.json`` so that ``--resume`` and the other ranks use the same
    value. The file records what the estimate depends on (:func:`prior_job`): one of another job (other
    datasets, estimator, samples or detector) is an error, never reused. Returns a frozen clone (``cfg`` itself
    is not changed)."""
    if cfg.PU.PRIOR > 0:
        return cfg
    path = os.path.join(cfg.OUTPUT_DIR, "prior.json")
    job = prior_job(cfg)
    if comm.is_main_process() and not os.path.isfile(path):
        save_results({**estimate_prior_from_splits(cfg, PUTrainer.build_model(cfg)), "job": job}, path)
    comm.synchronize()
    with open(path) as f:
        estimate = json.load(f)
    found = estimate.get("job", job)  # (files of older pudet versions record none)
    if found != job:
        diffs = [f"{k} ({found.get(k)} there, {job[k]} now)" for k in job if found.get(k) != job[k]]
        raise ValueError(f"{path} holds a prior estimated for another job ({'; '.join(diffs)}): delete it to "
                         "estimate again, or train into another OUTPUT_DIR")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.PU.PRIOR = estimate["prior"]
    cfg.freeze()
    return cfg
