"""Unlabeled image pools "in the wild": any folder of images (e.g. ImageNet's train folder, 1.28M files
in class subfolders) or a list file, registered as a detectron2 dataset of file names.

Registration opens no image and lists no folder: the listing happens when the dataset is first loaded,
and is cached (one text file per folder, under ``cache_dir``) so later loads, in this process or
another, skip the walk. The cache is keyed by the folder's absolute path and holds the modification time
of every folder of the tree: a file added, removed or renamed anywhere changes its folder's time, and the
next load walks again (``refresh=True`` forces a walk). Image sizes are read when an image is loaded
(detectron2's mappers fill ``height``/``width`` then). A folder's files that are not read as images (another
extension, e.g. ``.gif``, or a hidden name) are left out, and each listing logs how many and why.

Dataset dicts: ``{"file_name": absolute path, "image_id": index in the sorted listing}``.
"""
import hashlib
import json
import logging
import os
from typing import List

from ...utils import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "default_cache_dir",
    "list_pool_images",
    "load_image_pool",
    "register_image_pool",
    "register_builtin_pools",
    "pool_dataset_name",
    "use_pool_option",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
_CACHE_VERSION = 3


def default_cache_dir() -> str:
    """``$PUDET_CACHE/pool_listings`` (``~/.cache/pudet/pool_listings`` when unset)."""
    return os.path.join(os.path.expanduser(os.getenv("PUDET_CACHE", "~/.cache/pudet")), "pool_listings")


def _skip_reason(name: str):
    """Why a file named ``name`` is not a pool image, or None when it is one."""
    if name.startswith("."):
        return "hidden (the name starts with '.')"
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        return f"{os.path.splitext(name)[1].lower() or 'no extension'}: not an image type the pool reads"
    return None


