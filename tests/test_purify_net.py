"""tools/purify_net.py train + select on the tiny benchmark."""
import json
import os
import shutil

import pytest
import torch
from detectron2.data import DatasetCatalog

from pudet.config import get_pudet_cfg
from pudet.data import register_datasets
from pudet.data.build import register_pu_splits
from pudet.evaluation.ranking import ranking_metrics
from pudet.modeling import load_checkpoint
from pudet.purification import prior as prior_estimation

from .helpers import TINY, WD_CONFIGS, load_script, tiny_opts


def _opts(tiny_root, out):
    return [
        *tiny_opts(tiny_root), "PU.INIT_FROM_DETECTOR", "", "PU.INPUT_SIZE", "32", "PU.HOLDOUT_FRACTION", "0.25",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "3", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()",
        "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", out,
    ]


@pytest.fixture(scope="module")
def trained(tiny_benchmark, tiny_root, tmp_path_factory):
    tool = load_script("tools", "purify_net.py")
    out = str(tmp_path_factory.mktemp("pu"))
    torch.manual_seed(0)
    results = tool.main(tool.parse_args(["train", *_opts(tiny_root, out)]))
    return tool, out, results


@pytest.mark.slow
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


def _evaluate(selection, out, tiny_root):
    """``tools/evaluate_pool_truth.py selection`` on the folder ``selection``, with the image head's config as the
    demo passes it. Its DATASETS.TEST, the PU holdout split, is registered only by a training (here one ran in
    this process, so the test names one that none registers): the evaluation reads the PU datasets alone."""
    tool = load_script("tools", "evaluate_pool_truth.py")
    measured = tool.main(tool.parse_args(["selection", "--selection", selection, "--output-dir",
                                          os.path.join(out, "truth"), "--config-file",
                                          os.path.join(WD_CONFIGS, "pu_R18_nnpu.yaml"), *tiny_opts(tiny_root),
                                          "DATASETS.TEST", "('holdout_of_no_training',)"]))
    with open(os.path.join(out, "truth", "selection.json")) as f:
        assert json.load(f) == measured
    return measured


