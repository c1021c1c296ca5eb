"""Dataset mappers (``@configurable``, returning dicts like detectron2's ``DatasetMapper``) and a reader
that survives images in the wild."""
import copy
import logging
import warnings

import cv2
import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image, ImageOps

__all__ = ["UnreadableImage", "read_image_safely", "PUDatasetMapper", "InferenceMapper", "PseudoLabelMapper",
           "ObjectCropMapper"]

logger = logging.getLogger(__name__)


_EXIF_ORIENTATION = 0x0112


class UnreadableImage(Exception):
    """An image that cannot be decoded correctly; ``str(e)`` is the reason."""


def read_image_safely(path: str, image_format: str = "BGR", max_pixels: int = 64_000_000,
                      target_size: int = 1024) -> np.ndarray:
    """Decodes an image from the wild into an (H, W, 3) uint8 array in ``image_format`` ("BGR" or "RGB").

    Handles CMYK, 16-bit and 32-bit grayscale, palette and alpha images (converted, alpha composited on
    white), EXIF orientation, and images above ``max_pixels``: JPEGs are decoded at a reduced scale (at
    least ``target_size`` on the shorter side), others are refused. Raises :class:`UnreadableImage` with
    the reason for a missing, empty, truncated, non-image or oversized file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as f:
                if not f.read(1):
                    raise UnreadableImage("empty file")
                f.seek(0)
                img = Image.open(f)
                width, height = img.size
                if width * height > max_pixels:
                    if img.format != "JPEG":
                        raise UnreadableImage(f"too large ({width}x{height} pixels, limit {max_pixels})")
                    scale = max(1, min(width, height) // target_size)
                    img.draft("RGB", (width // scale, height // scale))
                img.load()
    except UnreadableImage:
        raise
    except FileNotFoundError:
        raise UnreadableImage("file not found")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"too large ({e})")
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image (unidentified format)")
    except (OSError, SyntaxError, ValueError) as e:
        raise UnreadableImage(f"cannot decode: {e}")
    if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # (exif_transpose copies an image it does not turn)
        img = ImageOps.exif_transpose(img)
    img = _to_rgb(img)
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise UnreadableImage(f"unexpected decoded shape {array.shape}")
    return _from_rgb(array, image_format)


def _from_rgb(array: np.ndarray, image_format: str) -> np.ndarray:
    """An (H, W, 3) RGB array in ``image_format`` ("BGR": OpenCV's channel swap, the same array as
    ``array[:, :, ::-1].copy()``)."""
    return cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if image_format == "BGR" else array


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale the used range to 8 bits
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros_like(a) if hi <= lo else (a - lo) * (255.0 / (hi - lo))
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros_like(a) if hi <= lo else (a - lo) * (255.0 / (hi - lo))
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


class PUDatasetMapper:
    """Maps a dataset dict to the PU classifier's input: the image resized to a fixed square (so batches
    stack without padding), a random horizontal flip in training if configured, and ``pu_label`` (1 for
    labeled/positive, 0 for unlabeled) taken from the dict.

    Unreadable images: in training the mapper returns None (pudet's training loaders skip it: see
    :func:`pudet.data.build.build_skipping_train_loader`); in inference it returns ``{"image_id", "file_name",
    "unreadable": reason}`` so that callers can list it.
    """

    @configurable
    def __init__(self, is_train: bool, *, input_size: int, random_flip: bool, image_format: str = "BGR"):
        self.is_train = is_train
        self.image_format = image_format
        self.input_size = input_size
        augs = [T.Resize((input_size, input_size))]
        if is_train and random_flip:
            augs.append(T.RandomFlip(horizontal=True, vertical=False))
        self.augmentations = T.AugmentationList(augs)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "input_size": cfg.PU.INPUT_SIZE,
            "random_flip": cfg.INPUT.RANDOM_FLIP == "horizontal",
            "image_format": cfg.INPUT.FORMAT,
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            rgb = read_image_safely(dataset_dict["file_name"], "RGB")
        except UnreadableImage as e:
            if self.is_train:
                logger.warning(f"Skipping unreadable image {dataset_dict['file_name']}: {e}")
                return None
            return {"image_id": dataset_dict["image_id"], "file_name": dataset_dict["file_name"], "unreadable": str(e)}
        utils.check_image_size(dataset_dict, rgb)
        if self.is_train or rgb.shape[:2] != (self.input_size, self.input_size):
            aug_input = T.AugInput(_from_rgb(rgb, self.image_format))
            self.augmentations(aug_input)
            chw = aug_input.image.transpose(2, 0, 1)
        else:
            # an image of the input size as such (Pillow's resize to its own size is a copy), its channels put in
            # the model's order in the same copy that makes it (C, H, W)
            chw = rgb.transpose(2, 0, 1)[::-1] if self.image_format == "BGR" else rgb.transpose(2, 0, 1)
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(chw))
        dataset_dict.pop("annotations", None)
        return dataset_dict


def _read_for_inference(dataset_dict, image_format):
    """``({"image_id", "file_name"}, image)`` of an inference mapper's input, or ``({..., "unreadable": reason},
    None)`` when :func:`read_image_safely` cannot decode it."""
    out = {"image_id": dataset_dict["image_id"], "file_name": dataset_dict["file_name"]}
    try:
        return out, read_image_safely(dataset_dict["file_name"], image_format)
    except UnreadableImage as e:
        return {**out, "unreadable": str(e)}, None


class InferenceMapper:
    """Maps an unlabeled dataset dict to a detector's inference input, as detectron2's test-time
    ``DatasetMapper`` does (shortest edge resized to ``INPUT.MIN_SIZE_TEST``), with ``height``/``width`` the
    original size so that predictions come back in original coordinates. Images are read with
    :func:`read_image_safely`; an unreadable one becomes ``{"image_id", "file_name", "unreadable": reason}``.
    """

    @configurable
    def __init__(self, *, min_size: int, max_size: int, image_format: str = "BGR"):
        self.resize = T.ResizeShortestEdge([min_size, min_size], max_size)
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg):
        return {"min_size": cfg.INPUT.MIN_SIZE_TEST, "max_size": cfg.INPUT.MAX_SIZE_TEST,
                "image_format": cfg.INPUT.FORMAT}

    def __call__(self, dataset_dict):
        out, image = _read_for_inference(dataset_dict, self.image_format)
        if image is None:
            return out
        height, width = image.shape[:2]
        resized = self.resize.get_transform(image).apply_image(image)
        return {**out, "height": height, "width": width,
                "image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))}


class PseudoLabelMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` for pseudo-labelled images: the labeled images' augmentations (resize,
    horizontal flip per ``INPUT.RANDOM_FLIP``) plus, in training, a colour transformation (paper Section
    4.1): brightness, contrast and saturation each scaled by a factor drawn from
    ``[1 - INPUT.PSEUDO_COLOR_JITTER, 1 + INPUT.PSEUDO_COLOR_JITTER]``. Colour changes move no box.

    Images are decoded by :func:`read_image_safely`, as :class:`InferenceMapper` decoded them when the
    pseudo-labels were made: an image above the pixel limit is decoded at the same reduced scale (the size
    and boxes that ``label`` recorded), a 16-bit or palette image to the same 8-bit pixels. An image that
    cannot be read any more (e.g. deleted since) is skipped (the mapper returns None)."""

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        ret = super().from_config(cfg, is_train)
        j = cfg.INPUT.PSEUDO_COLOR_JITTER
        if is_train and j > 0:
            ret["augmentations"] = list(ret["augmentations"]) + [
                T.RandomBrightness(1 - j, 1 + j), T.RandomContrast(1 - j, 1 + j), T.RandomSaturation(1 - j, 1 + j),
            ]
        return ret

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            image = read_image_safely(dataset_dict["file_name"], self.image_format)
        except UnreadableImage as e:
            logger.warning(f"Skipping unreadable image {dataset_dict['file_name']}: {e}")
            return None
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
        elif "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image.shape[:2])
        return dataset_dict


