"""The region-level purification workflow (``PU.HEAD: region``), run by ``tools/purify_net.py train`` and
``select``:

1. the frozen detector (``PU.INIT_FROM_DETECTOR``) turns every image of L, of L's object crops
   (``PU.REGION.CROP_VIEWS``) and of the pool U into a bag of region features, cached under
   ``PU.REGION.FEATURE_DIR`` (default ``OUTPUT_DIR/features``) in resumable, sharded chunks
   (:mod:`pudet.data.chunked`); only one chunk is held in memory while extracting;
2. the class prior, when ``PU.PRIOR`` is -1, is estimated (``PU.PRIOR_ESTIMATOR``) on out-of-fold scores of
   a labeled-vs-unlabeled region head (:func:`pudet.modeling.region_pu.cross_fit_scores`);
3. the region head is trained with ``PU.RISK`` on the training split and validated on the held-out split;
4. ``select`` scores the pool from its cached bags, records for each image the regions that scored best, and
   (where the pool has a hidden truth) compares the head with what the same features allow.
"""
import json
import logging
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.utils import comm

from ..data.build import _holdout_mask
from ..data.chunked import Unreadable, finished_chunks, run_chunked, write_unreadable
from ..data.mappers import InferenceMapper, ObjectCropMapper
from ..evaluation.pool_truth import load_pool_truth, positive_images
from ..evaluation.pu import heldout_metrics
from ..evaluation.purifier import purifier_comparison
from ..modeling.region_pu import (
    Bags,
    BoxPUScorer,
    HeadSchedule,
    RegionFeatureExtractor,
    RegionPUHead,
    cross_fit_scores,
    score_bags,
    train_region_head,
)
from ..modeling.self_distill import build_frozen_detector
from ..pu.prior import bbe_prior, elkan_noto_prior
from ..pu.selection import select_top
from ..utils import atomic_write
from .prior_estimation import prior_job
from .selection import default_rule, write_selection_files

__all__ = ["build_region_extractor", "extract_bags", "load_bags", "region_bags", "estimate_region_prior",
           "train_region_pu", "save_region_head", "load_region_head", "head_schedule", "positive_bags",
           "score_pool_regions", "box_pu_scorer", "select_by_region_head"]

logger = logging.getLogger(__name__)

_SUFFIX = ".npz"
HEAD_FORMAT = "pudet-region-pu-head-v1"


def build_region_extractor(cfg) -> RegionFeatureExtractor:
    """The frozen detector of ``PU.REGION.DETECTOR_CONFIG`` (default: ``cfg`` itself as a ``GeneralizedRCNN``)
    with the weights of ``PU.INIT_FROM_DETECTOR`` (loaded strictly), wrapped as a region-feature extractor."""
    detector = build_frozen_detector(cfg, cfg.PU.REGION.DETECTOR_CONFIG, cfg.PU.INIT_FROM_DETECTOR,
                                     keys=("PU.REGION.DETECTOR_CONFIG", "PU.INIT_FROM_DETECTOR"))
    return RegionFeatureExtractor(detector, scales=cfg.PU.REGION.SCALES, topk=cfg.PU.REGION.TOPK)


FEATURES = ("logprobs", "box+logprobs")


def head_schedule(cfg, num_classes: int, seed: int = 0) -> HeadSchedule:
    """``cfg.PU.REGION``'s head training, for a detector of ``num_classes`` known classes."""
    r = cfg.PU.REGION
    if r.FEATURES not in FEATURES:
        raise ValueError(f"PU.REGION.FEATURES must be one of {FEATURES}, got '{r.FEATURES}'")
    return HeadSchedule(iters=r.ITERS, lr=r.LR, weight_decay=r.WEIGHT_DECAY, batch_bags=r.BATCH_BAGS,
                        hidden_dim=r.HIDDEN_DIM, seed=seed,
                        last_columns=num_classes + 1 if r.FEATURES == "logprobs" else 0)


