"""Thin ``DefaultTrainer`` subclasses: they override ``build_*`` classmethods only."""
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.engine import DefaultTrainer

from ..data.build import build_pu_train_loader
from ..data.mappers import PUDatasetMapper
from ..evaluation import build_evaluator
from ..evaluation.pu import PUEvaluator
from ..modeling.pu_classifier import load_detector_backbone

__all__ = ["DetectionTrainer", "PUTrainer"]


class DetectionTrainer(DefaultTrainer):
    """detectron2's trainer with pudet's evaluators (COCO on any detectron2 build, pool hidden truth)."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)


class PUTrainer(DefaultTrainer):
    """Trains the PU classifier (``MODEL.META_ARCHITECTURE: PUClassifier``) on batches holding labeled and
    unlabeled images (``pudet.data.build.register_pu_splits`` must have run), validating on
    ``pu_holdout``. The backbone starts from ``PU.INIT_FROM_DETECTOR`` when set."""

    @classmethod
    def build_model(cls, cfg):
        model = super().build_model(cfg)
        if cfg.PU.INIT_FROM_DETECTOR:
            load_detector_backbone(model, cfg.PU.INIT_FROM_DETECTOR)
        return model

    @classmethod
    def build_train_loader(cls, cfg):
        return build_pu_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(
            DatasetCatalog.get(dataset_name), mapper=PUDatasetMapper(cfg, False), num_workers=cfg.DATALOADER.NUM_WORKERS
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        n_labeled = sum(len(DatasetCatalog.get(n)) for n in cfg.PU.LABELED_DATASETS)
        n_unlabeled = sum(len(DatasetCatalog.get(n)) for n in cfg.PU.UNLABELED_DATASETS)
        return PUEvaluator(dataset_name, prior=cfg.PU.PRIOR, k_fraction=n_labeled / n_unlabeled, loss=cfg.PU.LOSS)
