"""A frozen detector read from a trained checkpoint: the student's teacher (:mod:`.self_distill`) and the region
PU head's region-feature extractor (:mod:`.region_pu`) are built by :func:`build_frozen_detector`."""
import logging

import torch
from detectron2.modeling import GeneralizedRCNN

from ..config import get_pudet_cfg
from .checkpoint import load_weights_strictly

__all__ = ["build_frozen_detector"]

logger = logging.getLogger(__name__)


def build_frozen_detector(cfg, config_file: str, weights: str, *, keys) -> GeneralizedRCNN:
    """A frozen ``GeneralizedRCNN`` (eval mode, ``requires_grad=False``) of ``config_file`` (default: ``cfg``
    itself) with ``weights``, on ``cfg``'s device, for a model that reads a trained detector (the student's
    teacher, the region PU head's detector). Its classes and box-regression weights must be ``cfg``'s; ``keys``
    are the config keys of ``config_file`` and ``weights``, named by the errors."""
    if config_file:
        tcfg = get_pudet_cfg(config_file)
    else:
        tcfg = cfg.clone()
    tcfg.defrost()
    tcfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    tcfg.MODEL.DEVICE = cfg.MODEL.DEVICE
    tcfg.MODEL.WEIGHTS = ""
    if tcfg.MODEL.ROI_HEADS.NUM_CLASSES != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise ValueError(f"the detector of {keys[0]} ({config_file}) has {tcfg.MODEL.ROI_HEADS.NUM_CLASSES} classes "
                         f"and this config {cfg.MODEL.ROI_HEADS.NUM_CLASSES}: distillation needs the same classes")
    if tuple(tcfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS) != tuple(cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS):
        raise ValueError("teacher and student must share MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS (box deltas are compared)")
    teacher = GeneralizedRCNN(tcfg).to(torch.device(cfg.MODEL.DEVICE))
    load_weights_strictly(teacher, weights, keys=keys, unexpected_ok=True)
    logger.info(f"Frozen detector loaded from {weights}")
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
