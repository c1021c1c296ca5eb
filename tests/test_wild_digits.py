import hashlib
import json
import os

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from pudet.data.datasets import WildDigitsSpec, build_wild_digits, register_wild_digits

from .helpers import TINY


def _digest(folder):
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def test_deterministic_for_a_seed(tiny_benchmark, tmp_path):
    spec, folder = tiny_benchmark
    again = build_wild_digits(spec, str(tmp_path / "again"))
    assert os.path.basename(again) == os.path.basename(folder)
    assert _digest(again) == _digest(folder)
    other = build_wild_digits(WildDigitsSpec(**{**spec.to_dict(), "seed": 4}), str(tmp_path / "other"))
    assert os.path.basename(other) != os.path.basename(folder)
    with open(os.path.join(other, "train.json")) as f, open(os.path.join(folder, "train.json")) as g:
        assert json.load(f)["annotations"] != json.load(g)["annotations"]


def test_existing_build_is_reused(tiny_benchmark):
    spec, folder = tiny_benchmark
    marker = os.path.join(folder, "spec.json")
    mtime = os.path.getmtime(marker)
    assert build_wild_digits(spec, os.path.dirname(folder)) == folder
    assert os.path.getmtime(marker) == mtime


@pytest.mark.parametrize("split", ["train", "val", "pool_truth"])
def test_files_match_json(tiny_benchmark, split):
    spec, folder = tiny_benchmark
    with open(os.path.join(folder, f"{split}.json")) as f:
        data = json.load(f)
    subdir = split.split("_")[0]
    expected_count = {"train": spec.num_labeled, "val": spec.num_val, "pool": spec.num_pool}[subdir]
    assert len(data["images"]) == expected_count
    assert sorted(im["file_name"] for im in data["images"]) == sorted(
        f"{subdir}/{name}" for name in os.listdir(os.path.join(folder, subdir))
    )
    assert [c["name"] for c in data["categories"]] == ["digit 0", "digit 1", "digit 2", "digit 3", "digit 4"]
    sizes = {}
    for im in data["images"]:
        img = cv2.imread(os.path.join(folder, im["file_name"]))
        assert img.shape == (im["height"], im["width"], 3) == (spec.image_size, spec.image_size, 3)
        sizes[im["id"]] = img.shape[:2]
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        height, width = sizes[ann["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height and w > 0 and h > 0
        assert ann["area"] == pytest.approx(w * h)
        assert 1 <= ann["category_id"] <= len(spec.known_classes)
    ids_with_boxes = {a["image_id"] for a in data["annotations"]}
    if split == "pool_truth":
        positives = {im["id"] for im in data["images"] if im["positive"]}
        assert len(positives) == round(spec.pos_fraction * spec.num_pool)
        # negative scenes hold no known digit; positive scenes hold at least one
        assert ids_with_boxes <= positives
        assert ids_with_boxes == positives
    else:
        assert ids_with_boxes == {im["id"] for im in data["images"]}


def test_registration_pool_is_unlabeled_truth_kept_apart(tiny_benchmark):
    spec, folder = tiny_benchmark
    names = register_wild_digits(spec, root=os.path.dirname(folder), prefix="reg_wd")
    assert names == {"train": "reg_wd_train", "val": "reg_wd_val", "pool": "reg_wd_pool"}
    pool = DatasetCatalog.get("reg_wd_pool")
    assert len(pool) == spec.num_pool
    assert all(set(d) == {"file_name", "image_id"} for d in pool)
    assert all(os.path.isfile(d["file_name"]) for d in pool)
    meta = MetadataCatalog.get("reg_wd_pool")
    assert os.path.isfile(meta.truth_json)
    assert meta.pos_fraction == pytest.approx(0.4)
    train = DatasetCatalog.get("reg_wd_train")
    assert len(train) == spec.num_labeled
    assert all(len(d["annotations"]) >= 1 for d in train)
    assert MetadataCatalog.get("reg_wd_train").thing_classes == spec.thing_classes


def test_registration_is_guarded(tiny_benchmark):
    spec, folder = tiny_benchmark
    root = os.path.dirname(folder)
    assert register_wild_digits(spec, root=root, prefix="guard_wd") == register_wild_digits(
        spec, root=root, prefix="guard_wd"
    )
    with pytest.raises(ValueError, match="another prefix"):
        register_wild_digits(WildDigitsSpec(**{**spec.to_dict(), "seed": 9}), root=root, prefix="guard_wd")


def test_registration_builds_nothing(tmp_path):
    register_wild_digits(TINY, root=str(tmp_path), prefix="lazy_wd")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"known_classes": (0, 0)},
        {"known_classes": tuple(range(10))},
        {"known_classes": (11,)},
        {"pos_fraction": 0.0},
        {"num_pool": 0},
        {"image_size": 16},
        {"large_fraction": 1.5},
        {"unknown_mix": (0.0, 0.0, 0.0)},
        {"unknown_mix": (1.0, 1.0)},
    ],
)
def test_spec_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        WildDigitsSpec(**bad)