def _pool_truth(tiny_root):
    with open(os.path.join(tiny_root, TINY.key(), "pool_truth.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_select_writes_scores_selection_histogram(trained, tiny_root):
    tool, out, _ = trained
    args = tool.parse_args(["select", "--chunk-size", "7", "--batch-size", "3", *_opts(tiny_root, out)])
    summary = tool.main(args)
    sel_dir = os.path.join(out, "select")
    with open(os.path.join(sel_dir, "scores.tsv")) as f:
        rows = f.read().splitlines()
    assert rows[0] == "image_id\tscore\tfile_name" and len(rows) == 1 + TINY.num_pool  # no hidden truth
    with open(os.path.join(sel_dir, "selected.json")) as f:
        selected = json.load(f)
    scores = [im["score"] for im in selected["images"]]
    assert len(scores) == TINY.num_labeled == summary["selected"]  # default K = n_l
    assert scores == sorted(scores, reverse=True)
    assert summary["unreadable"] == 0
    # the ranking metrics, from the selection and the hidden truth, measured afterwards by the evaluation tool
    truth = {im["id"]: im["positive"] for im in _pool_truth(tiny_root)["images"]}
    hits = sum(truth[im["image_id"]] for im in selected["images"])
    measured = _evaluate(sel_dir, out, tiny_root)
    assert measured["K"] == TINY.num_labeled and measured["precision@K"] == pytest.approx(hits / TINY.num_labeled)
    assert measured["recall@K"] == pytest.approx(hits / sum(truth.values()))
    # train's validation AUC = the ranking of the held-out pool images by select's scores of the same model
    holdout = [d["image_id"] for d in DatasetCatalog.get("pu_holdout") if d["pu_label"] == 0]
    pool_scores = {int(r.split("\t")[0]): float(r.split("\t")[1]) for r in rows[1:]}
    expected = ranking_metrics([pool_scores[i] for i in holdout], [truth[i] for i in holdout], trained[2]["pu"]["K"])
    assert trained[2]["pu"]["AUC"] == pytest.approx(100 * expected["AUC"])
    assert trained[2]["pu"]["precision@K"] == pytest.approx(100 * expected["precision@K"])
    assert os.path.isfile(os.path.join(sel_dir, "score_histogram.png"))
    # a threshold instead of top-K, into another folder, reusing nothing
    # (between the 3rd and 4th scores: a fresh scoring may differ from the first in the last float bits)
    threshold = (scores[2] + scores[3]) / 2
    # (select loads the trained weights: the detector that initialised training need not exist any more)
    args = tool.parse_args(["select", "--threshold", str(threshold), "--output-dir", os.path.join(out, "thr"),
                            *_opts(tiny_root, out), "PU.INIT_FROM_DETECTOR", "/gone/teacher.pth"])
    assert tool.main(args)["selected"] == 3


def test_select_without_weights_is_a_clear_error(tiny_root, tmp_path):
    tool = load_script("tools", "purify_net.py")
    with pytest.raises(FileNotFoundError, match="train it first"):
        tool.main(tool.parse_args(["select", *_opts(tiny_root, str(tmp_path))]))


def test_subcommand_required():
    tool = load_script("tools", "purify_net.py")
    with pytest.raises(SystemExit):
        tool.parse_args(["score"])


def test_select_by_teacher_confidence_writes_the_same_files(tiny_benchmark, tiny_root, tmp_path):
    """U^C from a pseudo-label file of the pool: every hidden positive's best box scores 0.9, one negative's
    0.95, the other negatives have no box (score 0). K = n_l = 12 of 20 (8 positives): the negative, the 8
    positives, then 3 negatives (ties by lowest id). Precision 8/12, recall 1, AUC = 88 right pairs of 96."""
    tool = load_script("tools", "purify_net.py")
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
    assert summary["lowest selected score"] == 0.0
    measured = _evaluate(out, str(tmp_path), tiny_root)
    assert measured["precision@K"] == pytest.approx(8 / 12) and measured["recall@K"] == 1.0
    assert measured["AUC"] == pytest.approx(88 / 96) and measured["pool positive fraction"] == pytest.approx(0.4)
    assert {"score_histogram.png", "scores.tsv", "selected.json", "unreadable.tsv"} <= set(os.listdir(out))
    with open(os.path.join(out, "selected.json")) as f:
        selected = json.load(f)
    positives = sorted(i for i in best if i != negatives[-1])
    assert [im["image_id"] for im in selected["images"]] == [negatives[-1]] + positives + sorted(negatives[:-1])[:3]
    with pytest.raises(SystemExit):
        tool.parse_args(["select", "--by", "teacher-confidence"])  # needs --pseudo-labels


@pytest.mark.slow
def test_train_resumes_with_the_same_prior(trained, tiny_root, tmp_path, monkeypatch):
    """PUTrainer --resume continues from the last checkpoint (a copy of the fixture's run) and reuses
    prior.json instead of estimating the prior again."""
    tool, out, _ = trained
    resumed = str(tmp_path / "pu")
    shutil.copytree(out, resumed, ignore=shutil.ignore_patterns("select", "thr"))
    with open(os.path.join(resumed, "prior.json")) as f:
        prior = json.load(f)["prior"]
    with open(os.path.join(resumed, "last_checkpoint"), "w") as f:
        f.write("model_final.pth")

    def estimate(*args):
        raise AssertionError("the prior was estimated again")

    monkeypatch.setattr(prior_estimation, "estimate_prior_from_splits", estimate)
    results = tool.main(tool.parse_args(["train", "--resume", *_opts(tiny_root, resumed), "SOLVER.MAX_ITER", "5"]))
    with open(os.path.join(resumed, "log.txt")) as f:
        log = f.read()
    assert "Starting training from iteration 3" in log
    assert load_checkpoint(os.path.join(resumed, "model_final.pth"))["iteration"] == 4
    assert results["prior"]["pi_p"]["used"] == prior and results["pu"]["labeled"] == 3


def test_two_pu_configurations_in_one_process(tiny_benchmark, tiny_root):
    def cfg(prefix, fraction):
        c = get_pudet_cfg(os.path.join(WD_CONFIGS, "pu_R18_nnpu.yaml"),
                          [*tiny_opts(tiny_root), "PU.SPLITS_PREFIX", prefix, "PU.HOLDOUT_FRACTION", str(fraction)])
        register_datasets(c)
        return c

    a = register_pu_splits(cfg("test_a", 0.25))
    b = register_pu_splits(cfg("test_b", 0.5))
    assert (a.train_labeled, a.train_unlabeled, a.holdout) == ("test_a_train_labeled", "test_a_train_unlabeled",
                                                               "test_a_holdout")
    assert [len(DatasetCatalog.get(n)) for n in (a.train_labeled, a.train_unlabeled, a.holdout)] == [9, 15, 8]
    assert [len(DatasetCatalog.get(n)) for n in (b.train_labeled, b.train_unlabeled, b.holdout)] == [6, 10, 16]
    assert register_pu_splits(cfg("test_a", 0.25)) == a  # idempotent
    with pytest.raises(ValueError, match="set another PU.SPLITS_PREFIX"):
        register_pu_splits(cfg("test_a", 0.5))
