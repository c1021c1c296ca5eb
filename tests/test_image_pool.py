import logging
import os

import pytest
from detectron2.data import DatasetCatalog

from pudet.data.datasets import IMAGE_EXTENSIONS, list_pool_images, register_image_pool


def _touch(path, content=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


@pytest.fixture
def pool_dir(tmp_path):
    root = tmp_path / "imagenet" / "train"
    for cls in ("n01440764", "n01443537"):
        for i in range(3):
            _touch(str(root / cls / f"{cls}_{i}.JPEG"))
    _touch(str(root / "n01443537" / "deeper" / "x.png"))
    _touch(str(root / "n01440764" / "notes.txt"))
    _touch(str(root / "n01440764" / ".hidden.jpg"))
    _touch(str(root / "LICENSE"))
    return str(root)


def test_folder_listing_nested_sorted_non_images_ignored(pool_dir, tmp_path):
    paths = list_pool_images(pool_dir, cache_dir=str(tmp_path / "cache"))
    rel = [os.path.relpath(p, pool_dir) for p in paths]
    assert rel == [
        "n01440764/n01440764_0.JPEG",
        "n01440764/n01440764_1.JPEG",
        "n01440764/n01440764_2.JPEG",
        "n01443537/deeper/x.png",
        "n01443537/n01443537_0.JPEG",
        "n01443537/n01443537_1.JPEG",
        "n01443537/n01443537_2.JPEG",
    ]
    assert all(os.path.isabs(p) for p in paths)


def test_listing_says_which_files_it_skipped_and_why(pool_dir, tmp_path, caplog):
    _touch(os.path.join(pool_dir, "n01443537", "anim.gif"))
    _touch(os.path.join(pool_dir, "n01440764", "zz.GIF"))
    cache = str(tmp_path / "cache")
    for listing in ("walked", "cached"):  # a cached listing says it again
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pudet"):
            assert len(list_pool_images(pool_dir, cache_dir=cache)) == 7, listing
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"Image pool {pool_dir}: 5 files skipped: 2 .gif: not an image type the pool reads (e.g. "
            "n01440764/zz.GIF); 1 .txt: not an image type the pool reads (e.g. n01440764/notes.txt); 1 hidden (the "
            "name starts with '.') (e.g. n01440764/.hidden.jpg); 1 no extension: not an image type the pool reads "
            f"(e.g. LICENSE). Pool images are files ending in {', '.join(IMAGE_EXTENSIONS)}"], listing


def test_listing_cache_is_reused_until_the_folder_changes(pool_dir, tmp_path, monkeypatch):
    from pudet.data.datasets import image_pool

    cache = str(tmp_path / "cache")
    first = list_pool_images(pool_dir, cache_dir=cache)
    assert len(os.listdir(cache)) == 1
    walk = image_pool._walk_images

    def no_walk(root):
        raise AssertionError("walked the folder again")

    monkeypatch.setattr(image_pool, "_walk_images", no_walk)
    assert list_pool_images(pool_dir, cache_dir=cache) == first  # served from the cache: no walk
    monkeypatch.setattr(image_pool, "_walk_images", walk)
    old = 1_000_000_000_000_000_000
    os.utime(os.path.join(pool_dir, "n01440764"), ns=(old, old))  # a folder changed since the listing
    assert list_pool_images(pool_dir, cache_dir=cache) == first
    _touch(os.path.join(pool_dir, "n01440764", "new.jpg"))
    refreshed = list_pool_images(pool_dir, cache_dir=cache)
    assert len(refreshed) == len(first) + 1
    monkeypatch.setattr(image_pool, "_walk_images", no_walk)
    assert list_pool_images(pool_dir, cache_dir=cache) == refreshed
    with pytest.raises(AssertionError, match="walked"):
        list_pool_images(pool_dir, cache_dir=cache, refresh=True)


def test_list_file(tmp_path, pool_dir):
    list_file = tmp_path / "pool.txt"
    list_file.write_text("# a comment\nimagenet/train/n01440764/n01440764_0.JPEG\n\n"
                         f"{pool_dir}/n01443537/deeper/x.png\n")
    assert list_pool_images(str(list_file)) == [
        os.path.join(pool_dir, "n01440764", "n01440764_0.JPEG"),
        os.path.join(pool_dir, "n01443537", "deeper", "x.png"),
    ]


def test_registration_is_lazy_and_guarded(tmp_path, pool_dir):
    cache = str(tmp_path / "cache")
    register_image_pool("test_pool_lazy", pool_dir, cache_dir=cache)
    assert not os.path.exists(cache)  # nothing listed at registration
    dicts = DatasetCatalog.get("test_pool_lazy")
    assert [d["image_id"] for d in dicts] == list(range(7))
    assert all(set(d) == {"file_name", "image_id"} for d in dicts)
    register_image_pool("test_pool_lazy", pool_dir, cache_dir=cache)  # same source again: no-op
    with pytest.raises(ValueError, match="already registered"):
        register_image_pool("test_pool_lazy", str(tmp_path), cache_dir=cache)


def test_missing_or_empty_pool_is_a_clear_error(tmp_path):
    register_image_pool("test_pool_missing", str(tmp_path / "nope"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match="neither a folder nor a list file"):
        DatasetCatalog.get("test_pool_missing")
    (tmp_path / "empty").mkdir()
    register_image_pool("test_pool_empty", str(tmp_path / "empty"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="holds no image"):
        DatasetCatalog.get("test_pool_empty")


def test_builtin_imagenet_pool_name():
    from detectron2.data import MetadataCatalog

    from pudet.data.datasets import register_builtin_pools

    register_builtin_pools()
    source = MetadataCatalog.get("imagenet_2012_train_unlabeled").pool_source
    expected_root = os.path.abspath(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))
    assert source == os.path.join(expected_root, "imagenet", "train")
