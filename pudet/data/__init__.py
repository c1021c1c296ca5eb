from .datasets import register_datasets

__all__ = ["register_datasets"]
