"""Thin trainers on :class:`pudet.compat.trainer.DefaultTrainer` (detectron2's, alike on every build and safe to
kill): they override ``build_*`` classmethods only."""
import logging
import os

from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.engine import HookBase
from detectron2.utils import comm

from ..compat.trainer import DefaultTrainer
from ..data.build import build_expanded_train_loader, build_pu_train_loader
from ..data.mappers import PUDatasetMapper
from ..evaluation import build_evaluator
from ..evaluation.pu import PUEvaluator
from ..modeling.export import save_student, student_state_dict
from ..modeling.pu_classifier import load_detector_backbone
from .ema import WeightEMA

__all__ = ["DetectionTrainer", "PUTrainer", "ExportStudent"]

logger = logging.getLogger(__name__)

STUDENT_CHECKPOINT = "model_final_student.pth"


class ExportStudent(HookBase):
    """After training, saves a ``SelfDistillRCNN``'s student as a plain detectron2 checkpoint
    (``OUTPUT_DIR/model_final_student.pth``) that a ``GeneralizedRCNN`` loads without pudet; only when training
    reached its last iteration (``after_train`` also runs after a crash)."""

    def __init__(self, output_dir: str):
        self._path = os.path.join(output_dir, STUDENT_CHECKPOINT)

    def after_train(self):
        if not comm.is_main_process():
            return
        if self.trainer.iter < self.trainer.max_iter:
            logger.warning(f"Training stopped at iteration {self.trainer.iter} of {self.trainer.max_iter}: "
                           f"the student is not exported to {self._path}")
            return
        model = self.trainer.model
        model = getattr(model, "module", model)  # unwrap DDP
        save_student(student_state_dict(model.state_dict()), self._path, iteration=self.trainer.iter)
        logger.info(f"Saved the student as a plain detectron2 checkpoint: {self._path}")


class DetectionTrainer(DefaultTrainer):
    """detectron2's trainer with pudet's evaluators (COCO on any detectron2 build, pool hidden truth); it
    trains on L and the pseudo-labelled datasets when ``DATASETS.TRAIN_PSEUDO`` is set
    (:func:`~pudet.data.build.build_expanded_train_loader`), and for a ``SelfDistillRCNN`` it also exports the
    final student as a plain checkpoint (:class:`ExportStudent`). With ``MODEL_EMA.ENABLED``, the final model is
    the moving average of its weights (:class:`~pudet.engine.ema.WeightEMA`)."""

    @classmethod
    def build_train_loader(cls, cfg):
        if cfg.DATASETS.TRAIN_PSEUDO:
            return build_expanded_train_loader(cfg)
        return super().build_train_loader(cfg)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_first_hooks(cls, cfg):
        return [WeightEMA(cfg.MODEL_EMA.DECAY)] if cfg.MODEL_EMA.ENABLED else []

    @classmethod
    def build_extra_hooks(cls, cfg):
        if cfg.MODEL.META_ARCHITECTURE == "SelfDistillRCNN":
            return [ExportStudent(cfg.OUTPUT_DIR)]
        return []


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
