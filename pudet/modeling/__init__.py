"""pudet's meta-architectures, registered in detectron2's ``META_ARCH_REGISTRY`` when ``pudet`` is imported."""
from .pu_classifier import PUClassifier, load_detector_backbone

__all__ = ["PUClassifier", "load_detector_backbone"]
