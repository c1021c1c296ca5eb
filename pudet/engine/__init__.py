from .trainers import DetectionTrainer, PUTrainer

__all__ = ["DetectionTrainer", "PUTrainer"]
