"""pudet: positive-unlabeled data purification in the wild for object detection, on detectron2."""
from . import compat

compat.apply()

from . import modeling  # noqa: E402  (registers the meta-architectures)
from .config import add_pudet_config  # noqa: E402

__all__ = ["add_pudet_config", "compat", "modeling"]
__version__ = "0.1.0"
