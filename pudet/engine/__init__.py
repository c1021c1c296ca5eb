from .defaults import config_argument_parser, setup_cfg
from .trainers import DetectionTrainer, PUTrainer

__all__ = ["DetectionTrainer", "PUTrainer", "config_argument_parser", "setup_cfg"]
