"""Reading detector checkpoints through detectron2's ``DetectionCheckpointer`` (its public ``load``), so that
pudet reads every file format and path (``PathManager`` URLs included) that ``MODEL.WEIGHTS`` accepts, on
every detectron2 version."""
import os
from typing import Any, Dict

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager
from torch import nn

__all__ = ["load_checkpoint"]


class _CheckpointReader(DetectionCheckpointer):
    """A ``DetectionCheckpointer`` whose model step keeps the file's weights instead of loading them into a
    module (``_load_model`` is the step ``Checkpointer.load`` calls after reading the file)."""

    def __init__(self):
        super().__init__(nn.Module(), save_to_disk=False)
        self.weights = None

    def _load_model(self, checkpoint):
        if checkpoint.get("matching_heuristics", False):
            raise ValueError("a Caffe2/Detectron or pycls checkpoint: its names are matched to a model only by "
                             "MODEL.WEIGHTS (DetectionCheckpointer(model).load), not read on their own")
        self.weights = {k: torch.as_tensor(v) for k, v in checkpoint.pop("model").items()}


def load_checkpoint(path: str) -> Dict[str, Any]:
    """The checkpoint at ``path`` (a local file or any ``PathManager`` URL) as detectron2 reads it:
    ``{"model": {name: tensor}, ...}`` plus whatever else it holds (``iteration``, optimizer and scheduler
    state); a file of bare weights gives ``{"model": weights}``. A missing file is a ``FileNotFoundError``."""
    if not path or not os.path.isfile(PathManager.get_local_path(path)):
        raise FileNotFoundError(f"checkpoint '{path}' not found")
    reader = _CheckpointReader()
    rest = reader.load(path)
    return {"model": reader.weights, **rest}
