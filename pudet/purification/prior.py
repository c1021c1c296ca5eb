"""The class prior pi_p of the PU classifier: given (``PU.PRIOR`` > 0), or estimated (``PU.PRIOR: -1``,
:mod:`pudet.pu.prior`) before PU training and kept in ``OUTPUT_DIR/prior.json``.

Both heads follow one caching rule (:func:`cached_prior`): ``prior.json`` records the estimate and the job it
was made for (what the estimate depends on); a run of the same job reads it, a run of another job (other
datasets, held-out part, estimator, samples, detector, or region settings) is refused with the differences
named, never silently reused or replaced.

* The image head estimates on its pooled backbone features of the PU training splits
  (:func:`estimate_prior_from_splits`).
* The region head estimates on out-of-fold scores of a labeled-vs-unlabeled region head
  (:func:`estimate_region_prior`).
"""
import json
import logging
import os
from dataclasses import replace

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.utils import comm

from ..data.build import PUSplits, build_batched_inference_loader
from ..data.mappers import PUDatasetMapper
from ..engine.trainers import PUTrainer
from ..evaluation import save_results
from ..modeling.region_pu import Bags, HeadSchedule, cross_fit_scores
from ..pu.prior import bbe_prior, bootstrap_draws, elkan_noto_prior, estimate_prior

__all__ = ["cached_prior", "estimate_prior_from_splits", "estimate_region_prior", "pooled_features", "prior_job",
           "read_prior", "resolve_prior"]

logger = logging.getLogger(__name__)

PRIOR_FILE = "prior.json"


def prior_job(cfg) -> dict:
    """What an estimate of the prior depends on for either head: the datasets, their held-out part, the
    estimator, how many images it samples and the detector whose features it reads."""
    return {"labeled": list(cfg.PU.LABELED_DATASETS), "unlabeled": list(cfg.PU.UNLABELED_DATASETS),
            "holdout": [cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX], "estimator": cfg.PU.PRIOR_ESTIMATOR,
            "samples": cfg.PU.PRIOR_SAMPLES, "detector": cfg.PU.INIT_FROM_DETECTOR}


def read_prior(path: str, job: dict) -> dict:
    """The estimate kept in ``path``, which must have been made for ``job``; one made for another job, or
    recording none, is an error naming what differs."""
    with open(path) as f:
        estimate = json.load(f)
    found = estimate.get("job")
    if found is None:
        raise ValueError(f"{path} records no job (written by an older pudet): delete it to estimate again, or "
                         "train into another OUTPUT_DIR")
    if found != job:
        diffs = [f"{k} ({found.get(k)} there, {job.get(k)} now)" for k in sorted(set(found) | set(job))
                 if found.get(k) != job.get(k)]
        raise ValueError(f"{path} holds a prior estimated for another job ({'; '.join(diffs)}): delete it to "
                         "estimate again, or train into another OUTPUT_DIR")
    return estimate


def cached_prior(path: str, job: dict, estimate) -> dict:
    """The estimate of ``job`` kept in ``path``: ``estimate()`` (a dict with ``"prior"``) is called and written
    with ``job`` when the file is missing, else the file is read (:func:`read_prior`). Call it on one process."""
    if not os.path.isfile(path):
        save_results({**estimate(), "job": job}, path)
    return read_prior(path, job)


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


def resolve_prior(cfg):
    """``cfg`` with ``PU.PRIOR`` resolved for the image head: as given when > 0; when -1, the estimate of
    :func:`estimate_prior_from_splits` on the PU classifier ``PUTrainer.build_model(cfg)`` builds, computed
    once on rank 0 and kept in ``OUTPUT_DIR/prior.json`` (:func:`cached_prior`), so that ``--resume`` and the
    other ranks use the same value. Returns a frozen clone (``cfg`` itself is not changed)."""
    if cfg.PU.PRIOR > 0:
        return cfg
    path = os.path.join(cfg.OUTPUT_DIR, PRIOR_FILE)
    job = prior_job(cfg)
    if comm.is_main_process():
        cached_prior(path, job, lambda: estimate_prior_from_splits(cfg, PUTrainer.build_model(cfg)))
    comm.synchronize()
    estimate = read_prior(path, job)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.PU.PRIOR = estimate["prior"]
    cfg.freeze()
    return cfg


def estimate_region_prior(positive: Bags, unlabeled: Bags, *, estimator: str, repeats: int,
                          schedule: HeadSchedule, interval_level: float = 0.9, resamples: int = 200,
                          warn_width: float = 0.1) -> dict:
    """pi_p from out-of-fold scores of a labeled-vs-unlabeled region head (the PN risk with the samples' own
    proportion as weight, so that its sigmoid estimates P(labeled | x) for Elkan-Noto), each estimator's
    median over ``repeats`` cross-fits of other folds and head seeds (``schedule`` with seed 0, 1, ...), and
    the central ``interval_level`` of ``estimator`` over ``resamples`` bootstrap resamples of the held-out
    scores, spread evenly over the cross-fits (so the interval holds both the sampling of the scores and the
    head's training). An interval wider than ``warn_width`` is logged as a warning.
    Returns ``{"prior", "estimator", "interval", "interval_level", "bbe", "elkan-noto", "bbe_repeats",
    "n_labeled", "n_unlabeled"}``."""
    n_p, n_u = len(positive), len(unlabeled)
    estimators = {"bbe": bbe_prior,
                  "elkan-noto": lambda p, u: elkan_noto_prior(1.0 / (1.0 + np.exp(-p)), p.size, u.size)}
    runs = {name: [] for name in estimators}
    draws = []
    repeats = max(1, repeats)
    for seed in range(repeats):
        p_scores, u_scores = cross_fit_scores(positive, unlabeled, risk="pn", prior=n_p / (n_p + n_u),
                                              loss="logistic", schedule=replace(schedule, seed=seed), seed=seed)
        for name, fn in estimators.items():
            runs[name].append(fn(p_scores, u_scores))
        draws.append(bootstrap_draws(estimators[estimator], p_scores, u_scores,
                                     resamples=-(-resamples // repeats), seed=seed))
    estimates = {k: float(np.median(v)) for k, v in runs.items()}
    low, high = (float(x) for x in np.quantile(np.concatenate(draws), [(1 - interval_level) / 2,
                                                                        (1 + interval_level) / 2]))
    logger.info(f"Class prior from {n_p} labeled and {n_u} unlabeled bags, median of {repeats} cross-fits: BBE "
                f"{estimates['bbe']:.4f} (each: {', '.join(f'{v:.3f}' for v in runs['bbe'])}), Elkan-Noto "
                f"{estimates['elkan-noto']:.4f}; using {estimator}: {estimates[estimator]:.4f}, "
                f"{100 * interval_level:g}% interval [{low:.4f}, {high:.4f}]")
    if high - low > warn_width:
        logger.warning(f"The class prior's {100 * interval_level:g}% interval [{low:.3f}, {high:.3f}] is wider than "
                       f"{warn_width:g} (PU.PRIOR_INTERVAL_WARN): the held-out scores do not pin pi_p down. If you "
                       "know the share of positives in the pool, set PU.PRIOR to it")
    return {"prior": estimates[estimator], "estimator": estimator, "interval": [low, high],
            "interval_level": interval_level, **estimates, "bbe_repeats": runs["bbe"], "n_labeled": n_p,
            "n_unlabeled": n_u}