def _manifest(cfg, extractor, source: str) -> dict:
    weights = cfg.PU.INIT_FROM_DETECTOR
    stat = os.stat(weights)
    return {"kind": "region-features", "source": source, "detector_weights": os.path.abspath(weights),
            "detector_weights_size": stat.st_size, "detector_weights_mtime": int(stat.st_mtime),
            "scales": list(extractor.scales), "topk": extractor.topk, "crop_views": cfg.PU.REGION.CROP_VIEWS,
            "min_size_test": cfg.INPUT.MIN_SIZE_TEST}


def extract_bags(extractor: RegionFeatureExtractor, dicts: List[dict], out_dir: str, *, mapper, manifest: dict,
                 batch_size: int = 16, num_workers: int = 2, chunk_size: int = 2048, rank: int = 0,
                 world_size: int = 1, progress: bool = True) -> int:
    """Extracts this rank's unfinished chunks of region-feature bags into ``out_dir/chunks`` (resumable,
    sharded, unreadable images recorded). Returns how many images it processed."""

    def predict(batch):
        return [(x["image_id"], o) for x, o in zip(batch, extractor(batch))]

    def save_chunk(f, records, bad):
        d, n = extractor.feature_dim, extractor.num_instances
        np.savez(f, ids=np.asarray([i for i, _ in records], dtype=np.int64),
                 features=np.stack([o["features"].numpy() for _, o in records]).astype(np.float16)
                 if records else np.zeros((0, n, d), np.float16),
                 boxes=np.stack([o["boxes"].numpy() for _, o in records]).astype(np.float32)
                 if records else np.zeros((0, n, 4), np.float32),
                 valid=np.stack([o["valid"].numpy() for _, o in records]) if records else np.zeros((0, n), bool),
                 bad_ids=np.asarray([b.image_id for b in bad], dtype=np.int64),
                 bad_files=np.asarray([b.file_name for b in bad], dtype=str),
                 bad_reasons=np.asarray([b.reason for b in bad], dtype=str))

    return run_chunked(dicts, out_dir, mapper=mapper, predict=predict, save_chunk=save_chunk, suffix=_SUFFIX,
                       batch_size=batch_size, num_workers=num_workers, chunk_size=chunk_size, rank=rank,
                       world_size=world_size, progress=progress, desc="region features", kind=manifest["kind"],
                       job=manifest)


def load_bags(out_dir: str, num_images: int, chunk_size: int) -> Tuple[Bags, list]:
    """Every chunk of ``out_dir`` as one :class:`Bags`, and the unreadable images (a list of
    :class:`~pudet.data.chunked.Unreadable`)."""
    parts, bad = [], []
    for path in finished_chunks(out_dir, num_images, chunk_size, _SUFFIX):
        with np.load(path) as z:
            parts.append(Bags(z["ids"], z["features"], z["boxes"], z["valid"]))
            bad.extend(map(Unreadable, z["bad_ids"].tolist(), z["bad_files"].tolist(), z["bad_reasons"].tolist()))
    return Bags.concat(parts), bad


def _feature_dir(cfg) -> str:
    return cfg.PU.REGION.FEATURE_DIR or os.path.join(cfg.OUTPUT_DIR, "features")


def _dataset_dicts(names) -> List[dict]:
    return [d for n in names for d in DatasetCatalog.get(n)]


def region_bags(cfg, extractor, source: str, *, feature_dir: str = None, chunk_size: int = 2048,
                batch_size: int = 16, num_workers: int = None, rank: int = 0, world_size: int = 1) -> Tuple[Bags, list]:
    """The bags of ``source``: ``"labeled"`` (``PU.LABELED_DATASETS``), ``"crops"`` (``PU.REGION.CROP_VIEWS``
    object crops of each labeled image) or a registered dataset name (e.g. the pool). Extracted into
    ``feature_dir/<source>`` (or read from it when it is complete and was made by the same detector and
    settings). Returns ``(bags, unreadable)`` on every rank."""
    out = os.path.join(feature_dir or _feature_dir(cfg), source)
    if source == "labeled":
        dicts, mapper = _dataset_dicts(cfg.PU.LABELED_DATASETS), InferenceMapper(cfg)
    elif source == "crops":
        labeled = _dataset_dicts(cfg.PU.LABELED_DATASETS)
        dicts = ObjectCropMapper.crop_dicts(labeled, cfg.PU.REGION.CROP_VIEWS)
        mapper = ObjectCropMapper(cfg)
    else:
        dicts, mapper = DatasetCatalog.get(source), InferenceMapper(cfg)
    workers = cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers
    extract_bags(extractor, dicts, out, mapper=mapper, manifest=_manifest(cfg, extractor, source),
                 batch_size=batch_size, num_workers=workers, chunk_size=chunk_size, rank=rank,
                 world_size=world_size, progress=comm.is_main_process())
    comm.synchronize()
    return load_bags(out, len(dicts), chunk_size)


