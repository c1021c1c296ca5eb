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
