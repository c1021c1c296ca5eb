"""Thin ``DefaultTrainer`` subclasses: they override ``build_*`` classmethods only."""
from detectron2.engine import DefaultTrainer

from ..evaluation import build_evaluator

__all__ = ["DetectionTrainer"]


class DetectionTrainer(DefaultTrainer):
    """detectron2's trainer with pudet's evaluators (COCO on any detectron2 build, pool hidden truth)."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)
