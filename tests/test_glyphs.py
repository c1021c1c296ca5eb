"""The glyph families shared by the benchmark's scenes and its pretraining task."""
import numpy as np

from pudet.data.datasets.glyphs import FONT_FILES, LETTERS, SHAPES, SYMBOLS, GlyphBank, render_glyph_crops


def _bank():
    if not hasattr(_bank, "bank"):
        _bank.bank = GlyphBank()
    return _bank.bank


def test_every_glyph_is_an_8x8_block_count_bitmap():
    bank = _bank()
    assert bank.chars.shape == (len(LETTERS + SYMBOLS), len(FONT_FILES), 8, 8)
    rng = np.random.default_rng(0)
    glyphs = [bank.chars[c, f] for c in range(bank.num_chars) for f in range(len(FONT_FILES))]
    glyphs += [bank.draw(rng, "shape", s) for s in range(len(SHAPES))] + [bank.draw(rng, "digit", d) for d in range(10)]
    for g in glyphs:
        assert g.shape == (8, 8) and g.min() >= 0 and g.max() <= 1 and g.sum() > 0
        # counts of a 4x4 block of a binary bitmap, as scikit-learn's digits (values k / 16)
        assert np.allclose(g * 16, np.round(g * 16), atol=1e-5)
    a, b = LETTERS.index("A"), LETTERS.index("B")
    assert not np.array_equal(bank.chars[a, 0], bank.chars[b, 0])


def test_digits_come_from_their_class_and_handwriting_split():
    bank = _bank()
    rng = np.random.default_rng(1)
    for held_out in (False, True):
        allowed = bank.digits_by_class[held_out][7]
        for _ in range(10):
            g = bank.draw(rng, "digit", 7, held_out=held_out)
            matches = [i for i in allowed if np.array_equal(bank.digit_images[i], g)]
            assert matches
    assert not set(bank.digits_by_class[True][7]) & set(bank.digits_by_class[False][7])


def test_classes_cover_every_family():
    classes = GlyphBank.classes()
    assert len(classes) == 10 + len(LETTERS + SYMBOLS) + len(SHAPES)
    assert classes[:10] == [("digit", d) for d in range(10)] and classes[-1] == ("shape", len(SHAPES) - 1)


def test_crops_are_deterministic_and_labelled():
    bank = _bank()
    images, labels = render_glyph_crops(5, 12, 32, bank)
    again, labels_again = render_glyph_crops(5, 12, 32, bank)
    other, _ = render_glyph_crops(6, 12, 32, bank)
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again) and np.array_equal(labels, labels_again)
    assert not np.array_equal(images, other)
    assert labels.min() >= 0 and labels.max() < len(GlyphBank.classes())
    # the glyph is drawn near the centre: the centre differs from the crop's border more than the border varies
    centre = images[:, 12:20, 12:20].astype(float).std(axis=(1, 2, 3))
    assert (centre > 5).mean() >= 0.75
