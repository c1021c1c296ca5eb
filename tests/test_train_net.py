"""A few-iteration teacher training + COCO evaluation through tools/train_net.py, on the tiny benchmark."""
import json
import math
import os

import pytest
import torch
from detectron2.engine import default_argument_parser

from .helpers import FEW_ITERATIONS, TINY, load_script, tiny_opts

pytestmark = pytest.mark.slow


def _args(tiny_root, out, *extra, opts=()):
    opts = [
        *tiny_opts(tiny_root), *FEW_ITERATIONS, "SOLVER.MAX_ITER", "4",
        "DATASETS.TEST", "('wild_digits_val', 'wild_digits_pool')", "OUTPUT_DIR", out, *opts,
    ]
    return default_argument_parser().parse_args([*extra, *opts])


@pytest.fixture(scope="module")
def trained(tiny_benchmark, tiny_root, tmp_path_factory):
    tool = load_script("tools", "train_net.py")
    out = str(tmp_path_factory.mktemp("teacher"))
    torch.manual_seed(0)
    results = tool.main(_args(tiny_root, out))
    return tool, out, results


def test_training_writes_checkpoint_metrics_and_evaluates(trained):
    _, out, results = trained
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    with open(os.path.join(out, "metrics.json")) as f:
        iterations = [json.loads(line).get("iteration") for line in f]
    assert max(iterations) >= 3
    bbox = results["wild_digits_val"]["bbox"]
    assert set(bbox) >= {"AP", "AP50", "AP75", "APs", "APm"}
    assert 0.0 <= bbox["AP"] <= 100.0 and not math.isnan(bbox["AP"])
    pool = results["wild_digits_pool"]["pool"]
    assert pool["images pos"] + pool["images neg"] == TINY.num_pool
    assert pool["images pos"] == round(TINY.pos_fraction * TINY.num_pool)


def test_eval_only_reproduces_final_evaluation(trained, tiny_root):
    tool, out, results = trained
    weights = os.path.join(out, "model_final.pth")
    again = tool.main(_args(tiny_root, out, "--eval-only", opts=["MODEL.WEIGHTS", weights]))
    assert again["wild_digits_val"]["bbox"]["AP"] == pytest.approx(results["wild_digits_val"]["bbox"]["AP"])
    assert again["wild_digits_pool"]["pool"] == pytest.approx(results["wild_digits_pool"]["pool"], nan_ok=True)


def test_resume_continues_from_last_checkpoint(trained, tiny_root):
    tool, out, _ = trained
    tool.main(_args(tiny_root, out, "--resume", opts=["SOLVER.MAX_ITER", "6"]))
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    assert "Starting training from iteration 0" in log
    assert "Starting training from iteration 4" in log  # the checkpoint after iterations 0-3
    checkpoint = torch.load(os.path.join(out, "model_final.pth"), map_location="cpu", weights_only=False)
    assert checkpoint["iteration"] == 5
