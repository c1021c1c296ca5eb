"""The built-in wild-digits benchmark: a miniature of COCO (labeled) + ImageNet (unlabeled, in the wild).

Built deterministically from scikit-learn's bundled handwritten digits and the DejaVu fonts matplotlib
ships (:mod:`pudet.data.datasets.glyphs`), so it needs no download. Every scene is a textured, noisy canvas
with objects drawn at random sizes, rotations and contrasts, plus clutter strokes. Some digit classes are
*known* (the detector's categories); every other object is an *unknown* thing the detector is never taught:
mostly other kinds of things (printed letters and symbols, shapes) and some unknown digits, as most of
ImageNet's pictures show things that are not COCO's classes.

Splits, registered as ``{prefix}_train``, ``{prefix}_pool`` and ``{prefix}_val``:

* ``train`` (the labeled set L, the COCO train2017 analogue): positive scenes, every known digit boxed;
  they may also hold unknown things and clutter, unlabeled, as COCO images hold unlabeled things;
  a fraction ``large_fraction`` are close-ups of 1-2 large objects (COCO has large objects too);
* ``pool`` (the unlabeled pool U, the ImageNet analogue): a fraction ``pos_fraction`` of positive scenes,
  the rest negative scenes holding only unknown things and clutter; a fraction ``object_centric_fraction``
  of them are object-centric (1-2 large objects on a strongly coloured gradient: the web-photo look), the
  others look like L's. It is registered as an unlabeled image pool (file names only). Its hidden truth
  (which images are positive, the boxes of their known digits) is in ``pool_truth.json``, read only by
  evaluation code (``metadata.truth_json``);
* ``val`` (the val2017 analogue): positive scenes like L's, drawn from handwriting L and U never use.

Files, under ``root/<seed and hash of the spec>/``: ``train/``, ``pool/``, ``val/`` (JPEG images),
``train.json``, ``val.json``, ``pool_truth.json`` (COCO format) and ``spec.json``, written last: a
folder with ``spec.json`` is complete (it is built under a temporary name and renamed).
"""
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .glyphs import SHAPES, GlyphBank, background, blend, clutter_alpha, glyph_alpha, stroke_colour

__all__ = ["CONFIG_DIR", "PU_CONFIG", "TEACHER_CONFIG", "WildDigitsSpec", "build_wild_digits", "register_wild_digits",
           "default_root"]

logger = logging.getLogger(__name__)

_SPLIT_IDS = {"train": 1, "pool": 2, "val": 3}
_FORMAT_VERSION = 3