def estimate_region_prior(cfg, positive: Bags, unlabeled: Bags, num_classes: int) -> Dict[str, float]:
    """pi_p from out-of-fold scores of a labeled-vs-unlabeled region head (the PN risk with the samples'
    own proportion as weight, so that its sigmoid estimates P(labeled | x) for Elkan-Noto), each estimator's
    median over ``PU.REGION.PRIOR_REPEATS`` cross-fits of other folds and head seeds (one cross-fit's BBE
    varies by about +-0.02 on the benchmark, with outliers of 0.05). Returns ``{"prior", "estimator", "bbe",
    "elkan-noto", "bbe_repeats", "n_labeled", "n_unlabeled"}``."""
    n_p, n_u = len(positive), len(unlabeled)
    name = cfg.PU.PRIOR_ESTIMATOR
    runs = {"bbe": [], "elkan-noto": []}
    if name not in runs:
        raise ValueError(f"PU.PRIOR_ESTIMATOR must be one of {sorted(runs)}, got '{name}'")
    for seed in range(max(1, cfg.PU.REGION.PRIOR_REPEATS)):
        p_scores, u_scores = cross_fit_scores(positive, unlabeled, risk="pn", prior=n_p / (n_p + n_u),
                                              loss="logistic", schedule=head_schedule(cfg, num_classes, seed),
                                              seed=seed)
        runs["bbe"].append(bbe_prior(p_scores, u_scores))
        runs["elkan-noto"].append(elkan_noto_prior(1.0 / (1.0 + np.exp(-p_scores)), n_p, n_u))
    estimates = {k: float(np.median(v)) for k, v in runs.items()}
    logger.info(f"Class prior from {n_p} labeled and {n_u} unlabeled bags, median of {len(runs['bbe'])} "
                f"cross-fits: BBE {estimates['bbe']:.4f} (each: {', '.join(f'{v:.3f}' for v in runs['bbe'])}), "
                f"Elkan-Noto {estimates['elkan-noto']:.4f}; using {name}")
    return {"prior": estimates[name], "estimator": name, **estimates, "bbe_repeats": runs["bbe"],
            "n_labeled": n_p, "n_unlabeled": n_u}


