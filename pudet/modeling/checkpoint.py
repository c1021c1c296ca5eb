"""Reading detector checkpoints through detectron2's ``DetectionCheckpointer`` (its public ``load``), so that
pudet reads every file format and path (``PathManager`` URLs included) that ``MODEL.WEIGHTS`` accepts, on
every detectron2 version."""
import os
import pickle
import re
from typing import Any, Dict

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager
from torch import nn

__all__ = ["convert_torchvision_resnet", "load_checkpoint", "load_weights_strictly", "save_torchvision_resnet"]


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


def load_weights_strictly(model: nn.Module, path: str, *, keys=None, unexpected_ok: bool = False) -> None:
    """Loads the weights of the checkpoint at ``path`` into ``model``; a model tensor the file lacks, a file
    tensor the model lacks, or a tensor of another shape is a ValueError naming them (e.g. a PU classifier's
    checkpoint given for a detector), raised before the model changes.

    Args:
        keys: ``(config key, weights key)``, the config keys that set the model's config and ``path``, named by
            the errors (e.g. ``("MODEL.PUDET.TEACHER_CONFIG", "MODEL.PUDET.TEACHER_WEIGHTS")``).
        unexpected_ok: tensors of the file that the model lacks are left out, not an error (a detector read from
            a training checkpoint that holds more, e.g. a student's adaptation layers).
    """
    config_key, weights_key = keys or ("", "")
    try:
        weights = load_checkpoint(path)["model"]
    except FileNotFoundError as e:
        if not weights_key:
            raise
        raise FileNotFoundError(f"detector weights '{path}' not found ({weights_key}): train the teacher with "
                                "tools/train_net.py first and point this key at its model_final.pth") from e
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = [] if unexpected_ok else sorted(set(weights) - set(own))
    shapes = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or shapes:
        def some(keys):
            return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

        k = shapes[0] if shapes else ""
        problems = [f"{len(missing)} missing ({some(missing)})" if missing else "",
                    f"{len(unexpected)} unexpected ({some(unexpected)})" if unexpected else "",
                    f"{len(shapes)} of another shape ({some(shapes)}; e.g. {k}: checkpoint "
                    f"{tuple(weights[k].shape)} vs model {tuple(own[k].shape)}: another number of classes or "
                    "another architecture?)" if shapes else ""]
        where = f" ({config_key})" if config_key else ""
        raise ValueError(f"the weights {path} do not fit the model {type(model).__name__} of this config{where}: "
                         "tensors " + "; ".join(p for p in problems if p) + ". Is it the checkpoint of another model?")
    model.load_state_dict({k: weights[k] for k in own})


def convert_torchvision_resnet(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A torchvision ResNet's ``state_dict`` (e.g. ``torchvision.models.resnet18``'s ImageNet weights) under the
    names of detectron2's ResNet bottom-up (``stem.conv1``, ``res2.0.conv1.norm``, ``res3.0.shortcut``...), as
    detectron2's ``tools/convert-torchvision-to-d2.py`` names them. The classifier (``fc.*``) and the batch
    norms' ``num_batches_tracked`` counters are left out, so the result is exactly the bottom-up's tensors."""
    converted = {}
    for name, tensor in state_dict.items():
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        new = name if name.startswith("layer") else "stem." + name
        new = re.sub(r"^layer(\d)", lambda m: f"res{int(m.group(1)) + 1}", new)
        new = re.sub(r"bn(\d)", r"conv\1.norm", new)
        new = new.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
        converted[new] = tensor.detach().cpu()
    return converted


def save_torchvision_resnet(state_dict: Dict[str, torch.Tensor], path: str) -> int:
    """Writes :func:`convert_torchvision_resnet` of ``state_dict`` as a detectron2 weights file (``.pkl``, the
    format of detectron2's ``convert-torchvision-to-d2.py``): ``MODEL.WEIGHTS`` loads it into the bottom-up of
    a ResNet(-FPN) detector, its names matched by suffix. Returns the number of tensors written. The detector
    must read images as torchvision does: ``INPUT.FORMAT RGB`` and torchvision's normalisation in ``MODEL.PIXEL_MEAN``
    / ``PIXEL_STD`` (configs/COCO/faster_rcnn_R_18_FPN_1x_baseline.yaml)."""
    weights = {k: v.numpy() for k, v in convert_torchvision_resnet(state_dict).items()}
    with open(path, "wb") as f:
        pickle.dump({"model": weights, "__author__": "torchvision", "matching_heuristics": True}, f)
    return len(weights)