@dataclasses.dataclass(frozen=True)
class WildDigitsSpec:
    """Everything that determines the benchmark's content (the same spec gives the same files)."""

    seed: int = 0
    image_size: int = 128
    num_labeled: int = 200
    num_pool: int = 2000
    num_val: int = 300
    pos_fraction: float = 0.25
    known_classes: Tuple[int, ...] = (0, 1, 2, 3, 4)
    # objects per scene (inclusive ranges) and object height in pixels
    known_per_scene: Tuple[int, int] = (1, 5)
    unknown_per_scene: Tuple[int, int] = (1, 4)
    clutter_per_scene: Tuple[int, int] = (1, 4)
    digit_size: Tuple[int, int] = (10, 40)
    # the unknown things' families, as weights: printed characters, shapes, unknown digits
    unknown_mix: Tuple[float, float, float] = (0.55, 0.25, 0.20)
    # fraction of the scenes that are not object-centric (L, val, the rest of the pool) drawn as close-ups:
    # 1-2 objects of height large_size on a plain background (COCO has large objects too)
    large_fraction: float = 0.2
    # fraction of pool scenes drawn "object-centric", as web images often are (1-2 large objects on a
    # strongly coloured gradient, the ImageNet look), positive and negative alike
    object_centric_fraction: float = 0.5
    large_size: Tuple[int, int] = (36, 60)

    def __post_init__(self):
        known = tuple(int(c) for c in self.known_classes)
        object.__setattr__(self, "known_classes", known)
        if not known or len(set(known)) != len(known) or not set(known) <= set(range(10)):
            raise ValueError(f"known_classes must be distinct digits 0-9, got {self.known_classes}")
        if len(known) == 10:
            raise ValueError("known_classes must leave at least one unknown digit class")
        for name in ("object_centric_fraction", "large_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if len(self.unknown_mix) != 3 or min(self.unknown_mix) < 0 or sum(self.unknown_mix) <= 0:
            raise ValueError(f"unknown_mix must be 3 non-negative weights, not all 0, got {self.unknown_mix}")
        if not 0.0 < self.pos_fraction <= 1.0:
            raise ValueError(f"pos_fraction must lie in (0, 1], got {self.pos_fraction}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        for name in ("num_labeled", "num_pool", "num_val"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("digit_size", "large_size"):
            lo, hi = getattr(self, name)
            if not 6 <= lo <= hi <= self.image_size // 2:
                raise ValueError(f"{name} {(lo, hi)} must satisfy 6 <= lo <= hi <= image_size / 2")

    @classmethod
    def from_config(cls, cfg) -> "WildDigitsSpec":
        c = cfg.WILD_DIGITS
        return cls(
            seed=c.SEED,
            image_size=c.IMAGE_SIZE,
            num_labeled=c.NUM_LABELED,
            num_pool=c.NUM_POOL,
            num_val=c.NUM_VAL,
            pos_fraction=c.POS_FRACTION,
            object_centric_fraction=c.OBJECT_CENTRIC_FRACTION,
            large_fraction=c.LARGE_FRACTION,
            unknown_mix=tuple(c.UNKNOWN_MIX),
            known_classes=tuple(c.KNOWN_CLASSES),
        )

    @property
    def unknown_classes(self) -> Tuple[int, ...]:
        return tuple(c for c in range(10) if c not in self.known_classes)

    @property
    def thing_classes(self) -> List[str]:
        return [f"digit {c}" for c in self.known_classes]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def key(self) -> str:
        """Folder name: the seed plus a hash of the whole spec and the format version."""
        blob = json.dumps({"spec": self.to_dict(), "format": _FORMAT_VERSION}, sort_keys=True)
        return f"seed{self.seed}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


# the benchmark's configs, in the repository beside the package: the defaults of the tools
CONFIG_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "configs",
                                           "WildDigits"))
TEACHER_CONFIG = os.path.join(CONFIG_DIR, "faster_rcnn_R18_FPN_teacher.yaml")
PU_CONFIG = os.path.join(CONFIG_DIR, "pu_R18_nnpu.yaml")


def default_root() -> str:
    """``$DETECTRON2_DATASETS/wild_digits`` (``datasets/wild_digits`` when the variable is unset)."""
    return os.path.join(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "wild_digits")


