from .trainers import DetectionTrainer

__all__ = ["DetectionTrainer"]
