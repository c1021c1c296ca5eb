"""The student of a ``SelfDistillRCNN`` as a plain detectron2 checkpoint, which a ``GeneralizedRCNN`` or
``DefaultPredictor`` loads without pudet: the training checkpoint without its adaptation layers."""
from typing import Dict

import torch

from ..utils import atomic_write
from .checkpoint import load_checkpoint

__all__ = ["ADAPTER_PREFIX", "export_student", "save_student", "student_state_dict"]

# where SelfDistillRCNN keeps its adaptation layers phi_i in its state dict
ADAPTER_PREFIX = "adapters."


def student_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A ``SelfDistillRCNN`` state dict reduced to the student: the keys of a plain ``GeneralizedRCNN``."""
    return {k: v for k, v in state.items() if not k.startswith(ADAPTER_PREFIX)}


def export_student(checkpoint_path: str, output_path: str) -> int:
    """Writes ``checkpoint_path``'s student as a plain detectron2 checkpoint (``{"model": state_dict}``) that
    a ``GeneralizedRCNN`` or ``DefaultPredictor`` loads without pudet. Returns the number of tensors."""
    weights = student_state_dict(load_checkpoint(checkpoint_path)["model"])
    if not all(any(k.startswith(prefix) for k in weights) for prefix in ("proposal_generator.", "roi_heads.")):
        raise ValueError(f"{checkpoint_path} is not a detector's checkpoint (no proposal_generator.* and roi_heads.* "
                         "tensors): export a SelfDistillRCNN or GeneralizedRCNN training checkpoint")
    save_student(weights, output_path)
    return len(weights)


def save_student(weights: Dict[str, torch.Tensor], path: str, **extra) -> None:
    """Saves student weights as a plain detectron2 checkpoint ``{"model": weights, **extra}``, atomically."""
    atomic_write(path, lambda f: torch.save({"model": weights, **extra}, f), mode="wb")
