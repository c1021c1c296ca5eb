"""Evaluators: detectron2's COCO evaluator on every build, hidden-truth statistics on a pool (the truth read
by :func:`load_pool_truth` only), ranking metrics of a selection, and the results' tables and files."""
import os

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator

from .pool_truth import PoolTruthEvaluator, load_pool_truth
from .ranking import ranking_metrics
from .results import results_table, save_results

__all__ = ["PoolTruthEvaluator", "build_evaluator", "load_pool_truth", "ranking_metrics", "results_table",
           "save_results"]


def build_evaluator(cfg, dataset_name: str, output_folder: str = None):
    """The evaluator for a registered dataset: ``PoolTruthEvaluator`` for a pool with hidden truth,
    otherwise detectron2's ``COCOEvaluator`` (its fast implementation on every build: see
    ``pudet.compat.cocoeval_class``)."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
    if MetadataCatalog.get(dataset_name).get("evaluator_type", None) == "pool_truth":
        return PoolTruthEvaluator(dataset_name)
    return COCOEvaluator(dataset_name, output_dir=output_folder)
