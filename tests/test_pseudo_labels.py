"""Pseudo-labels: the file `purify_net.py label` writes, tau at load, category checks, the pseudo-label
mapper, the student's two-source loader, resume, unreadable images and the diagnostics."""
import itertools
import json
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from pycocotools.coco import COCO

from pudet.data import register_datasets
from pudet.data.build import build_expanded_train_loader
from pudet.data.chunked import ChunkedInference
from pudet.data.datasets import check_pseudo_categories, pseudo_dataset_name, register_pseudo_labeled
from pudet.data.mappers import InferenceMapper, PseudoLabelMapper
from pudet.engine.pseudo_label import label_images, label_source, merge_pseudo_labels, random_subset
from pudet.evaluation.pseudo_labels import box_precision_recall, pseudo_label_stats

from .helpers import TEACHER_YAML, TINY, Crash, CrashAfter, load_script, teacher_cfg, tiny_opts


@pytest.fixture(scope="module")
def teacher(tiny_benchmark, tiny_root, tmp_path_factory):
    """(cfg, weights path, model) of a randomly initialised benchmark teacher (it fires everywhere at 0.05)."""
    cfg = teacher_cfg(tiny_root)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = str(tmp_path_factory.mktemp("teacher") / "model_final.pth")
    torch.save({"model": model.state_dict()}, path)
    return cfg, path, model


def _label_args(tool, tiny_root, weights, out, *extra):
    return tool.parse_args(["label", "--config-file", TEACHER_YAML, "--weights", weights, "--output-dir", out,
                            "--batch-size", "3", "--chunk-size", "8", "--num-workers", "0", *extra,
                            *tiny_opts(tiny_root), "DATALOADER.NUM_WORKERS", "0"])


@pytest.mark.slow
def test_label_tool_writes_a_coco_file_with_scores(teacher, tiny_root, tmp_path):
    _, weights, _ = teacher
    tool = load_script("tools", "purify_net.py")
    out = str(tmp_path / "random")
    diagnostics = tool.main(_label_args(tool, tiny_root, weights, out, "--random", "7", "--seed", "1"))
    path = os.path.join(out, "pseudo_labels.json")
    coco = COCO(path)  # pycocotools loads it
    assert len(coco.getImgIds()) == 7
    with open(path) as f:
        raw = json.load(f)
    assert [c["name"] for c in raw["categories"]] == TINY.thing_classes
    assert [c["id"] for c in raw["categories"]] == [1, 2, 3, 4, 5]
    assert raw["annotations"] and all(0.05 <= a["score"] <= 1 for a in raw["annotations"])
    assert all(set(im) == {"id", "file_name", "height", "width"} and os.path.isfile(im["file_name"])
               for im in raw["images"])
    # the same 7 images as random_subset draws
    pool = DatasetCatalog.get("wild_digits_pool")
    assert sorted(im["id"] for im in raw["images"]) == [d["image_id"] for d in random_subset(pool, 7, 1)]
    # diagnostics: one row per tau, counts matching the file, precision/recall against the hidden truth
    rows = {r["tau"]: r for r in diagnostics["taus"]}
    assert set(rows) == {0.5, 0.7, 0.9}
    assert rows[0.5]["boxes"] == sum(a["score"] >= 0.5 for a in raw["annotations"])
    with open(os.path.join(tiny_root, TINY.key(), "pool_truth.json")) as f:
        truth = json.load(f)
    for tau, row in rows.items():
        expected = box_precision_recall(raw, truth, tau)
        assert (row["precision"], row["recall"]) == pytest.approx((expected["precision"], expected["recall"]),
                                                                  nan_ok=True)
    for name in ("diagnostics.json", "class_counts.png", "unreadable.tsv"):
        assert os.path.isfile(os.path.join(out, name))
    # the gallery of two label files, side by side
    tool.main(_label_args(tool, tiny_root, weights, str(tmp_path / "all")))
    gallery = str(tmp_path / "gallery.png")
    visualize = load_script("tools", "visualize_pseudo_labels.py")
    visualize.main(visualize.parse_args([path, str(tmp_path / "all" / "pseudo_labels.json"), "--titles", "random",
                                         "all", "--output", gallery, "--num-images", "2"]))
    assert os.path.getsize(gallery) > 1000


def _bad_pool(tmp_path, tiny_root):
    """The tiny pool plus an empty file and a text file posing as images."""
    pool = list(DatasetCatalog.get("wild_digits_pool"))
    empty, text = tmp_path / "empty.jpg", tmp_path / "text.jpg"
    empty.write_bytes(b"")
    text.write_text("not an image")
    return pool[:5] + [{"file_name": str(empty), "image_id": 900}] + pool[5:9] + [
        {"file_name": str(text), "image_id": 901}]


