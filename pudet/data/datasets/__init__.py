"""Dataset registration: image pools in the wild and the built-in wild-digits benchmark.

Nothing registers at import: tools call :func:`register_datasets` (idempotent) after reading the config.
"""
from .image_pool import (
    IMAGE_EXTENSIONS,
    list_pool_images,
    load_image_pool,
    register_builtin_pools,
    register_image_pool,
)
from .wild_digits import WildDigitsSpec, build_wild_digits, register_wild_digits

__all__ = [
    "IMAGE_EXTENSIONS",
    "WildDigitsSpec",
    "build_wild_digits",
    "list_pool_images",
    "load_image_pool",
    "register_builtin_pools",
    "register_datasets",
    "register_image_pool",
    "register_wild_digits",
]


def register_datasets(cfg) -> None:
    """Registers every dataset a pudet config can name: the wild-digits benchmark described by
    ``cfg.WILD_DIGITS`` and the builtin image pools. Lazy: no file is built, listed or read here."""
    register_wild_digits(WildDigitsSpec.from_config(cfg), root=cfg.WILD_DIGITS.ROOT or None)
    register_builtin_pools()
