"""What every pudet tool does before its work: the config (detectron2's with pudet's keys, a yaml and the command
line's overrides), detectron2's default setup (logs, the config saved beside the outputs, seeds), and every
dataset the config names registered and checked."""
import argparse

from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import DATASET_KEYS, check_config, get_pudet_cfg
from ..data import register_datasets
from ..data.build import register_pu_splits
from ..data.datasets import check_coco_format, coco_format_entries, use_pool_option

__all__ = ["config_argument_parser", "setup_cfg"]


def setup_cfg(args, default_config: str, *, edit=None, dataset_keys=DATASET_KEYS, pu_splits: bool = False):
    """The frozen config of a tool run, set up as detectron2's tools do.

    Args:
        args: the tool's arguments, from detectron2's ``default_argument_parser`` (``config_file``, ``opts``).
        default_config: the yaml read when ``args.config_file`` is empty.
        edit: ``fn(cfg)``, the tool's own options applied after the overrides, before the config freezes.
        dataset_keys: the keys whose dataset names must be registered (:func:`pudet.config.check_config`).
        pu_splits: also register the PU classifier's training splits (:func:`pudet.data.build.register_pu_splits`).
    """
    cfg = get_pudet_cfg(args.config_file or default_config, args.opts)
    if edit is not None:
        edit(cfg)
    use_pool_option(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="pudet")
    register_datasets(cfg)
    if pu_splits:
        register_pu_splits(cfg)
    check_coco_format(coco_format_entries(cfg), f" (config {args.config_file})" if args.config_file else "")
    check_config(cfg, args.config_file, dataset_keys)
    return cfg


def config_argument_parser() -> argparse.ArgumentParser:
    """The config arguments of detectron2's ``default_argument_parser`` alone (``--config-file`` and the trailing
    ``KEY VALUE`` overrides), as a parent parser for the tools that run in one process (no launch flags)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER,
                        help="config overrides, KEY VALUE pairs at the end of the command")
    return parser
