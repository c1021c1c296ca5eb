"""Glyphs and drawing for the built-in wild-digits benchmark and its own "ImageNet".

Three families of small grey bitmaps, all 8x8 and made the same way as scikit-learn's handwritten digits
(a 32x32 binary bitmap summed over 4x4 blocks), so that no family can be told apart by its rendering alone:

* handwritten digits: scikit-learn's 1797 glyphs, a fixed third of them held out (val's handwriting);
* printed characters: letters and symbols rendered from the DejaVu fonts matplotlib ships;
* shapes: discs, rings, polygons, stars, crosses, arrows, drawn with a little random jitter.

The drawing primitives (textured backgrounds, stroke colours, a glyph scaled, rotated and placed) are shared
by the benchmark's scenes (:mod:`pudet.data.datasets.wild_digits`) and by :func:`render_glyph_crops`, the
classification task over every glyph class on which the benchmark's backbone is pretrained
(:mod:`pudet.data.datasets.glyph_pretrain`), as the paper's detectors start from ImageNet weights.
"""
import functools
import importlib.util
import os
from typing import List, Tuple

import cv2
import numpy as np

__all__ = ["GlyphBank", "FONT_FILES", "LETTERS", "SYMBOLS", "SHAPES", "render_glyph_crops"]

FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf",
)
# upper case, and the lower-case letters whose shape differs from their capital's (at 8x8, with the size
# normalised, "o" and "O" are the same glyph)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
SYMBOLS = "#$%&@?!+=<>*§¶©€£¥ΩπλΣΔΨΦθβ∞√∫≈≠±÷×♠♣♥♦♪"
SHAPES = ("disc", "ring", "square", "frame", "triangle", "star", "plus", "cross", "hexagon", "diamond", "arrow", "crescent")


def _blocks(bitmap32: np.ndarray) -> np.ndarray:
    """A 32x32 binary bitmap -> the 8x8 glyph of counts over 4x4 blocks, in [0, 1] (scikit-learn's digits)."""
    return bitmap32.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float32) / 16.0


def _font_dir() -> str:
    return os.path.join(importlib.util.find_spec("matplotlib").submodule_search_locations[0], "mpl-data", "fonts", "ttf")


