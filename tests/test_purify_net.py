"""tools/purify_net.py train + select on the tiny benchmark."""
import importlib.util
import json
import os

import pytest
import torch

from .conftest import REPO, TINY


def _load_tool():
    spec = importlib.util.spec_from_file_location("purify_net", os.path.join(REPO, "tools", "purify_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _opts(tiny_root, out):
    return [
        "WILD_DIGITS.ROOT", tiny_root, "WILD_DIGITS.SEED", str(TINY.seed),
        "WILD_DIGITS.NUM_LABELED", str(TINY.num_labeled), "WILD_DIGITS.NUM_POOL", str(TINY.num_pool),
        "WILD_DIGITS.NUM_VAL", str(TINY.num_val), "WILD_DIGITS.POS_FRACTION", str(TINY.pos_fraction),
        "PU.INIT_FROM_DETECTOR", "", "PU.INPUT_SIZE", "32", "PU.HOLDOUT_FRACTION", "0.25",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "3", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()",
        "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", out,
    ]


@pytest.fixture(scope="module")
def trained(tiny_benchmark, tiny_root, tmp_path_factory):
    tool = _load_tool()
    out = str(tmp_path_factory.mktemp("pu"))
    torch.manual_seed(0)
    results = tool.main(tool.parse_args(["train", *_opts(tiny_root, out)]))
    return tool, out, results


def test_train_estimates_prior_and_validates(trained):
    _, out, results = trained
    with open(os.path.join(out, "prior.json")) as f:
        prior = json.load(f)
    assert 0 < prior["prior"] < 1 and prior["n_labeled"] == TINY.num_labeled - 3  # 3 of 12 held out
    assert results["prior"]["pi_p"]["used"] == pytest.approx(prior["prior"])
    pu = results["pu"]
    assert pu["labeled"] == 3 and pu["unlabeled"] == 5 and pu["unreadable"] == 0
    assert 0 <= pu["AUC"] <= 100 and pu["K"] == round(5 * TINY.num_labeled / TINY.num_pool)
    assert os.path.isfile(os.path.join(out, "model_final.pth"))


def test_select_writes_scores_selection_histogram(trained, tiny_root):
    tool, out, _ = trained
    args = tool.parse_args(["select", "--chunk-size", "7", "--batch-size", "3", *_opts(tiny_root, out)])
    summary = tool.main(args)
    sel_dir = os.path.join(out, "select")
    with open(os.path.join(sel_dir, "scores.tsv")) as f:
        rows = f.read().splitlines()
    assert rows[0] == "image_id\tscore\tfile_name\tpositive" and len(rows) == 1 + TINY.num_pool
    with open(os.path.join(sel_dir, "selected.json")) as f:
        selected = json.load(f)
    scores = [im["score"] for im in selected["images"]]
    assert len(scores) == TINY.num_labeled == summary["selected"]  # default K = n_l
    assert scores == sorted(scores, reverse=True)
    assert summary["unreadable"] == 0 and 0 <= summary["precision@K"] <= 1
    assert os.path.isfile(os.path.join(sel_dir, "score_histogram.png"))
    # a threshold instead of top-K, into another folder, reusing nothing
    # (between the 3rd and 4th scores: a fresh scoring may differ from the first in the last float bits)
    threshold = (scores[2] + scores[3]) / 2
    # (select loads the trained weights: the detector that initialised training need not exist any more)
    args = tool.parse_args(["select", "--threshold", str(threshold), "--output-dir", os.path.join(out, "thr"),
                            *_opts(tiny_root, out), "PU.INIT_FROM_DETECTOR", "/gone/teacher.pth"])
    assert tool.main(args)["selected"] == 3


def test_select_without_weights_is_a_clear_error(tiny_root, tmp_path):
    tool = _load_tool()
    with pytest.raises(FileNotFoundError, match="train it first"):
        tool.main(tool.parse_args(["select", *_opts(tiny_root, str(tmp_path))]))


def test_subcommand_required():
    tool = _load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(["score"])


def test_select_by_teacher_confidence_writes_the_same_files(tiny_benchmark, tiny_root, tmp_path):
    """U^C from a pseudo-label file of the pool: every hidden positive's best box scores 0.9, one negative's
    0.95, the other negatives have no box (score 0). K = n_l = 12 of 20 (8 positives): the negative, the 8
    positives, then 3 negatives (ties by lowest id). Precision 8/12, recall 1, AUC = 88 right pairs of 96."""
    tool = _load_tool()
    spec, folder = tiny_benchmark
    with open(os.path.join(folder, "pool_truth.json")) as f:
        truth = json.load(f)
    images = [{"id": im["id"], "file_name": im["file_name"], "height": 128, "width": 128} for im in truth["images"]]
    negatives = [im["id"] for im in truth["images"] if not im["positive"]]
    best = {im["id"]: 0.9 for im in truth["images"] if im["positive"]}
    best[negatives[-1]] = 0.95
    annotations = [{"id": k + 1, "image_id": i, "bbox": [0, 0, 5, 5], "area": 25, "category_id": 1, "score": s,
                    "iscrowd": 0} for k, (i, s) in enumerate(sorted(best.items()))]
    labels = tmp_path / "pool"
    labels.mkdir()
    coco = {"info": {"dataset": "wild_digits_pool", "unreadable": 0}, "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "digit 0"}]}
    (labels / "pseudo_labels.json").write_text(json.dumps(coco))
    (labels / "unreadable.tsv").write_text("image_id\tfile_name\treason\n")
    out = str(tmp_path / "select_confidence")
    summary = tool.main(tool.parse_args(["select", "--by", "teacher-confidence", "--pseudo-labels",
                                         str(labels / "pseudo_labels.json"), "--output-dir", out,
                                         *_opts(tiny_root, str(tmp_path))]))
    assert summary["rule"] == "top-12 by the teacher's best box score"
    assert (summary["pool images"], summary["scored"], summary["unreadable"], summary["selected"]) == (20, 20, 0, 12)
    assert summary["precision@K"] == pytest.approx(8 / 12) and summary["recall@K"] == 1.0
    assert summary["AUC"] == pytest.approx(88 / 96) and summary["pool positive fraction"] == pytest.approx(0.4)
    assert summary["lowest selected score"] == 0.0
    assert {"score_histogram.png", "scores.tsv", "selected.json", "unreadable.tsv"} <= set(os.listdir(out))
    with open(os.path.join(out, "selected.json")) as f:
        selected = json.load(f)
    positives = sorted(i for i in best if i != negatives[-1])
    assert [im["image_id"] for im in selected["images"]] == [negatives[-1]] + positives + sorted(negatives[:-1])[:3]
    with pytest.raises(SystemExit):
        tool.parse_args(["select", "--by", "teacher-confidence"])  # needs --pseudo-labels