def test_negative_scenes_differ_from_positive(tiny_benchmark):
    # the pool's negatives are real scenes too (texture, unknown things, clutter), not blank canvases
    spec, folder = tiny_benchmark
    with open(os.path.join(folder, "pool_truth.json")) as f:
        images = json.load(f)["images"]
    negatives = [im for im in images if not im["positive"]]
    stds = [cv2.imread(os.path.join(folder, im["file_name"])).std() for im in negatives]
    assert min(stds) > 5
    assert np.isfinite(stds).all()


def test_pool_marks_object_centric_scenes(tiny_benchmark):
    spec, folder = tiny_benchmark
    with open(os.path.join(folder, "pool_truth.json")) as f:
        truth = json.load(f)
    flags = [im["object_centric"] for im in truth["images"]]
    assert spec.object_centric_fraction == 0.5 and 0 < sum(flags) < len(flags)
    # object-centric scenes draw their known digits larger (36-60 px against mostly 10-40 px)
    heights = {im["id"]: [] for im in truth["images"]}
    for a in truth["annotations"]:
        heights[a["image_id"]].append(a["bbox"][3])
    centric = [h for im in truth["images"] if im["object_centric"] for h in heights[im["id"]]]
    plain = [h for im in truth["images"] if not im["object_centric"] for h in heights[im["id"]]]
    assert centric and plain and sum(centric) / len(centric) > sum(plain) / len(plain)
    with pytest.raises(ValueError, match="object_centric_fraction"):
        WildDigitsSpec(object_centric_fraction=1.5)


def test_unknown_things_follow_the_mix(tiny_benchmark):
    from pudet.data.datasets.glyphs import GlyphBank
    from pudet.data.datasets.wild_digits import _SceneRenderer

    bank = GlyphBank()
    for mix, family in (((1, 0, 0), "char"), ((0, 1, 0), "shape"), ((0, 0, 1), "digit")):
        renderer = _SceneRenderer(WildDigitsSpec(unknown_mix=mix), bank, held_out=False)
        things = [o for i in range(20) for o in renderer._objects(np.random.default_rng(i), False, False)]
        assert things and {f for f, _ in things} == {family}
        if family == "digit":
            assert {i for _, i in things} <= {5, 6, 7, 8, 9}
    renderer = _SceneRenderer(WildDigitsSpec(), bank, held_out=False)
    things = [o for i in range(300) for o in renderer._objects(np.random.default_rng(i), False, False)]
    share = {f: sum(t == f for t, _ in things) / len(things) for f in ("char", "shape", "digit")}
    assert abs(share["char"] - 0.55) < 0.06 and abs(share["shape"] - 0.25) < 0.06 and abs(share["digit"] - 0.2) < 0.06
    # a positive close-up starts with a known digit
    assert all(renderer._objects(np.random.default_rng(i), True, True)[0][1] in range(5) for i in range(20))


def test_labeled_close_ups_hold_large_digits(tmp_path):
    heights = {}
    for large in (0.0, 1.0):
        spec = WildDigitsSpec(seed=1, num_labeled=8, num_pool=2, num_val=2, large_fraction=large)
        with open(os.path.join(build_wild_digits(spec, str(tmp_path)), "train.json")) as f:
            heights[large] = [a["bbox"][3] for a in json.load(f)["annotations"]]
    assert max(heights[0.0]) < 46  # digit_size (10, 40), rotated up to 15 degrees
    assert min(heights[1.0]) > 30 and np.mean(heights[1.0]) > np.mean(heights[0.0]) + 15
