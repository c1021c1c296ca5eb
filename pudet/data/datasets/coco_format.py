"""The user's own labeled datasets: any COCO-format annotation file and its image folder, named in the config
(``DATASETS.COCO_FORMAT``, a list of ``(name, json_file, image_root)``) and registered by
:func:`pudet.data.register_datasets` in every process a tool runs, those that ``--num-gpus`` spawns included.

Registration is lazy, as detectron2's ``register_coco_instances``: the file is read when the dataset is first
loaded. :func:`check_coco_format` (run by every tool's setup, ``pudet.engine.setup_cfg``, before it builds anything) refuses a missing file or image
folder; loading refuses an image folder that holds none of the file's images (a wrong ``image_root``).
"""
import logging
import os
from typing import List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

__all__ = ["check_coco_format", "coco_format_entries", "load_coco_format", "register_coco_format"]

logger = logging.getLogger(__name__)


def coco_format_entries(cfg) -> List[tuple]:
    """``DATASETS.COCO_FORMAT`` as ``(name, json_file, image_root)`` triples; any other shape is an error."""
    entries = []
    for entry in cfg.DATASETS.COCO_FORMAT:
        if len(entry) != 3 or not all(isinstance(v, str) and v for v in entry):
            raise ValueError(f"DATASETS.COCO_FORMAT entry {list(entry)}: give (name, json_file, image_root), three "
                             "non-empty strings, e.g. [('my_train', 'data/train.json', 'data/train_images')]")
        entries.append(tuple(entry))
    return entries


def check_coco_format(entries: Sequence[tuple], where: str = "") -> None:
    """Raises FileNotFoundError naming the dataset for an annotation file or an image folder that does not exist."""
    for name, json_file, image_root in entries:
        if not os.path.isfile(json_file):
            raise FileNotFoundError(f"DATASETS.COCO_FORMAT dataset '{name}'{where}: annotation file {json_file} "
                                    f"not found (relative paths are read from {os.getcwd()})")
        if not os.path.isdir(image_root):
            raise FileNotFoundError(f"DATASETS.COCO_FORMAT dataset '{name}'{where}: image folder {image_root} not "
                                    f"found (relative paths are read from {os.getcwd()})")


def load_coco_format(json_file: str, image_root: str, name: str, sample: int = 50) -> List[dict]:
    """detectron2's dataset dicts of a COCO-format file (``load_coco_json``). Up to ``sample`` evenly spaced
    images are looked for under ``image_root``: none found is an error (the folder does not match the file's
    ``file_name`` values), some missing a warning."""
    dicts = load_coco_json(json_file, image_root, name)
    checked = [d["file_name"] for d in dicts[:: max(1, len(dicts) // sample)]]
    missing = [p for p in checked if not os.path.isfile(p)]
    if checked and len(missing) == len(checked):
        raise FileNotFoundError(
            f"dataset '{name}': none of the {len(checked)} images checked is in the image folder {image_root} "
            f"(e.g. {missing[0]}, from the file_name of an image of {json_file}): give the folder that the "
            "file names are relative to")
    if missing:
        logger.warning(f"dataset '{name}': {len(missing)} of {len(checked)} images checked are missing from "
                       f"{image_root} (e.g. {missing[0]})")
    return dicts


def register_coco_format(name: str, json_file: str, image_root: str) -> None:
    """Registers a COCO-format dataset under ``name`` (evaluated by detectron2's ``COCOEvaluator``), paths made
    absolute. Lazy; registering the same files under the same name again is a no-op, other files under a name
    already taken (e.g. detectron2's builtin ``coco_2017_train``) an error."""
    json_file, image_root = os.path.abspath(json_file), os.path.abspath(image_root)
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file", None), meta.get("image_root", None)) != (json_file, image_root):
            raise ValueError(f"DATASETS.COCO_FORMAT names '{name}', a dataset already registered with other files "
                             f"({meta.get('json_file', None)}): choose another name")
        return
    DatasetCatalog.register(name, lambda: load_coco_format(json_file, image_root, name))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco")