class _SceneRenderer:
    """Draws one scene from its own random generator (so each image depends only on its index)."""

    def __init__(self, spec: WildDigitsSpec, bank: GlyphBank, held_out: bool):
        self.spec = spec
        self.bank = bank
        self.held_out = held_out

    def _unknown_thing(self, rng):
        """(family, index) of an object of no known class: a printed character, a shape or an unknown digit."""
        family = rng.choice(("char", "shape", "digit"), p=np.asarray(self.spec.unknown_mix) / sum(self.spec.unknown_mix))
        if family == "char":
            return "char", int(rng.integers(self.bank.num_chars))
        if family == "shape":
            return "shape", int(rng.integers(len(SHAPES)))
        return "digit", int(rng.choice(self.spec.unknown_classes))

    def _objects(self, rng, positive: bool, large: bool):
        """The (family, index) of the scene's objects, known digits first."""
        spec = self.spec
        known = lambda: ("digit", int(rng.choice(spec.known_classes)))  # noqa: E731
        if large:
            # a close-up: one large object (a known digit on a positive scene), sometimes a second of either kind
            objects = [known() if positive else self._unknown_thing(rng)]
            if rng.random() < 0.3:
                objects.append(known() if positive and rng.random() < 0.5 else self._unknown_thing(rng))
            return objects
        if positive:
            n = rng.integers(spec.known_per_scene[0], spec.known_per_scene[1] + 1)
            return [known() for _ in range(n)] + [self._unknown_thing(rng) for _ in range(rng.integers(0, 3))]
        n = rng.integers(spec.unknown_per_scene[0], spec.unknown_per_scene[1] + 1)
        return [self._unknown_thing(rng) for _ in range(n)]

    def render(self, rng, positive: bool, object_centric: bool = False):
        """Returns (BGR uint8 image, [(class, box)] of known digits)."""
        spec, s = self.spec, self.spec.image_size
        large = object_centric or rng.random() < spec.large_fraction
        img = background(rng, s, object_centric)
        polarity = 1.0 if img.mean() < 128 else -1.0
        size_range = spec.large_size if large else spec.digit_size
        n_clutter = rng.integers(spec.clutter_per_scene[0], spec.clutter_per_scene[1] + 1) // (2 if large else 1)
        for _ in range(n_clutter):
            blend(img, clutter_alpha(rng, s) * rng.uniform(0.5, 1.0), stroke_colour(rng, img, polarity))
        placed, objects = [], []
        for family, index in self._objects(rng, positive, large):
            glyph = self.bank.draw(rng, family, index, held_out=self.held_out)
            for _ in range(20):  # rejection sampling: no two objects overlap by more than IoU 0.2
                alpha, box = glyph_alpha(rng, glyph, s, size_range)
                if box is not None and all(_iou(box, other) < 0.2 for other in placed):
                    break
            else:
                continue
            placed.append(box)
            blend(img, alpha, stroke_colour(rng, img, polarity))
            if family == "digit" and index in spec.known_classes:
                objects.append((index, box))
        img += rng.normal(0, rng.uniform(2, 8), size=img.shape)
        return np.clip(img, 0, 255).astype(np.uint8), objects


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _coco_categories(spec):
    return [{"id": i + 1, "name": name} for i, name in enumerate(spec.thing_classes)]