@functools.lru_cache(maxsize=None)
def _characters() -> np.ndarray:
    """(len(LETTERS + SYMBOLS), len(FONT_FILES), 8, 8): every character in every font."""
    from PIL import Image, ImageDraw, ImageFont

    out = np.zeros((len(LETTERS + SYMBOLS), len(FONT_FILES), 8, 8), np.float32)
    for f, name in enumerate(FONT_FILES):
        font = ImageFont.truetype(os.path.join(_font_dir(), name), 64)
        for c, char in enumerate(LETTERS + SYMBOLS):
            canvas = Image.new("L", (128, 128), 0)
            ImageDraw.Draw(canvas).text((64, 64), char, fill=255, font=font, anchor="mm")
            ink = np.asarray(canvas, np.float32) / 255.0
            ys, xs = np.nonzero(ink > 0.5)
            crop = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
            # the longer side fills the 32x32 bitmap, the shorter one is centred
            h, w = crop.shape
            scale = 32.0 / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            small = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
            bitmap = np.zeros((32, 32), np.float32)
            bitmap[(32 - nh) // 2: (32 - nh) // 2 + nh, (32 - nw) // 2: (32 - nw) // 2 + nw] = small
            out[c, f] = _blocks(bitmap > 0.5)
    return out


def _shape(rng, index: int) -> np.ndarray:
    """One 8x8 glyph of shape SHAPES[index], its outline jittered by ``rng``."""
    bitmap = np.zeros((32, 32), np.uint8)
    name = SHAPES[index]
    thick = int(rng.integers(4, 7))

    def poly(points):
        pts = np.asarray(points, np.float64) + rng.normal(0, 1.0, size=(len(points), 2))
        return [np.clip(pts, 0, 31).round().astype(np.int32)]

    def regular(n, radius, phase):
        a = phase + 2 * np.pi * np.arange(n) / n
        return np.stack([16 + radius * np.cos(a), 16 + radius * np.sin(a)], 1)

    if name == "disc":
        cv2.ellipse(bitmap, (16, 16), (int(rng.integers(12, 16)), int(rng.integers(12, 16))), 0, 0, 360, 1, -1)
    elif name == "ring":
        cv2.ellipse(bitmap, (16, 16), (int(rng.integers(11, 14)), int(rng.integers(11, 14))), 0, 0, 360, 1, thick)
    elif name == "square":
        cv2.fillPoly(bitmap, poly([(2, 2), (29, 2), (29, 29), (2, 29)]), 1)
    elif name == "frame":
        cv2.polylines(bitmap, poly([(3, 3), (28, 3), (28, 28), (3, 28)]), True, 1, thick)
    elif name == "triangle":
        cv2.fillPoly(bitmap, poly([(16, 1), (30, 30), (1, 30)]), 1)
    elif name == "star":
        outer, inner = regular(5, 15, -np.pi / 2), regular(5, 6, -np.pi / 2 + np.pi / 5)
        cv2.fillPoly(bitmap, poly(np.stack([outer, inner], 1).reshape(-1, 2)), 1)
    elif name == "plus":
        cv2.line(bitmap, (16, 2), (16, 29), 1, thick)
        cv2.line(bitmap, (2, 16), (29, 16), 1, thick)
    elif name == "cross":
        cv2.line(bitmap, (3, 3), (28, 28), 1, thick)
        cv2.line(bitmap, (28, 3), (3, 28), 1, thick)
    elif name == "hexagon":
        cv2.fillPoly(bitmap, poly(regular(6, 15, 0)), 1)
    elif name == "diamond":
        cv2.fillPoly(bitmap, poly([(16, 1), (30, 16), (16, 30), (1, 16)]), 1)
    elif name == "arrow":
        cv2.fillPoly(bitmap, poly([(16, 1), (30, 14), (21, 14), (21, 30), (11, 30), (11, 14), (1, 14)]), 1)
    else:  # crescent
        cv2.circle(bitmap, (16, 16), 14, 1, -1)
        cv2.circle(bitmap, (16 + int(rng.integers(6, 11)), 16), 12, 0, -1)
    return _blocks(bitmap > 0)


class GlyphBank:
    """Every glyph of the three families; ``draw(rng, family, index)`` returns one 8x8 glyph in [0, 1].

    Families: "digit" (index = the digit; ``held_out`` selects the held-out third of the handwriting),
    "char" (index into LETTERS + SYMBOLS; the font is drawn at random) and "shape" (index into SHAPES).
    """

    def __init__(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.digit_images = (digits.images / 16.0).astype(np.float32)
        labels = digits.target.astype(np.int64)
        held_out = np.zeros(len(labels), dtype=bool)
        held_out[np.random.default_rng(12345).permutation(len(labels))[: len(labels) // 3]] = True
        self.digits_by_class = {
            flag: {c: np.flatnonzero((labels == c) & (held_out == flag)) for c in range(10)} for flag in (False, True)
        }
        self.chars = _characters()

    @property
    def num_chars(self) -> int:
        return self.chars.shape[0]

    def draw(self, rng, family: str, index: int, held_out: bool = False) -> np.ndarray:
        if family == "digit":
            return self.digit_images[rng.choice(self.digits_by_class[held_out][int(index)])]
        if family == "char":
            return self.chars[int(index), int(rng.integers(self.chars.shape[1]))]
        if family == "shape":
            return _shape(rng, int(index))
        raise ValueError(f"unknown glyph family {family!r}")

    @staticmethod
    def classes() -> List[Tuple[str, int]]:
        """Every glyph class, as (family, index): the pretraining task's labels, in order."""
        return ([("digit", d) for d in range(10)] + [("char", c) for c in range(len(LETTERS + SYMBOLS))]
                + [("shape", s) for s in range(len(SHAPES))])


def background(rng, size: int, object_centric: bool = False) -> np.ndarray:
    """A textured, noisy, tinted (size, size, 3) float32 canvas; ``object_centric``: plus a strongly
    coloured linear gradient, as in a photo."""
    base = rng.uniform(40, 215)
    coarse = rng.normal(0, 1, size=(4, 4)).astype(np.float32)
    texture = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * rng.uniform(8, 30)
    fine = cv2.GaussianBlur(rng.normal(0, 1, size=(size, size)).astype(np.float32), (0, 0), 1.5)
    img = base + texture + fine * rng.uniform(5, 20)
    img = img[..., None] + rng.uniform(-15, 15, size=3)
    if object_centric:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * np.arange(size)[None, :] + np.sin(angle) * np.arange(size)[:, None]) / size
        img = img + ramp[..., None] * rng.uniform(-60, 60, size=3) + rng.uniform(-35, 35, size=3)
    return np.clip(img, 0, 255).astype(np.float32)


def stroke_colour(rng, img, polarity: float) -> np.ndarray:
    """A colour that contrasts with ``img``'s mean: lighter (polarity 1) or darker (-1)."""
    level = float(img.mean()) + polarity * rng.uniform(45, 160)
    return np.clip(level + rng.uniform(-10, 10, size=3), 0, 255)


def blend(img, alpha, colour) -> None:
    """Paints ``colour`` over ``img`` (in place) with opacity ``alpha`` (H, W)."""
    a = np.clip(alpha, 0, 1)[..., None]
    img *= 1 - a
    img += a * colour


def glyph_alpha(rng, glyph, size: int, height_range, centre=None):
    """The glyph scaled to a height drawn from ``height_range``, rotated (+-15 degrees) and placed on an
    empty (size, size) canvas, at random or at ``centre`` (x, y). Returns (alpha, box (x0, y0, x1, y1) or None)."""
    h = rng.uniform(*height_range)
    w = h * rng.uniform(0.65, 0.95)
    big = cv2.resize(glyph, (max(3, round(w)), max(3, round(h))), interpolation=cv2.INTER_CUBIC)
    big = np.clip((big - 0.2) * 1.6, 0, 1)
    ph, pw = big.shape
    if centre is None:
        centre = (rng.uniform(pw / 2 + 1, size - pw / 2 - 1), rng.uniform(ph / 2 + 1, size - ph / 2 - 1))
    m = cv2.getRotationMatrix2D((pw / 2, ph / 2), rng.uniform(-15, 15), 1.0)
    m[:, 2] += (centre[0] - pw / 2, centre[1] - ph / 2)
    alpha = cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    ys, xs = np.nonzero(alpha > 0.3)
    if len(xs) == 0:
        return alpha, None
    return alpha, (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def clutter_alpha(rng, size: int) -> np.ndarray:
    """A thin distractor stroke: a scribble, a ring, a bar or rectangle outline, or a soft blob."""
    s = size
    alpha = np.zeros((s, s), np.float32)
    kind = rng.integers(4)
    thick = int(rng.integers(1, 4))
    if kind == 0:
        n = int(rng.integers(3, 6))
        pts = rng.uniform(0.15 * s, 0.85 * s, size=2) + rng.normal(0, s * 0.08, size=(n, 2))
        cv2.polylines(alpha, [pts.astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
    elif kind == 1:
        centre = tuple(int(v) for v in rng.uniform(0.15 * s, 0.85 * s, size=2))
        axes = tuple(max(1, int(v)) for v in rng.uniform(0.03 * s, 0.12 * s, size=2))
        cv2.ellipse(alpha, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, thick, cv2.LINE_AA)
    elif kind == 2:
        p = rng.uniform(0.05 * s, 0.95 * s, size=(2, 2)).astype(np.int32)
        if rng.random() < 0.5:
            cv2.line(alpha, tuple(p[0]), tuple(p[1]), 1.0, thick, cv2.LINE_AA)
        else:
            cv2.rectangle(alpha, tuple(p[0]), tuple(p[1]), 1.0, thick, cv2.LINE_AA)
    else:
        centre = tuple(int(v) for v in rng.uniform(0.1 * s, 0.9 * s, size=2))
        cv2.circle(alpha, centre, max(1, int(rng.uniform(0.03 * s, 0.08 * s))), 1.0, -1, cv2.LINE_AA)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2.0)
    return alpha


def render_glyph_crops(seed: int, count: int, size: int, bank: GlyphBank = None):
    """The pretraining task's images: ``count`` (size, size) crops, each one glyph of a random class (its
    height 35-85% of the crop, near the centre) on a scene background, sometimes with a clutter stroke.

    Digits use the handwriting the benchmark's L and pool use (never val's). Deterministic in ``seed``.
    Returns (images uint8 (count, size, size, 3) BGR, labels int64 (count,) indexing GlyphBank.classes()).
    """
    bank = bank or GlyphBank()
    classes = GlyphBank.classes()
    rng = np.random.default_rng([seed, 7])
    labels = rng.integers(len(classes), size=count)
    images = np.empty((count, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        r = np.random.default_rng([seed, 8, i])
        img = background(r, size, object_centric=r.random() < 0.3)
        polarity = 1.0 if img.mean() < 128 else -1.0
        if r.random() < 0.5:
            blend(img, clutter_alpha(r, size) * r.uniform(0.5, 1.0), stroke_colour(r, img, polarity))
        family, index = classes[label]
        centre = size / 2 + r.uniform(-0.1, 0.1, size=2) * size
        alpha, _ = glyph_alpha(r, bank.draw(r, family, index), size, (0.35 * size, 0.85 * size), centre)
        blend(img, alpha, stroke_colour(r, img, polarity))
        img += r.normal(0, r.uniform(2, 8), size=img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)