def save_region_head(head: RegionPUHead, path: str, **info) -> None:
    state = {"format": HEAD_FORMAT, "in_dim": head.in_dim, "hidden_dim": head.hidden_dim,
             "last_columns": head.last_columns, "model": head.state_dict(), **info}
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def load_region_head(path: str) -> Tuple[RegionPUHead, dict]:
    """A head saved by :func:`save_region_head` (strict), and the checkpoint's other entries."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"region PU head {path} not found: train it with 'purify_net.py train' first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path} is not a region PU head (PU.HEAD region) saved by purify_net.py train")
    head = RegionPUHead(state["in_dim"], state["hidden_dim"], state.get("last_columns", 0))
    head.load_state_dict(state["model"])
    head.eval()
    return head, {k: v for k, v in state.items() if k not in ("model",)}


def positive_bags(cfg, extractor, **kwargs) -> List[Bags]:
    """The positive bags: L's, then L's object crops when ``PU.REGION.CROP_VIEWS`` > 0."""
    sources = [region_bags(cfg, extractor, "labeled", **kwargs)[0]]
    if cfg.PU.REGION.CROP_VIEWS > 0:
        sources.append(region_bags(cfg, extractor, "crops", **kwargs)[0])
    return sources


def score_pool_regions(cfg, weights: str, dataset: str, *, feature_dir: str, rank: int = 0, world_size: int = 1,
                       num_workers: int = None):
    """Scores every image of ``dataset`` with the region head ``weights`` (bags extracted into, or read from,
    ``feature_dir``, where the positive bags are read too). Returns, on the main process, ``{"pool": Bags,
    "scores": (B,), "regions": (B, I) region scores, "unreadable": [...], "info": the checkpoint's entries,
    "positive": Bags, "num_classes"}``."""
    head, info = load_region_head(weights)
    extractor = build_region_extractor(cfg)
    if (list(info["scales"]), info["topk"]) != (list(extractor.scales), extractor.topk):
        raise ValueError(f"{weights} was trained on regions at scales {info['scales']}, top {info['topk']}; the "
                         f"config asks for {list(extractor.scales)}, top {extractor.topk} (PU.REGION.SCALES/TOPK)")
    _check_head_fits(head, extractor, weights)
    kwargs = {"feature_dir": feature_dir, "rank": rank, "world_size": world_size, "num_workers": num_workers}
    pool, bad = region_bags(cfg, extractor, dataset, **kwargs)
    positive = Bags.concat(positive_bags(cfg, extractor, **kwargs))
    if not comm.is_main_process():
        return None
    scores, regions = score_bags(head, pool)
    return {"pool": pool, "scores": scores, "regions": regions, "unreadable": bad, "info": info,
            "positive": positive, "num_classes": extractor.detector.roi_heads.num_classes}


def box_pu_scorer(detector, head_weights: str, detector_weights: str) -> BoxPUScorer:
    """The detector's inference plus each detection's region PU score (box-level purification), for a region
    head trained on this detector's regions (a head trained on another detector's features is an error)."""
    head, info = load_region_head(head_weights)
    trained_on = info.get("detector_weights")
    if trained_on and os.path.abspath(trained_on) != os.path.abspath(detector_weights):
        raise ValueError(f"the region PU head {head_weights} was trained on the regions of {trained_on}, not of "
                         f"{detector_weights}: box PU scores need the same detector")
    scorer = BoxPUScorer(detector, head)
    _check_head_fits(head, scorer.extractor, head_weights)
    return scorer


def _check_head_fits(head: RegionPUHead, extractor: RegionFeatureExtractor, weights: str) -> None:
    """A head trained on another detector's features (another box-head width or class count) is an error."""
    gives = extractor.detector.roi_heads.num_classes + 1 if head.last_columns else extractor.feature_dim
    if head.in_dim != gives:
        what = "class log-probabilities" if head.last_columns else "region features"
        raise ValueError(f"{weights} scores {head.in_dim} {what}; this detector gives {gives}")


def _split(bags: Bags, cfg, holdout: bool) -> Bags:
    mask = _holdout_mask(len(bags), cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX)
    return bags.subset(mask == holdout)