def _write_split(spec, renderer, out_dir, split, count, positives, object_centric=None):
    """Renders one split into ``out_dir/split``; returns its COCO dict (pool: with ``positive`` and
    ``object_centric`` flags)."""
    os.makedirs(os.path.join(out_dir, split))
    cat_id = {c: i + 1 for i, c in enumerate(spec.known_classes)}
    images, annotations = [], []
    for idx in range(count):
        rng = np.random.default_rng([spec.seed, _SPLIT_IDS[split], idx])
        oc = bool(object_centric[idx]) if object_centric is not None else False
        img, objects = renderer.render(rng, positive=bool(positives[idx]), object_centric=oc)
        file_name = f"{split}/{idx:06d}.jpg"
        cv2.imwrite(os.path.join(out_dir, file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        record = {"id": idx + 1, "file_name": file_name, "height": img.shape[0], "width": img.shape[1]}
        if split == "pool":
            record["positive"] = bool(positives[idx])
            record["object_centric"] = oc
        images.append(record)
        for c, (x0, y0, x1, y1) in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": idx + 1,
                    "category_id": cat_id[c],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": _coco_categories(spec)}


def build_wild_digits(spec: WildDigitsSpec, root: str = None) -> str:
    """Builds the benchmark's files once and returns their folder (an existing complete build is reused)."""
    root = root or default_root()
    final = os.path.join(root, spec.key())
    if os.path.isfile(os.path.join(final, "spec.json")):
        return final
    os.makedirs(root, exist_ok=True)
    logger.info(f"Building the wild-digits benchmark in {final} ...")
    tmp = tempfile.mkdtemp(prefix=".building-", dir=root)
    try:
        bank = GlyphBank()
        fit = _SceneRenderer(spec, bank, held_out=False)
        heldout = _SceneRenderer(spec, bank, held_out=True)
        pool_rng = np.random.default_rng([spec.seed, 0])
        num_pos = int(round(spec.pos_fraction * spec.num_pool))
        pool_positive = np.zeros(spec.num_pool, dtype=bool)
        pool_positive[pool_rng.permutation(spec.num_pool)[:num_pos]] = True
        pool_object = pool_rng.random(spec.num_pool) < spec.object_centric_fraction
        splits = {
            "train.json": _write_split(spec, fit, tmp, "train", spec.num_labeled, np.ones(spec.num_labeled, bool)),
            "pool_truth.json": _write_split(spec, fit, tmp, "pool", spec.num_pool, pool_positive, pool_object),
            "val.json": _write_split(spec, heldout, tmp, "val", spec.num_val, np.ones(spec.num_val, bool)),
        }
        for name, content in splits.items():
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(content, f)
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump({"spec": spec.to_dict(), "format": _FORMAT_VERSION}, f, indent=1)
        try:
            os.rename(tmp, final)
        except OSError:
            # another process finished the same build first: keep its (identical) files
            if not os.path.isfile(os.path.join(final, "spec.json")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    logger.info(f"Built the wild-digits benchmark: {spec.num_labeled} labeled, {spec.num_pool} pool "
                f"({num_pos} positive), {spec.num_val} val images")
    return final


def register_wild_digits(spec: WildDigitsSpec = None, root: str = None, prefix: str = "wild_digits") -> Dict[str, str]:
    """Registers ``{prefix}_train``, ``{prefix}_val`` (labeled, COCO format) and ``{prefix}_pool``
    (unlabeled) in detectron2's catalogs. The files are built on first use, not at registration.

    Registering the same spec again is a no-op; registering another spec under the same names is an
    error (use another ``prefix``). Returns ``{"train": name, "val": name, "pool": name}``.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import load_coco_json

    spec = spec or WildDigitsSpec()
    folder = os.path.join(root or default_root(), spec.key())
    names = {split: f"{prefix}_{split}" for split in ("train", "val", "pool")}
    if names["train"] in DatasetCatalog.list():
        registered = MetadataCatalog.get(names["train"]).get("wild_digits_spec", None)
        if registered != spec.to_dict() or MetadataCatalog.get(names["train"]).image_root != folder:
            raise ValueError(
                f"'{names['train']}' is already registered with another wild-digits spec or root; "
                "register this one under another prefix"
            )
        return names

    def load_labeled(split):
        build_wild_digits(spec, os.path.dirname(folder))
        return load_coco_json(os.path.join(folder, f"{split}.json"), folder, names[split])

    def load_pool():
        build_wild_digits(spec, os.path.dirname(folder))
        with open(os.path.join(folder, "pool_truth.json")) as f:
            images = json.load(f)["images"]
        # the unlabeled view: file names only, like any image pool
        return [{"file_name": os.path.join(folder, im["file_name"]), "image_id": im["id"]} for im in images]

    common = dict(thing_classes=spec.thing_classes, wild_digits_spec=spec.to_dict(), image_root=folder)
    for split in ("train", "val"):
        DatasetCatalog.register(names[split], lambda split=split: load_labeled(split))
        MetadataCatalog.get(names[split]).set(
            json_file=os.path.join(folder, f"{split}.json"), evaluator_type="coco", **common
        )
    DatasetCatalog.register(names["pool"], load_pool)
    MetadataCatalog.get(names["pool"]).set(
        truth_json=os.path.join(folder, "pool_truth.json"),
        pos_fraction=round(spec.pos_fraction * spec.num_pool) / spec.num_pool,
        evaluator_type="pool_truth",
        **common,
    )
    return names
