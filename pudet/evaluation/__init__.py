"""Evaluators: detectron2's COCO evaluator on every build, hidden-truth statistics on a pool (the truth read
by :func:`load_pool_truth` only), ranking metrics of a selection, and the results' tables and files."""
import json
import os

from detectron2.data import MetadataCatalog

from .. import compat
from ..utils import atomic_write
from .pool_truth import PoolTruthEvaluator, load_pool_truth
from .ranking import ranking_metrics

__all__ = ["PoolTruthEvaluator", "build_evaluator", "load_pool_truth", "ranking_metrics", "results_table",
           "save_results"]


def build_evaluator(cfg, dataset_name: str, output_folder: str = None):
    """The evaluator for a registered dataset: ``PoolTruthEvaluator`` for a pool with hidden truth,
    otherwise detectron2's ``COCOEvaluator`` (its fast implementation: see ``pudet.compat.cocoeval_class``)."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
    if MetadataCatalog.get(dataset_name).get("evaluator_type", None) == "pool_truth":
        return PoolTruthEvaluator(dataset_name)
    return compat.coco_evaluator(dataset_name, output_dir=output_folder)


def _metric_groups(results, prefix=""):
    """Yields (name, {metric: number}) for every innermost dict of a nested results dict."""
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict) and value and isinstance(next(iter(value.values())), dict):
            yield from _metric_groups(value, name)
        elif isinstance(value, dict):
            yield name, value


def results_table(results) -> str:
    """Plain-text tables (one per set of metric names) of detectron2-style results, e.g.
    ``{"bbox": {"AP": ...}}`` or ``{dataset: {"bbox": {...}}}``, for tools to print."""
    from tabulate import tabulate

    blocks = {}
    for name, metrics in _metric_groups(results):
        blocks.setdefault(tuple(metrics), []).append([name] + list(metrics.values()))
    tables = [tabulate(rows, headers=["", *keys], tablefmt="github", floatfmt=".2f") for keys, rows in blocks.items()]
    return "\n\n".join(tables) if tables else "(no results)"


def save_results(results, path: str) -> None:
    """Writes results as json atomically (a crash never leaves a half-written file under ``path``)."""
    atomic_write(path, lambda f: json.dump(results, f, indent=2))
