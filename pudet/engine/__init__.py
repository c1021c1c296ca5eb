from .defaults import setup_cfg
from .trainers import DetectionTrainer, PUTrainer

__all__ = ["DetectionTrainer", "PUTrainer", "setup_cfg"]