class ObjectCropMapper:
    """Views of labeled objects made to look like an object-centric photo: a square crop around one labeled
    object (which fills 45-80% of its side, off-centre by up to 10%), resized to ``size`` x ``size``, with its
    colours changed (a gain and an offset per channel and a linear colour ramp). A labeled set of scenes
    (COCO) then also covers the look of a pool of object-centric images (ImageNet) for the PU classifier.

    Deterministic: the view of dict ``d`` depends only on ``d["image_id"]`` (see :meth:`crop_dicts`). Returns
    the inference input of the view (``height``/``width`` = ``size``), or ``{"image_id", "file_name",
    "unreadable": reason}``.
    """

    @configurable
    def __init__(self, *, size: int, image_format: str = "BGR"):
        self.size = size
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg):
        return {"size": cfg.INPUT.MIN_SIZE_TEST, "image_format": cfg.INPUT.FORMAT}

    @staticmethod
    def crop_dicts(labeled_dicts, views: int):
        """``views`` crop dicts per labeled image that has a box: ``image_id`` = source id * views + view."""
        return [{"file_name": d["file_name"], "image_id": d["image_id"] * views + v, "annotations": d["annotations"]}
                for d in labeled_dicts if d.get("annotations") for v in range(views)]

    def __call__(self, dataset_dict):
        out, image = _read_for_inference(dataset_dict, self.image_format)
        if image is None:
            return out
        rng = np.random.default_rng([20210619, dataset_dict["image_id"]])
        annos = dataset_dict["annotations"]
        a = annos[int(rng.integers(len(annos)))]
        x0, y0, x1, y1 = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
        side = max(x1 - x0, y1 - y0, 2.0) / rng.uniform(0.45, 0.8)
        cx, cy = (x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * side, (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * side
        # the crop window as an affine map onto size x size; outside the image the border is reflected
        scale = self.size / side
        m = np.array([[scale, 0, self.size / 2 - cx * scale], [0, scale, self.size / 2 - cy * scale]])
        view = cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        steps = np.arange(self.size)
        ramp = (np.cos(angle) * steps[None, :] + np.sin(angle) * steps[:, None]) / self.size
        view = (view * rng.uniform(0.7, 1.3, size=3) + rng.uniform(-30, 30, size=3)
                + ramp[..., None] * rng.uniform(-50, 50, size=3))
        view = np.clip(view, 0, 255).astype(np.uint8)
        return {**out, "height": self.size, "width": self.size,
                "image": torch.as_tensor(np.ascontiguousarray(view.transpose(2, 0, 1)))}
