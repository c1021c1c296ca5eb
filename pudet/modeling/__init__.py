"""pudet's meta-architectures and backbones, registered in detectron2's ``META_ARCH_REGISTRY`` and
``BACKBONE_REGISTRY`` when ``pudet`` is imported."""
from .backbone import build_basic_resnet_backbone, build_basic_resnet_fpn_backbone
from .checkpoint import load_checkpoint
from .export import export_student, student_state_dict
from .frozen import build_frozen_detector
from .pu_classifier import PUClassifier, load_detector_backbone
from .self_distill import SelfDistillRCNN, build_teacher

__all__ = ["PUClassifier", "SelfDistillRCNN", "build_basic_resnet_backbone", "build_basic_resnet_fpn_backbone",
           "build_frozen_detector", "build_teacher", "export_student", "load_checkpoint", "load_detector_backbone",
           "student_state_dict"]