def test_kill_resume_identical_and_unreadable_listed(teacher, tiny_root, tmp_path):
    cfg, _, model = teacher
    dicts = _bad_pool(tmp_path, tiny_root)
    mapper = InferenceMapper(cfg)

    def run(m, out):
        return label_images(m, dicts, ChunkedInference(str(out), kind="pseudo-labels", mapper=mapper, batch_size=2,
                                                       chunk_size=4, num_workers=0), category_ids=[1, 2, 3, 4, 5])

    run(model, tmp_path / "straight")
    straight, bad = merge_pseudo_labels(str(tmp_path / "straight"), len(dicts), 4, [], {})
    with pytest.raises(Crash):
        run(CrashAfter(model, 3), tmp_path / "killed")  # dies in the second chunk
    assert run(model, tmp_path / "killed") == len(dicts) - 4  # the finished chunk is skipped
    resumed, bad2 = merge_pseudo_labels(str(tmp_path / "killed"), len(dicts), 4, [], {})
    assert resumed == straight and bad == bad2
    assert [b.image_id for b in bad] == [900, 901]
    assert bad[0].reason == "empty file" and "not an image" in bad[1].reason
    assert len(straight["images"]) == len(dicts) - 2


def test_image_without_detections_is_listed_and_kept_or_dropped(teacher, tiny_root, tmp_path):
    cfg, _, model = teacher
    dicts = list(DatasetCatalog.get("wild_digits_pool"))[:3]
    model.roi_heads.box_predictor.test_score_thresh = 1.01  # nothing can pass
    try:
        label_images(model, dicts, ChunkedInference(str(tmp_path), kind="pseudo-labels", mapper=InferenceMapper(cfg),
                                                    batch_size=2, chunk_size=8, num_workers=0),
                     category_ids=[1, 2, 3, 4, 5])
    finally:
        model.roi_heads.box_predictor.test_score_thresh = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
    coco, _ = merge_pseudo_labels(str(tmp_path), 3, 8, _categories(), {})
    assert len(coco["images"]) == 3 and coco["annotations"] == []
    path = str(tmp_path / "empty.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    register_pseudo_labeled("test_empty_drop", path, "", 0.5, keep_empty=False)
    register_pseudo_labeled("test_empty_keep", path, "", 0.5, keep_empty=True)
    assert DatasetCatalog.get("test_empty_drop") == []
    kept = DatasetCatalog.get("test_empty_keep")
    assert len(kept) == 3 and all(d["annotations"] == [] for d in kept)


def _categories():
    return [{"id": i + 1, "name": n} for i, n in enumerate(TINY.thing_classes)]


def _write_pseudo(path, pool, categories=None):
    """3 pool images: image 0 with boxes scoring 0.3 and 0.95, image 1 with 0.6, image 2 with 0.2 (of the
    1st, 2nd, 3rd and 1st categories)."""
    categories = categories or _categories()
    images = [{"id": d["image_id"], "file_name": d["file_name"], "height": 128, "width": 128} for d in pool[:3]]
    boxes = [(0, 0.3, 1), (0, 0.95, 2), (1, 0.6, 3), (2, 0.2, 1)]
    annotations = [{"id": k + 1, "image_id": images[i]["id"], "bbox": [10.0, 20.0, 30.0, 40.0], "area": 1200.0,
                    "category_id": categories[c - 1]["id"], "score": s, "iscrowd": 0}
                   for k, (i, s, c) in enumerate(boxes)]
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def test_tau_applied_at_load(tiny_benchmark, tiny_root, tmp_path):
    teacher_cfg(tiny_root)
    path = _write_pseudo(str(tmp_path / "p.json"), DatasetCatalog.get("wild_digits_pool"))
    counts = {}
    for tau in (0.1, 0.5, 0.9):
        name = pseudo_dataset_name(path, tau)
        register_pseudo_labeled(name, path, "", tau)
        dicts = DatasetCatalog.get(name)
        counts[tau] = (len(dicts), sum(len(d["annotations"]) for d in dicts))
        assert all(a["score"] >= tau for d in dicts for a in d["annotations"])
    assert counts == {0.1: (3, 4), 0.5: (2, 2), 0.9: (1, 1)}
    # contiguous classes, XYWH boxes as detectron2 expects
    d = DatasetCatalog.get(pseudo_dataset_name(path, 0.9))[0]
    assert d["annotations"][0]["category_id"] == 1 and d["annotations"][0]["bbox"] == [10.0, 20.0, 30.0, 40.0]
    with pytest.raises(ValueError, match="other arguments"):
        register_pseudo_labeled(pseudo_dataset_name(path, 0.9), path, "", 0.5)


def test_category_mismatch_is_an_error_before_training(tiny_benchmark, tiny_root, tmp_path):
    cfg = teacher_cfg(tiny_root)
    pool = DatasetCatalog.get("wild_digits_pool")
    wrong = [{"id": i + 1, "name": n} for i, n in enumerate(["cat", "dog", "digit 2", "digit 3", "digit 4"])]
    path = _write_pseudo(str(tmp_path / "wrong.json"), pool, wrong)
    cfg.merge_from_list(["DATASETS.TRAIN_PSEUDO", (path,)])
    register_datasets(cfg)
    DatasetCatalog.get("wild_digits_train")
    DatasetCatalog.get(pseudo_dataset_name(path, 0.5))
    with pytest.raises(ValueError, match="differ from those of the labeled dataset"):
        check_pseudo_categories(pseudo_dataset_name(path, 0.5), "wild_digits_train")
    with pytest.raises(ValueError, match="differ from those of the labeled dataset"):
        build_expanded_train_loader(cfg)
    # shifted ids with the right names are a mismatch too (never remapped silently)
    shifted = [{"id": i + 11, "name": n} for i, n in enumerate(TINY.thing_classes)]
    path2 = _write_pseudo(str(tmp_path / "shifted.json"), pool, shifted)
    register_pseudo_labeled("test_shifted", path2, "", 0.5)
    DatasetCatalog.get("test_shifted")
    with pytest.raises(ValueError, match="ids"):
        check_pseudo_categories("test_shifted", "wild_digits_train")


def _one_box_dict(tiny_root):
    teacher_cfg(tiny_root)
    d = DatasetCatalog.get("wild_digits_train")[0]
    return {**d, "annotations": d["annotations"][:1]}


def test_pseudo_mapper_flip_moves_boxes_and_colour_leaves_them(tiny_benchmark, tiny_root):
    d = _one_box_dict(tiny_root)
    x, y, w, h = d["annotations"][0]["bbox"]
    width = d["width"]
    cfg = teacher_cfg(tiny_root, "INPUT.RANDOM_FLIP", "horizontal", "INPUT.PSEUDO_COLOR_JITTER", "0.0")
    flipped = None
    for seed in range(20):  # a flip happens with probability 0.5
        np.random.seed(seed)
        out = PseudoLabelMapper(cfg, True)(d)
        box = out["instances"].gt_boxes.tensor[0].tolist()
        if box[0] != pytest.approx(x):
            flipped = box
            break
    assert flipped == pytest.approx([width - x - w, y, width - x, y + h], abs=1e-3)

    cfg = teacher_cfg(tiny_root, "INPUT.RANDOM_FLIP", "none", "INPUT.PSEUDO_COLOR_JITTER", "0.4")
    np.random.seed(0)
    no_jitter = teacher_cfg(tiny_root, "INPUT.RANDOM_FLIP", "none", "INPUT.PSEUDO_COLOR_JITTER", "0.0")
    plain = PseudoLabelMapper(no_jitter, True)(d)
    jittered = PseudoLabelMapper(cfg, True)(d)
    assert torch.equal(jittered["instances"].gt_boxes.tensor, plain["instances"].gt_boxes.tensor)
    assert jittered["instances"].gt_boxes.tensor[0].tolist() == pytest.approx([x, y, x + w, y + h], abs=1e-3)
    assert not torch.equal(jittered["image"], plain["image"])


def _loader_ids(cfg, steps):
    batches = list(itertools.islice(iter(build_expanded_train_loader(cfg)), steps))
    return [[x["file_name"] for x in b] for b in batches]


def test_alternating_and_mixed_batches_deterministic(tiny_benchmark, tiny_root, tmp_path):
    cfg = teacher_cfg(tiny_root)
    pool = DatasetCatalog.get("wild_digits_pool")
    path = _write_pseudo(str(tmp_path / "p.json"), pool)
    pseudo_files = {d["file_name"] for d in pool[:3]}
    cfg.merge_from_list(["DATASETS.TRAIN_PSEUDO", (path,), "DATASETS.PSEUDO_SCORE_THRESH", "0.1",
                         "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0", "SEED", "7",
                         "DATALOADER.PSEUDO_BATCHES", "2", "DATALOADER.LABELED_BATCHES", "1"])
    register_datasets(cfg)
    ids = _loader_ids(cfg, 9)
    sources = ["P" if all(f in pseudo_files for f in b) else "L" if not any(f in pseudo_files for f in b) else "M"
               for b in ids]
    assert "".join(sources) == "PPLPPLPPL"
    assert _loader_ids(cfg, 9) == ids  # deterministic for a seed
    cfg.merge_from_list(["DATALOADER.NUM_WORKERS", "2"])
    with_workers = _loader_ids(cfg, 9)
    assert _loader_ids(cfg, 9) == with_workers  # and with loader workers
    # Workers draw the same images; how they are grouped into batches depends on detectron2's sharding. v0.6
    # shards the sampler image by image (the batches equal those of 0 workers); later versions shard it in
    # chunks of a batch and, with aspect-ratio grouping, interleave the workers' images before batching: each
    # window of 2 batches (one per worker) of a source holds the same images as with 0 workers.
    for source in "PL":
        steps = [i for i, s in enumerate(sources) if s == source]
        for window in zip(steps[0::2], steps[1::2]):
            assert sorted(f for i in window for f in with_workers[i]) == sorted(f for i in window for f in ids[i])
    cfg.merge_from_list(["DATALOADER.NUM_WORKERS", "0", "SEED", "8"])
    assert _loader_ids(cfg, 9) != ids
    # mixed: one pseudo-labelled and one labeled image in each batch (ratio 1 : 1)
    cfg.merge_from_list(["DATALOADER.PSEUDO_BATCHING", "mixed", "DATALOADER.PSEUDO_BATCHES", "1"])
    for b in _loader_ids(cfg, 4):
        assert len(b) == 2 and b[0] in pseudo_files and b[1] not in pseudo_files


def test_stats_and_box_precision_recall_by_hand():
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    coco = {"categories": cats, "images": [{"id": 1}, {"id": 2}], "annotations": [
        {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [0, 0, 10, 10]},   # TP (IoU 1)
        {"image_id": 1, "category_id": 1, "score": 0.8, "bbox": [1, 0, 10, 10]},   # duplicate of a matched box: FP
        {"image_id": 1, "category_id": 2, "score": 0.6, "bbox": [20, 20, 10, 10]},  # wrong class: FP
        {"image_id": 2, "category_id": 2, "score": 0.95, "bbox": [0, 0, 10, 20]},  # IoU 0.5 with the hidden box: TP
    ]}
    truth = {"annotations": [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
        {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10]},  # missed
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10]},
        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10]},  # not in the file: ignored
    ]}
    pr = box_precision_recall(coco, truth, tau=0.5)
    assert (pr["pseudo boxes"], pr["true positives"], pr["hidden boxes"]) == (4, 2, 3)
    assert pr["precision"] == pytest.approx(0.5) and pr["recall"] == pytest.approx(2 / 3)
    hi = box_precision_recall(coco, truth, tau=0.85)
    assert (hi["pseudo boxes"], hi["true positives"]) == (2, 2)
    rows = pseudo_label_stats(coco, [0.5, 0.85, 0.99])
    assert [(r["boxes"], r["images with boxes"]) for r in rows] == [(4, 2), (2, 2), (0, 0)]
    assert rows[0]["per class"] == {"a": 2, "b": 2} and rows[0]["boxes/img"] == 2.0


