"""The region head's workflow (``PU.HEAD: region``), run by ``tools/purify_net.py train`` and ``select``:

1. the frozen detector (``PU.INIT_FROM_DETECTOR``) turns L, L's object crops and the pool U into region bags
   (:mod:`pudet.purification.bags`);
2. the class prior, when ``PU.PRIOR`` is -1, is estimated on out-of-fold scores of a labeled-vs-unlabeled
   region head and kept in ``prior.json`` (:mod:`pudet.purification.prior`);
3. the region head is trained with ``PU.RISK`` on the training split and validated on the held-out split;
4. ``select`` scores the pool from its cached bags and records for each image the regions that scored best.
"""
import os
from typing import List, Optional

import numpy as np
from detectron2.utils import comm

from ..data.build import _holdout_mask
from ..data.chunked import write_unreadable
from ..evaluation.pool_truth import load_pool_truth, positive_images
from ..evaluation.pu import heldout_metrics
from ..modeling.frozen import build_frozen_detector
from ..modeling.region_pu import (
    Bags,
    HeadSchedule,
    RegionFeatureExtractor,
    check_head_fits,
    load_region_head,
    save_region_head,
    score_bags,
    train_region_head,
)
from ..utils import atomic_write
from .bags import dataset_bags, positive_bags
from .prior import PRIOR_FILE, cached_prior, estimate_region_prior, prior_job
from .selection_files import default_rule, write_selection_files

__all__ = ["build_region_extractor", "head_schedule", "split_bags", "train_region_pu", "score_pool_regions",
           "select_by_region_head"]


def build_region_extractor(cfg) -> RegionFeatureExtractor:
    """The frozen detector of ``PU.REGION.DETECTOR_CONFIG`` (default: ``cfg`` itself as a ``GeneralizedRCNN``)
    with the weights of ``PU.INIT_FROM_DETECTOR`` (loaded strictly), wrapped as a region-feature extractor."""
    detector = build_frozen_detector(cfg, cfg.PU.REGION.DETECTOR_CONFIG, cfg.PU.INIT_FROM_DETECTOR,
                                     keys=("PU.REGION.DETECTOR_CONFIG", "PU.INIT_FROM_DETECTOR"))
    return RegionFeatureExtractor(detector, scales=cfg.PU.REGION.SCALES, topk=cfg.PU.REGION.TOPK)


def head_schedule(cfg, num_classes: int, seed: int = 0) -> HeadSchedule:
    """``cfg.PU.REGION``'s head training, for a detector of ``num_classes`` known classes."""
    r = cfg.PU.REGION
    return HeadSchedule(iters=r.ITERS, lr=r.LR, weight_decay=r.WEIGHT_DECAY, batch_bags=r.BATCH_BAGS,
                        hidden_dim=r.HIDDEN_DIM, seed=seed,
                        last_columns=num_classes + 1 if r.FEATURES == "logprobs" else 0)


def _split(bags: Bags, cfg, holdout: bool) -> Bags:
    mask = _holdout_mask(len(bags), cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX)
    return bags.subset(mask == holdout)