def _walk_images(root: str):
    """Image files under ``root`` (any depth, symlinks followed), as sorted relative paths; the files left
    out, ``{reason: {"count", "example"}}``; and the modification time (ns) of every folder walked, by
    relative path."""
    found, skipped, folders = [], {}, {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()  # walked in order: the examples of skipped files do not depend on the file system
        rel = os.path.relpath(dirpath, root)
        folders[rel] = os.stat(dirpath).st_mtime_ns
        for name in sorted(filenames):
            path = name if rel == "." else os.path.join(rel, name)
            reason = _skip_reason(name)
            if reason is None:
                found.append(path)
            else:
                skipped.setdefault(reason, {"count": 0, "example": path})["count"] += 1
    return sorted(found), skipped, folders


def _log_skipped(source: str, skipped: dict) -> None:
    """Says which of a folder's files the listing left out, and why."""
    if skipped:
        said = "; ".join(f"{s['count']} {reason} (e.g. {s['example']})" for reason, s in sorted(skipped.items()))
        logger.warning(f"Image pool {source}: {sum(s['count'] for s in skipped.values())} files skipped: {said}. "
                       f"Pool images are files ending in {', '.join(IMAGE_EXTENSIONS)}")


def _unchanged(root: str, folders: dict) -> bool:
    """Whether every folder of a cached listing still exists with the modification time it had."""
    for rel, mtime in folders.items():
        try:
            if os.stat(os.path.join(root, rel)).st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


def _read_list_file(list_file: str, sample: int = 100) -> List[str]:
    """Absolute paths from a list file: one path per line, relative ones against the file's folder;
    blank lines and lines starting with '#' are skipped. Up to ``sample`` evenly spaced paths are checked:
    a file none of whose paths exists is an error, missing ones among them a warning."""
    base = os.path.dirname(os.path.abspath(list_file))
    with open(list_file) as f:
        lines = [line.strip() for line in f]
    paths = [os.path.normpath(os.path.join(base, p)) for p in lines if p and not p.startswith("#")]
    checked = paths[:: max(1, len(paths) // sample)]
    missing = [p for p in checked if not os.path.isfile(p)]
    if missing and len(missing) == len(checked) and not any(os.path.isfile(p) for p in paths):
        raise FileNotFoundError(f"image pool list file {list_file}: none of its {len(paths)} paths exists "
                                f"(e.g. {missing[0]}; relative paths are read against the list file's folder)")
    if missing:
        logger.warning(f"image pool list file {list_file}: {len(missing)} of {len(checked)} paths checked do not "
                       f"exist (e.g. {missing[0]}); missing images are skipped as unreadable")
    return paths


def list_pool_images(root_or_list_file: str, *, cache_dir: str = None, refresh: bool = False) -> List[str]:
    """Absolute paths of the pool's images, in a stable (sorted) order; a folder's listing is cached."""
    source = os.path.abspath(os.path.expanduser(root_or_list_file))
    if os.path.isfile(source):
        return _read_list_file(source)
    if not os.path.isdir(source):
        raise FileNotFoundError(f"image pool '{root_or_list_file}' is neither a folder nor a list file")
    cache_dir = cache_dir or default_cache_dir()
    cache_file = os.path.join(cache_dir, hashlib.sha1(source.encode()).hexdigest()[:16] + ".txt")
    header = {"version": _CACHE_VERSION, "root": source, "extensions": list(IMAGE_EXTENSIONS)}
    if not refresh and os.path.isfile(cache_file):
        with open(cache_file) as f:
            cached_header = json.loads(f.readline())
            folders = cached_header.pop("folders", {})
            skipped = cached_header.pop("skipped", {})
            if cached_header == header and _unchanged(source, folders):
                rel = f.read().splitlines()
                logger.info(f"Image pool {source}: {len(rel)} images (cached listing {cache_file})")
                _log_skipped(source, skipped)
                return [os.path.join(source, p) for p in rel]
            if cached_header == header:
                logger.info(f"Image pool {source} changed since its listing was cached")
    logger.info(f"Listing image pool {source} ...")
    rel, skipped, folders = _walk_images(source)
    atomic_write(cache_file, lambda f: f.writelines([json.dumps({**header, "folders": folders, "skipped": skipped})
                                                     + "\n"] + [p + "\n" for p in rel]))
    logger.info(f"Image pool {source}: {len(rel)} images (listing cached in {cache_file})")
    _log_skipped(source, skipped)
    return [os.path.join(source, p) for p in rel]


def load_image_pool(root_or_list_file: str, *, cache_dir: str = None, refresh: bool = False) -> List[dict]:
    """The pool as detectron2 dataset dicts (file name and image id only)."""
    paths = list_pool_images(root_or_list_file, cache_dir=cache_dir, refresh=refresh)
    if not paths:
        raise ValueError(f"image pool '{root_or_list_file}' holds no image (extensions {IMAGE_EXTENSIONS})")
    return [{"file_name": p, "image_id": i} for i, p in enumerate(paths)]


def register_image_pool(name: str, root_or_list_file: str, *, cache_dir: str = None, refresh: bool = False,
                        **metadata) -> str:
    """Registers an unlabeled image pool under ``name`` (lazily: nothing is read until it is loaded).

    Registering the same source under the same name again is a no-op; another source under a name
    already taken is an error. Extra keyword arguments go to the dataset's metadata.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    source = os.path.abspath(os.path.expanduser(root_or_list_file))
    if name in DatasetCatalog.list():
        if MetadataCatalog.get(name).get("pool_source", None) != source:
            raise ValueError(f"dataset '{name}' is already registered (not as the image pool {source})")
        return name
    DatasetCatalog.register(
        name, lambda: load_image_pool(source, cache_dir=cache_dir, refresh=refresh)
    )
    MetadataCatalog.get(name).set(pool_source=source, evaluator_type="unlabeled", **metadata)
    return name


def pool_dataset_name(root_or_list_file: str) -> str:
    """The dataset name of a pool given by its path (``PU.POOL``, ``--pool``): ``pool:<absolute path>``."""
    return f"pool:{os.path.abspath(os.path.expanduser(root_or_list_file))}"


def use_pool_option(cfg) -> None:
    """When ``cfg.PU.POOL`` names a folder or list file, registers it (:func:`pool_dataset_name`) and makes it
    ``PU.UNLABELED_DATASETS``. Call before ``cfg.freeze()``; the tools do."""
    if cfg.PU.POOL:
        cfg.PU.UNLABELED_DATASETS = (register_image_pool(pool_dataset_name(cfg.PU.POOL), cfg.PU.POOL),)


def register_builtin_pools(root: str = None) -> None:
    """Registers the pools named like detectron2's builtin datasets, under ``$DETECTRON2_DATASETS``:
    ``imagenet_2012_train_unlabeled`` = ``imagenet/train`` (class subfolders of JPEGs)."""
    root = os.path.expanduser(root or os.getenv("DETECTRON2_DATASETS", "datasets"))
    register_image_pool("imagenet_2012_train_unlabeled", os.path.join(root, "imagenet", "train"))