def train_region_pu(cfg) -> dict:
    """Steps 1-3 of the module docstring on the main process (features are extracted on every rank).
    Writes ``OUTPUT_DIR/model_final.pth`` (the head), ``prior.json`` (when estimated) and returns the
    held-out validation results ``{"pu": {...}}``."""
    extractor = build_region_extractor(cfg)
    num_classes = extractor.detector.roi_heads.num_classes
    rank, world = comm.get_rank(), comm.get_world_size()
    sources = positive_bags(cfg, extractor, rank=rank, world_size=world)
    labeled = sources[0]
    pool_name = cfg.PU.UNLABELED_DATASETS[0]
    if len(cfg.PU.UNLABELED_DATASETS) != 1:
        raise ValueError("the region head reads one unlabeled dataset (PU.UNLABELED_DATASETS): register the pool "
                         "as one dataset")
    unlabeled, bad_u = region_bags(cfg, extractor, pool_name, rank=rank, world_size=world)
    if not comm.is_main_process():
        return {}
    # held out: a fixed subset of L with the crops of its images, and of U
    held_l = _holdout_mask(len(labeled), cfg.PU.HOLDOUT_FRACTION, cfg.PU.HOLDOUT_MAX)
    held_p = [held_l] + [np.isin(crops.ids // cfg.PU.REGION.CROP_VIEWS, labeled.ids[held_l]) for crops in sources[1:]]
    held_p = np.concatenate(held_p)
    positive = Bags.concat(sources)
    train_p, test_p = positive.subset(~held_p), positive.subset(held_p)
    train_u, test_u = _split(unlabeled, cfg, False), _split(unlabeled, cfg, True)

    prior_info = None
    prior = cfg.PU.PRIOR
    if prior == -1:
        path = os.path.join(cfg.OUTPUT_DIR, "prior.json")
        # what the estimate depends on (the image head's record, plus the regions it reads): another detector,
        # dataset, setting or sample in the same OUTPUT_DIR estimates anew
        depends = {**prior_job(cfg), "features": cfg.PU.REGION.FEATURES, "scales": list(extractor.scales),
                   "topk": extractor.topk, "crop_views": cfg.PU.REGION.CROP_VIEWS,
                   "repeats": cfg.PU.REGION.PRIOR_REPEATS, "n_labeled": len(train_p), "n_unlabeled": len(train_u)}
        if os.path.isfile(path):
            with open(path) as f:
                prior_info = json.load(f)
            if prior_info.get("depends") != depends:
                logger.info(f"{path} was estimated for {prior_info.get('depends')}: estimating anew for {depends}")
                prior_info = None
        if prior_info is None:
            prior_info = {**estimate_region_prior(cfg, train_p, train_u, num_classes), "depends": depends}
            atomic_write(path, lambda f: json.dump(prior_info, f, indent=2))
        prior = prior_info["prior"]
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


def select_by_region_head(cfg, dataset: str, dicts: List[dict], out_dir: str, scored: dict, *,
                          topk: Optional[int] = None, threshold: Optional[float] = None, weights: str = "",
                          top_regions: int = 5) -> dict:
    """U^P from the region head's scores (``scored``: :func:`score_pool_regions`), chosen and written like
    :func:`pudet.engine.selection.select_by_pu_scores`, plus ``region_scores.npz``: each image's ``top_regions``
    best regions (``ids`` (B,), ``boxes`` (B, R, 4) XYXY in image coordinates, ``scores`` (B, R)), which say
    what made an image positive. Where ``dataset`` has a hidden truth, the summary's ``comparison`` holds the
    rows of :func:`pudet.evaluation.purifier.purifier_comparison` on the same region features, at K = the
    selection's size."""
    pool, scores, regions = scored["pool"], scored["scores"], scored["regions"]
    topk, threshold = default_rule(cfg, topk, threshold)
    info = scored["info"]
    summary = {"dataset": dataset, "weights": weights, "head": f"region ({info['risk']})", "pool images": len(dicts),
               "scored": len(pool), "unreadable": len(scored["unreadable"]), "prior": info["prior"]}
    truth = load_pool_truth(dataset)
    if truth is not None:
        k = len(select_top(pool.ids, scores, topk=topk, threshold=threshold))
        summary["comparison"] = purifier_comparison(
            scored["positive"], pool, positive_images(truth), head_scores=scores,
            head_name=f"region head, {info['risk']} (this selection)", prior=info["prior"], loss=cfg.PU.LOSS,
            schedule=head_schedule(cfg, scored["num_classes"]), num_classes=scored["num_classes"], k=k)
    summary = write_selection_files(
        out_dir, dataset, pool.ids, scores, {d["image_id"]: d["file_name"] for d in dicts}, topk=topk,
        threshold=threshold, summary=summary, rule_by=" by the region head", title=f"region PU scores on {dataset}",
        xlabel="PU score g(x) (best region)",
    )
    write_unreadable(os.path.join(out_dir, "unreadable.tsv"), scored["unreadable"])
    best = np.argsort(-regions, axis=1, kind="stable")[:, :top_regions]
    atomic_write(os.path.join(out_dir, "region_scores.npz"),
                 lambda f: np.savez(f, ids=pool.ids, boxes=np.take_along_axis(pool.boxes, best[..., None], axis=1),
                                    scores=np.take_along_axis(regions, best, axis=1)), mode="wb")
    return summary
