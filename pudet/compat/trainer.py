"""detectron2's ``DefaultTrainer`` as pudet's trainers use it, alike on every build and safe to kill
(:class:`DefaultTrainer`). Imported by ``pudet.engine``, after :func:`pudet.compat.apply` ran (it imports
``detectron2.engine``)."""
import glob
import logging
import os
import re
import zipfile

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import DefaultTrainer as _DefaultTrainer
from detectron2.engine import HookBase
from detectron2.utils import comm

from ..utils import atomic_write

__all__ = ["AtomicCheckpointer", "DefaultTrainer", "FINAL_CHECKPOINT"]

logger = logging.getLogger(__name__)

FINAL_CHECKPOINT = "model_final"
# the checkpoints detectron2's trainer writes: model_<iteration>.pth and model_final.pth
_TRAINING_CHECKPOINT = re.compile(r"model_(\d{7}|final)\.pth")


def _readable(path: str) -> bool:
    """Whether ``path`` looks like a whole ``torch.save`` file (a zip archive with its central directory: a
    truncated or empty file has none)."""
    return os.path.isfile(path) and zipfile.is_zipfile(path)


class AtomicCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer, except that a checkpoint and the ``last_checkpoint`` tag are written under a
    temporary name and renamed (a kill while saving never leaves a broken file under a checkpoint's name),
    and that ``resume`` never picks an unreadable checkpoint: when the tagged one is not a whole file (e.g.
    written by another tool, or damaged since), the newest readable training checkpoint of the folder is used."""

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
                      if _TRAINING_CHECKPOINT.fullmatch(os.path.basename(p)) and _readable(p)]
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


class DefaultTrainer(_DefaultTrainer):
    """detectron2's ``DefaultTrainer``, with on every build:

    * checkpoints written by an :class:`AtomicCheckpointer` (same model, folder and checkpointables as
      detectron2's), and ``model_final.pth`` written after a training that reached its last iteration where
      a kill left none;
    * ``train()`` returning the final evaluation's results (``{}`` where none ran), as its docstring says;
      detectron2 returns them only when ``TEST.EXPECTED_RESULTS`` is set;
    * the hooks of the classmethod :meth:`build_first_hooks` before detectron2's, and those of
      :meth:`build_extra_hooks` after them;
    * the inner trainer's state (the optimizer's momentum) in its checkpoints: detectron2 main saves it under
      ``_trainer``; on v0.6, whose trainer saves only the iteration and the hooks' state, this class does.

    Subclasses override ``build_*`` classmethods only.
    """

    @classmethod
    def build_first_hooks(cls, cfg):
        """Hooks to run before detectron2's default ones (none): each step, they run before its checkpoint and
        evaluation."""
        return []

    @classmethod
    def build_extra_hooks(cls, cfg):
        """Hooks to run after detectron2's default ones (none)."""
        return []

    def build_hooks(self):
        c = self.checkpointer
        self.checkpointer = AtomicCheckpointer(c.model, c.save_dir, save_to_disk=c.save_to_disk, **c.checkpointables)
        return [*self.build_first_hooks(self.cfg), *super().build_hooks(), _SaveFinalIfMissing(),
                *self.build_extra_hooks(self.cfg)]

    def train(self):
        super().train()
        return getattr(self, "_last_eval_results", {})

    if "state_dict" not in vars(_DefaultTrainer):  # detectron2 v0.6

        def state_dict(self):
            ret = super().state_dict()
            ret["_trainer"] = self._trainer.state_dict()
            return ret

        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            if "_trainer" in state_dict:
                self._trainer.load_state_dict(state_dict["_trainer"])