def split_bags(cfg, sources: List[Bags], unlabeled: Bags):
    """The training and held-out bags: held out are a fixed subset of L (``sources[0]``) with the crops of its
    images (``sources[1:]``), and a fixed subset of U (``PU.HOLDOUT_FRACTION``, ``PU.HOLDOUT_MAX``). Returns
    ``(train positive, held-out positive, train unlabeled, held-out unlabeled)``."""
    labeled = sources[0]
    held_l = _holdout_mask(len(labeled), cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX)
    held_p = [held_l] + [np.isin(crops.ids // cfg.PU.REGION.CROP_VIEWS, labeled.ids[held_l]) for crops in sources[1:]]
    held_p = np.concatenate(held_p)
    positive = Bags.concat(sources)
    return (positive.subset(~held_p), positive.subset(held_p), _split(unlabeled, cfg, False),
            _split(unlabeled, cfg, True))


def _prior(cfg, extractor, train_p: Bags, train_u: Bags, num_classes: int) -> Optional[dict]:
    """The estimate of pi_p when ``PU.PRIOR`` is -1 (kept in ``prior.json`` for this job), else None."""
    if cfg.PU.PRIOR != -1:
        return None
    # what the estimate depends on: the image head's record, plus the regions it reads
    job = {**prior_job(cfg), "features": cfg.PU.REGION.FEATURES, "scales": list(extractor.scales),
           "topk": extractor.topk, "crop_views": cfg.PU.REGION.CROP_VIEWS, "repeats": cfg.PU.REGION.PRIOR_REPEATS,
           "interval": [cfg.PU.PRIOR_INTERVAL_LEVEL, cfg.PU.PRIOR_INTERVAL_RESAMPLES], "n_labeled": len(train_p),
           "n_unlabeled": len(train_u)}
    return cached_prior(os.path.join(cfg.OUTPUT_DIR, PRIOR_FILE), job, lambda: estimate_region_prior(
        train_p, train_u, estimator=cfg.PU.PRIOR_ESTIMATOR, repeats=cfg.PU.REGION.PRIOR_REPEATS,
        schedule=head_schedule(cfg, num_classes), interval_level=cfg.PU.PRIOR_INTERVAL_LEVEL,
        resamples=cfg.PU.PRIOR_INTERVAL_RESAMPLES, warn_width=cfg.PU.PRIOR_INTERVAL_WARN))


def train_region_pu(cfg) -> dict:
    """Steps 1-3 of the module docstring on the main process (features are extracted on every rank).
    Writes ``OUTPUT_DIR/model_final.pth`` (the head), ``prior.json`` (when estimated) and returns the
    held-out validation results ``{"pu": {...}, "prior": {...}}`` (``{}`` on the other ranks)."""
    if len(cfg.PU.UNLABELED_DATASETS) != 1:
        raise ValueError("the region head reads one unlabeled dataset (PU.UNLABELED_DATASETS): register the pool "
                         "as one dataset")
    extractor = build_region_extractor(cfg)
    num_classes = extractor.detector.roi_heads.num_classes
    sources = positive_bags(cfg, extractor)
    labeled = sources[0]
    pool_name = cfg.PU.UNLABELED_DATASETS[0]
    unlabeled, bad_u = dataset_bags(cfg, extractor, pool_name)
    if not comm.is_main_process():
        return {}
    train_p, test_p, train_u, test_u = split_bags(cfg, sources, unlabeled)
    prior_info = _prior(cfg, extractor, train_p, train_u, num_classes)
    prior = cfg.PU.PRIOR if prior_info is None else prior_info["prior"]
    head = train_region_head(train_p, train_u, risk=cfg.PU.RISK, prior=prior, loss=cfg.PU.LOSS,
                             schedule=head_schedule(cfg, num_classes, cfg.SEED if cfg.SEED >= 0 else 0),
                             beta=cfg.PU.BETA, gamma=cfg.PU.GAMMA)
    save_region_head(head, os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), prior=prior, risk=cfg.PU.RISK,
                     scales=list(extractor.scales), topk=extractor.topk,
                     detector_weights=os.path.abspath(cfg.PU.INIT_FROM_DETECTOR))
    truth = load_pool_truth(pool_name)
    results = heldout_metrics(score_bags(head, test_p)[0], score_bags(head, test_u)[0], test_u.ids, prior=prior,
                              k_fraction=len(labeled) / max(len(unlabeled), 1), loss=cfg.PU.LOSS,
                              truth=None if truth is None else positive_images(truth))
    results["unreadable"] = len(bad_u)
    return {"pu": results, "prior": prior_info or {"prior": prior, "estimator": "given (PU.PRIOR)"}}


def score_pool_regions(cfg, weights: str, dataset: str, *, features: str = "", num_workers=None):
    """Scores every image of ``dataset`` with the region head ``weights`` (bags extracted into, or read from,
    ``features``, default: ``features/`` beside ``weights``, where training cached them; the positive bags are
    read there too). Returns, on the main process, ``{"pool": Bags, "scores": (B,), "regions": (B, I) region
    scores, "unreadable": [...], "info": the checkpoint's entries, "positive": Bags, "num_classes"}``."""
    head, info = load_region_head(weights)
    extractor = build_region_extractor(cfg)
    if (list(info["scales"]), info["topk"]) != (list(extractor.scales), extractor.topk):
        raise ValueError(f"{weights} was trained on regions at scales {info['scales']}, top {info['topk']}; the "
                         f"config asks for {list(extractor.scales)}, top {extractor.topk} (PU.REGION.SCALES/TOPK)")
    check_head_fits(head, extractor, weights)
    kwargs = {"features": features or cfg.PU.REGION.FEATURE_DIR or os.path.join(os.path.dirname(weights),
                                                                                  "features"),
              "num_workers": num_workers}
    pool, bad = dataset_bags(cfg, extractor, dataset, **kwargs)
    positive = Bags.concat(positive_bags(cfg, extractor, **kwargs))
    if not comm.is_main_process():
        return None
    scores, regions = score_bags(head, pool)
    return {"pool": pool, "scores": scores, "regions": regions, "unreadable": bad, "info": info,
            "positive": positive, "num_classes": extractor.detector.roi_heads.num_classes}


def select_by_region_head(cfg, dataset: str, dicts: List[dict], out_dir: str, scored: dict, *,
                          topk: Optional[int] = None, threshold: Optional[float] = None, weights: str = "",
                          top_regions: int = 5) -> dict:
    """U^P from the region head's scores (``scored``: :func:`score_pool_regions`), chosen and written like
    :func:`pudet.purification.image_head.select_by_pu_scores`, plus ``region_scores.npz``: each image's
    ``top_regions`` best regions (``ids`` (B,), ``boxes`` (B, R, 4) XYXY in image coordinates, ``scores``
    (B, R)), which say what made an image positive."""
    pool, scores, regions = scored["pool"], scored["scores"], scored["regions"]
    topk, threshold = default_rule(cfg, topk, threshold)
    info = scored["info"]
    summary = {"dataset": dataset, "weights": weights, "head": f"region ({info['risk']})", "pool images": len(dicts),
               "scored": len(pool), "unreadable": len(scored["unreadable"]), "prior": info["prior"]}
    summary = write_selection_files(
        out_dir, pool.ids, scores, {d["image_id"]: d["file_name"] for d in dicts}, topk=topk,
        threshold=threshold, summary=summary, rule_by=" by the region head", title=f"region PU scores on {dataset}",
        xlabel="PU score g(x) (best region)",
    )
    write_unreadable(os.path.join(out_dir, "unreadable.tsv"), scored["unreadable"])
    best = np.argsort(-regions, axis=1, kind="stable")[:, :top_regions]
    atomic_write(os.path.join(out_dir, "region_scores.npz"),
                 lambda f: np.savez(f, ids=pool.ids, boxes=np.take_along_axis(pool.boxes, best[..., None], axis=1),
                                    scores=np.take_along_axis(regions, best, axis=1)), mode="wb")
    return summary
