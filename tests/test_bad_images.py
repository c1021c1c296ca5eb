"""Images in the wild: each kind is decoded correctly or refused with a reason."""

import numpy as np
import pytest
from PIL import Image

from pudet.data.mappers import UnreadableImage, read_image_safely


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    d = tmp_path_factory.mktemp("wild")
    paths = {}

    def path(name):
        paths[name] = str(d / name)
        return paths[name]

    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(path("rgb.jpg"), quality=95)
    open(path("empty.jpg"), "wb").close()
    with open(path("text.jpg"), "w") as f:
        f.write("this is not an image\n" * 20)
    with open(paths["rgb.jpg"], "rb") as f:
        data = f.read()
    with open(path("truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    Image.fromarray(red).convert("CMYK").save(path("cmyk.jpg"), quality=95)
    ramp = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(ramp).save(path("gray16.png"))
    pal = Image.fromarray(red).convert("P", palette=Image.ADAPTIVE, colors=4)
    pal.save(path("palette.png"))
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, :15, 3] = 255  # left half opaque blue, right half transparent
    Image.fromarray(rgba, "RGBA").save(path("alpha.png"))
    Image.fromarray(np.full((400, 500, 3), 128, np.uint8)).save(path("huge.png"))
    Image.fromarray(np.full((400, 500, 3), 60, np.uint8)).save(path("huge.jpg"), quality=90)
    return paths


def test_rgb_jpeg_bgr_and_rgb(wild):
    bgr = read_image_safely(wild["rgb.jpg"], "BGR")
    assert bgr.shape == (20, 30, 3) and bgr.dtype == np.uint8
    assert bgr[..., 2].mean() > 240 and bgr[..., 0].mean() < 15
    assert (read_image_safely(wild["rgb.jpg"], "RGB") == bgr[..., ::-1]).all()


def test_cmyk_decoded_to_red(wild):
    img = read_image_safely(wild["cmyk.jpg"], "RGB")
    assert img.shape == (20, 30, 3)
    assert img[..., 0].mean() > 230 and img[..., 1].mean() < 30 and img[..., 2].mean() < 30


def test_16bit_gray_scaled_to_8bit(wild):
    img = read_image_safely(wild["gray16.png"], "RGB")
    assert img.shape == (20, 30, 3)
    assert img[0, 0, 0] == 0 and img[-1, -1, 0] == 255
    assert (img[..., 0] == img[..., 1]).all()
    assert (np.diff(img[..., 0].astype(int).ravel()) >= 0).all()  # the ramp stays monotone


def test_palette_and_alpha(wild):
    pal = read_image_safely(wild["palette.png"], "RGB")
    assert pal.shape == (20, 30, 3) and pal[..., 0].mean() > 240
    alpha = read_image_safely(wild["alpha.png"], "RGB")
    assert (alpha[:, :15] == [0, 0, 255]).all()  # opaque blue
    assert (alpha[:, 15:] == [255, 255, 255]).all()  # transparent -> composited on white


def test_huge_images(wild):
    # above the pixel limit: a JPEG is decoded at a reduced scale, another format is refused
    small = read_image_safely(wild["huge.jpg"], "RGB", max_pixels=50_000, target_size=100)
    assert small.shape[0] < 400 and small.shape[0] >= 100 and abs(int(small.mean()) - 60) <= 3
    with pytest.raises(UnreadableImage, match="too large"):
        read_image_safely(wild["huge.png"], "RGB", max_pixels=50_000)
    assert read_image_safely(wild["huge.png"], "RGB").shape == (400, 500, 3)


@pytest.mark.parametrize("name,reason", [
    ("empty.jpg", "empty file"),
    ("text.jpg", "not an image"),
    ("truncated.jpg", "cannot decode"),
])
def test_unreadable_files_give_reasons(wild, name, reason):
    with pytest.raises(UnreadableImage, match=reason):
        read_image_safely(wild[name])


def test_missing_file_is_unreadable(tmp_path):
    # a file deleted between listing and loading is skipped, not fatal
    with pytest.raises(UnreadableImage, match="file not found"):
        read_image_safely(str(tmp_path / "nope.jpg"))


def test_exif_orientation_applied_and_plain_images_unchanged(tmp_path):
    """A photo whose EXIF says "rotate 90 clockwise to view" (orientation 6) comes out upright; one without the
    tag, or with orientation 1, comes out as stored."""
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)  # stored: red on the left
    for orientation in (None, 1, 6):
        exif = Image.Exif()
        if orientation is not None:
            exif[0x0112] = orientation
        path = str(tmp_path / f"o{orientation}.png")
        Image.fromarray(rgb).save(path, exif=exif)
        out = read_image_safely(path, "RGB")
        if orientation == 6:
            assert out.shape == (30, 20, 3)
            assert (out[:10, :, 0] == 255).all() and (out[10:, :, 0] == 0).all()  # turned: red on top
        else:
            assert (out == rgb).all()
