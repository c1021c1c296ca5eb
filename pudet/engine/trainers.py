"""Thin ``DefaultTrainer`` subclasses: they override ``build_*`` methods only, and write every checkpoint
atomically (:class:`AtomicCheckpointer`)."""
import glob
import logging
import os
import zipfile

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.engine import DefaultTrainer, HookBase
from detectron2.utils import comm

from ..data.build import build_expanded_train_loader, build_pu_train_loader
from ..data.mappers import PUDatasetMapper
from ..evaluation import build_evaluator
from ..evaluation.pu import PUEvaluator
from ..modeling.export import save_student, student_state_dict
from ..modeling.pu_classifier import load_detector_backbone
from ..modeling.self_distill import SelfDistillRCNN
from ..utils import atomic_write

__all__ = ["AtomicCheckpointer", "DetectionTrainer", "PUTrainer", "ExportStudent"]

logger = logging.getLogger(__name__)

STUDENT_CHECKPOINT = "model_final_student.pth"
FINAL_CHECKPOINT = "model_final"


def _readable(path: str) -> bool:
    """Whether ``path`` looks like a whole ``torch.save`` file (a zip archive with its central directory: a
    truncated or empty file has none)."""
    return os.path.isfile(path) and zipfile.is_zipfile(path)


class AtomicCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer, except that a checkpoint and the ``last_checkpoint`` tag are written under a
    temporary name and renamed (a kill while saving never leaves a broken file under a checkpoint's name),
    and that ``resume`` never picks an unreadable checkpoint: when the tagged one is not a whole file (e.g.
    written by another tool, or damaged since), the newest readable ``model_*.pth`` of the folder is used."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **{k: v.state_dict() for k, v in self.checkpointables.items()},
                **kwargs}
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_write(path, lambda f: torch.save(data, f), mode="wb")
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write(os.path.join(self.save_dir, "last_checkpoint"), lambda f: f.write(last_filename_basename))

    def has_checkpoint(self) -> bool:
        return bool(self.get_checkpoint_file())

    def get_checkpoint_file(self) -> str:
        tagged = super().get_checkpoint_file() if super().has_checkpoint() else ""
        if tagged and _readable(tagged):
            return tagged
        candidates = [p for p in glob.glob(os.path.join(self.save_dir, "model_*.pth"))
                      if os.path.basename(p) != STUDENT_CHECKPOINT and _readable(p)]
        found = max(candidates, key=os.path.getmtime) if candidates else ""
        if tagged:
            logger.warning(f"The last checkpoint {tagged} is unreadable (a kill while writing it?): "
                           + (f"resuming from {found} instead" if found else "no readable checkpoint to resume from"))
        return found


class _SaveFinalIfMissing(HookBase):
    """After a training that reached its last iteration, writes ``model_final.pth`` if it is missing: a run
    killed while saving it, then resumed, has no step left for detectron2's ``PeriodicCheckpointer`` to save."""

    def after_train(self):
        final = os.path.join(self.trainer.checkpointer.save_dir, f"{FINAL_CHECKPOINT}.pth")
        if comm.is_main_process() and self.trainer.iter >= self.trainer.max_iter and not _readable(final):
            self.trainer.checkpointer.save(FINAL_CHECKPOINT, iteration=self.trainer.max_iter - 1)


class _CheckpointsOptimizer:
    """Puts the optimizer state into the trainer's checkpoints, so that ``--resume`` restores momentum too.
    detectron2 v0.6's ``DefaultTrainer`` saves only the iteration and the hooks' state (the scheduler);
    later releases add its inner trainer's state under ``_trainer``, as this does (idempotently). Checkpoints
    are written by an :class:`AtomicCheckpointer` with the same model, folder and checkpointables as
    detectron2's."""

    def build_hooks(self):
        c = self.checkpointer
        self.checkpointer = AtomicCheckpointer(c.model, c.save_dir, save_to_disk=c.save_to_disk, **c.checkpointables)
        return super().build_hooks() + [_SaveFinalIfMissing()]

    def state_dict(self):
        ret = super().state_dict()
        ret.setdefault("_trainer", self._trainer.state_dict())
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])


class _ReturnsResults:
    """``train()`` returns the final evaluation's results (``{}`` where none ran), as ``DefaultTrainer.train``
    documents; detectron2 v0.6 returns them only when ``TEST.EXPECTED_RESULTS`` is set."""

    def train(self):
        super().train()
        return getattr(self, "_last_eval_results", {})


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


class DetectionTrainer(_ReturnsResults, _CheckpointsOptimizer, DefaultTrainer):
    """detectron2's trainer with pudet's evaluators (COCO on any detectron2 build, pool hidden truth); it
    trains on L and the pseudo-labelled datasets when ``DATASETS.TRAIN_PSEUDO`` is set
    (:func:`~pudet.data.build.build_expanded_train_loader`), and for a ``SelfDistillRCNN`` it also exports the
    final student as a plain checkpoint (:class:`ExportStudent`)."""

    @classmethod
    def build_train_loader(cls, cfg):
        if cfg.DATASETS.TRAIN_PSEUDO:
            return build_expanded_train_loader(cfg)
        return super().build_train_loader(cfg)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)

    def build_hooks(self):
        hooks = super().build_hooks()
        model = getattr(self.model, "module", self.model)
        if isinstance(model, SelfDistillRCNN):
            hooks.append(ExportStudent(self.cfg.OUTPUT_DIR))
        return hooks


class PUTrainer(_ReturnsResults, _CheckpointsOptimizer, DefaultTrainer):
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
