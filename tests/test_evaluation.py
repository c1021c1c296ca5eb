import json
import os

import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.structures import Boxes, Instances

from pudet.data.datasets import register_wild_digits
from pudet.evaluation import PoolTruthEvaluator, results_table
from pudet.evaluation.pu import PUEvaluator


def _instances(boxes, scores, classes, size):
    inst = Instances(size)
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def test_pool_truth_evaluator_against_hand_counts(tiny_benchmark):
    spec, folder = tiny_benchmark
    names = register_wild_digits(spec, root=os.path.dirname(folder), prefix="eval_wd")
    with open(os.path.join(folder, "pool_truth.json")) as f:
        truth = json.load(f)
    size = (spec.image_size, spec.image_size)
    evaluator = PoolTruthEvaluator(names["pool"], score_thresh=0.5)
    evaluator.reset()
    n_pos = n_neg = 0
    for im in truth["images"]:
        if im["positive"]:
            # exactly the hidden boxes, with the right classes, plus one low-score box (not counted)
            anns = [a for a in truth["annotations"] if a["image_id"] == im["id"]]
            boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
            inst = _instances(boxes + [[0, 0, 5, 5]], [0.9] * len(anns) + [0.3],
                              [a["category_id"] - 1 for a in anns] + [0], size)
            n_pos += len(anns)
        else:
            # two confident false positives on every negative scene
            inst = _instances([[1, 1, 20, 20], [30, 30, 50, 60]], [0.8, 0.6], [0, 1], size)
            n_neg += 2
        evaluator.process([{"image_id": im["id"]}], [{"instances": inst}])
    res = evaluator.evaluate()["pool"]
    num_pos = sum(im["positive"] for im in truth["images"])
    num_neg = len(truth["images"]) - num_pos
    assert res["images pos"] == num_pos and res["images neg"] == num_neg
    assert res["boxes/img@0.5 neg"] == pytest.approx(2.0)
    assert res["boxes/img@0.5 pos"] == pytest.approx(n_pos / num_pos)
    assert res["fired@0.5 neg"] == pytest.approx(100.0)
    assert res["AP"] == pytest.approx(100.0) and res["AP50"] == pytest.approx(100.0)


def test_results_table_rows_and_columns():
    table = results_table({"val": {"bbox": {"AP": 41.234, "AP50": 60.0}}, "pool": {"pool": {"AP": 1.0, "x": 2}}})
    lines = table.splitlines()
    assert lines[0].split("|")[2].strip() == "AP" and lines[0].split("|")[3].strip() == "AP50"
    assert lines[2].split("|")[1].strip() == "val/bbox" and lines[2].split("|")[2].strip() == "41.23"
    assert "pool/pool" in table and results_table({}) == "(no results)"


def test_pu_evaluator_against_hand_values(tmp_path):
    """Labeled scores 0, 0; unlabeled 2, 1, -1, -2 (hidden truth 1, 0, 1, 0); one unreadable image; prior 0.3,
    sigmoid loss l(z, y) = sigmoid(-yz). Positive part 0.3 * sigmoid(0) = 0.15; negative part
    mean(sigmoid(2), sigmoid(1), sigmoid(-1), sigmoid(-2)) - 0.3 * sigmoid(0) = 0.5 - 0.15 = 0.35; risk 0.5.
    Ranking: 3 of the 4 (positive, negative) pairs in order -> AUC 75; K = 0.5 * 4 = 2: the top 2 (scores 2 and
    1) hold one of the 2 positives -> precision@K = recall@K = 50."""
    truth = {"images": [{"id": i, "positive": p} for i, p in zip((1, 2, 3, 4), (True, False, True, False))]}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    MetadataCatalog.get("test_pu_evaluator").set(truth_json=str(tmp_path / "truth.json"))
    evaluator = PUEvaluator("test_pu_evaluator", prior=0.3, k_fraction=0.5, loss="sigmoid")
    evaluator.reset()
    records = [(1, 10, 0.0), (1, 11, 0.0), (0, 1, 2.0), (0, 2, 1.0), (0, 3, -1.0), (0, 4, -2.0)]
    for label, image_id, score in records:
        evaluator.process([{"pu_label": label, "image_id": image_id}], [{"pu_score": torch.tensor(score)}])
    evaluator.process([{"pu_label": 0, "image_id": 5}], [{"unreadable": "empty file"}])
    res = evaluator.evaluate()["pu"]
    assert (res["labeled"], res["unlabeled"], res["unreadable"], res["K"]) == (2, 4, 1, 2)
    assert res["positive part"] == pytest.approx(0.15) and res["negative part"] == pytest.approx(0.35)
    assert res["nnPU risk"] == pytest.approx(0.5)
    assert res["AUC"] == pytest.approx(75.0)
    assert res["precision@K"] == pytest.approx(50.0) and res["recall@K"] == pytest.approx(50.0)