def test_metadata_of_the_benchmark_has_the_categories(tiny_benchmark, tiny_root):
    teacher_cfg(tiny_root)
    DatasetCatalog.get("wild_digits_train")
    assert MetadataCatalog.get("wild_digits_train").thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}


def test_label_source_selection_dataset_or_random(tiny_benchmark, tiny_root, tmp_path):
    teacher_cfg(tiny_root)
    pool = DatasetCatalog.get("wild_digits_pool")
    selection = tmp_path / "selected.json"
    selection.write_text(json.dumps({"summary": {"dataset": "wild_digits_pool"}, "images": [
        {"file_name": pool[4]["file_name"], "image_id": pool[4]["image_id"], "score": 2.0},
        {"file_name": pool[1]["file_name"], "image_id": pool[1]["image_id"], "score": 1.0}]}))
    dicts, dataset, source = label_source(selection=str(selection))
    assert [d["image_id"] for d in dicts] == [pool[4]["image_id"], pool[1]["image_id"]]  # best first, as selected
    assert (dataset, source) == ("wild_digits_pool", f"selection {selection}")
    dicts, _, source = label_source(dataset="wild_digits_pool")
    assert len(dicts) == TINY.num_pool and source == "dataset wild_digits_pool"
    dicts, _, source = label_source(dataset="wild_digits_pool", random=5, seed=2)
    assert dicts == random_subset(pool, 5, 2) and source == "5 random images of wild_digits_pool (seed 2)"
