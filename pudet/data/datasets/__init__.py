"""Dataset registration: the user's COCO-format datasets, image pools in the wild, pseudo-label files and the
built-in wild-digits benchmark.

Nothing registers at import: tools call :func:`register_datasets` (idempotent) after reading the config.
"""
from ...config import pseudo_score_thresh
from .coco_format import check_coco_format, coco_format_entries, load_coco_format, register_coco_format
from .glyph_pretrain import GlyphPretrainSpec, pretrained_backbone, resolve_pretrained_weights
from .image_pool import (
    IMAGE_EXTENSIONS,
    list_pool_images,
    load_image_pool,
    pool_dataset_name,
    register_builtin_pools,
    register_image_pool,
    use_pool_option,
)
from .pseudo_labeled import check_pseudo_categories, load_pseudo_labeled, pseudo_dataset_name, register_pseudo_labeled
from .wild_digits import WildDigitsSpec, build_wild_digits, register_wild_digits

__all__ = [
    "GlyphPretrainSpec",
    "IMAGE_EXTENSIONS",
    "WildDigitsSpec",
    "build_wild_digits",
    "check_coco_format",
    "coco_format_entries",
    "load_coco_format",
    "register_coco_format",
    "check_pseudo_categories",
    "load_pseudo_labeled",
    "pseudo_dataset_name",
    "list_pool_images",
    "load_image_pool",
    "register_builtin_pools",
    "register_datasets",
    "register_image_pool",
    "register_pseudo_labeled",
    "pool_dataset_name",
    "pretrained_backbone",
    "resolve_pretrained_weights",
    "use_pool_option",
    "register_wild_digits",
]


def register_datasets(cfg) -> None:
    """Registers every dataset a pudet config can name: the COCO-format datasets of ``DATASETS.COCO_FORMAT``,
    the wild-digits benchmark described by ``cfg.WILD_DIGITS``, the builtin image pools, and each pseudo-label
    file of ``DATASETS.TRAIN_PSEUDO`` (as :func:`pseudo_dataset_name`, at tau = ``DATASETS.PSEUDO_SCORE_THRESH``
    and the box-level purification threshold ``DATASETS.PSEUDO_PU_SCORE_THRESH``). Lazy: no file is built,
    listed or read here."""
    for name, json_file, image_root in coco_format_entries(cfg):
        register_coco_format(name, json_file, image_root)
    register_wild_digits(WildDigitsSpec.from_config(cfg), root=cfg.WILD_DIGITS.ROOT or None)
    register_builtin_pools()
    if cfg.PU.POOL:
        register_image_pool(pool_dataset_name(cfg.PU.POOL), cfg.PU.POOL)
    tau = pseudo_score_thresh(cfg)
    for path in cfg.DATASETS.TRAIN_PSEUDO:
        pu = cfg.DATASETS.PSEUDO_PU_SCORE_THRESH
        register_pseudo_labeled(pseudo_dataset_name(path, tau, pu), path, "", tau, cfg.DATASETS.PSEUDO_KEEP_EMPTY, pu)
