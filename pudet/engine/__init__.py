from .defaults import config_argument_parser, setup_cfg
from .pretrain import GlyphPretrainSpec, pretrained_backbone, resolve_pretrained_weights
from .trainers import DetectionTrainer, PUTrainer

__all__ = ["DetectionTrainer", "GlyphPretrainSpec", "PUTrainer", "config_argument_parser", "pretrained_backbone",
           "resolve_pretrained_weights", "setup_cfg"]
