"""The COCO + ImageNet recipe (projects/COCO-ImageNet) end to end in miniature on the CPU, through the row
script users run: a fake COCO (wild-digits scenes annotated with COCO's 80 categories) and a fake ImageNet
folder tree under a temporary DETECTRON2_DATASETS, then teacher -> PU classifier -> select -> label -> student
(self-distillation on L + U^P) -> COCO evaluation, made small by the script's KEY VALUE overrides."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

from pudet.data.datasets import WildDigitsSpec, build_wild_digits

from .helpers import REPO

PROJECT = os.path.join(REPO, "projects", "COCO-ImageNet")
SPEC = WildDigitsSpec(seed=7, num_labeled=8, num_pool=12, num_val=4, pos_fraction=0.5)
# tiny sizes, two iterations, no pretrained weights; the teacher inside the student is built from the
# student's own config (TEACHER_CONFIG ""), so that the architecture overrides reach it too. A two-iteration
# teacher scores every box far below label's 0.05 floor (1/81 on average): U^P's images keep no box, and the
# student keeps them as images without boxes (PSEUDO_KEEP_EMPTY) rather than finding no pseudo-image at all
TINY_OPTS = [
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.PUDET.TEACHER_CONFIG", "", "DATASETS.PSEUDO_KEEP_EMPTY", "True",
    "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.RESNETS.NORM", "GN",
    "MODEL.FPN.OUT_CHANNELS", "32",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64", "MODEL.RPN.POST_NMS_TOPK_TEST", "16",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "128", "PU.INPUT_SIZE", "64",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.BASE_LR", "0.01", "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD", "0",
    "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
]


def write_fake_coco_imagenet(root: str) -> None:
    """``root/coco/{train2017,val2017,annotations}``: wild-digits scenes whose digit classes 0-4 are COCO's
    first five categories, in files listing all 80; ``root/imagenet/train/<wnid>/*.JPEG``: the wild-digits
    pool (positive and negative scenes) in two class folders."""
    folder = build_wild_digits(SPEC, os.path.join(root, "wild_digits"))
    things = [{"id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]]
    assert len(things) == 80
    os.makedirs(os.path.join(root, "coco", "annotations"))
    for split, coco_split in (("train", "train2017"), ("val", "val2017")):
        with open(os.path.join(folder, f"{split}.json")) as f:
            data = json.load(f)
        os.makedirs(os.path.join(root, "coco", coco_split))
        for im in data["images"]:
            name = f"{im['id']:012d}.jpg"
            shutil.copy(os.path.join(folder, im["file_name"]), os.path.join(root, "coco", coco_split, name))
            im["file_name"] = name
        for a in data["annotations"]:
            a["category_id"] = things[a["category_id"] - 1]["id"]
        data["categories"] = things
        with open(os.path.join(root, "coco", "annotations", f"instances_{coco_split}.json"), "w") as f:
            json.dump(data, f)
    with open(os.path.join(folder, "pool_truth.json")) as f:
        pool = json.load(f)["images"]
    for i, im in enumerate(pool):
        wnid = f"n0000000{i % 2}"
        os.makedirs(os.path.join(root, "imagenet", "train", wnid), exist_ok=True)
        shutil.copy(os.path.join(folder, im["file_name"]),
                    os.path.join(root, "imagenet", "train", wnid, f"{wnid}_{i}.JPEG"))


def run_row(script, tmp_path, *opts, **env):
    env = {**os.environ, "PYTHON": sys.executable, "DETECTRON2_DATASETS": str(tmp_path / "datasets"),
           "OUTPUT_ROOT": str(tmp_path / "output"), "PUDET_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([os.path.join(PROJECT, script), *opts], env=env, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.slow
def test_pu_row_end_to_end_in_miniature(tmp_path):
    write_fake_coco_imagenet(str(tmp_path / "datasets"))
    run = run_row("table1/pu_118k_thr0.5.sh", tmp_path, *TINY_OPTS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    out = tmp_path / "output"
    for folder in ("teacher_R50_FPN_1x", "pu_R50_nnpu", "students/pu_118k_thr0.5"):
        assert (out / folder / "model_final.pth").is_file()
    with open(out / "teacher_R50_FPN_1x" / "eval_results.json") as f:
        assert not math.isnan(json.load(f)["bbox"]["AP"])  # COCO AP on the fake val2017 (every box kept)
    with open(out / "pu_R50_nnpu" / "select" / "selected_118287.json") as f:
        selection = json.load(f)
    # K = n_l = 118287 > the pool: U^P is the whole fake ImageNet, best score first
    assert selection["summary"]["pool images"] == SPEC.num_pool and len(selection["images"]) == SPEC.num_pool
    scores = [im["score"] for im in selection["images"]]
    assert scores == sorted(scores, reverse=True)
    assert all("/imagenet/train/n0000000" in im["file_name"] for im in selection["images"])
    with open(out / "labels" / "pu_118k" / "pseudo_labels.json") as f:
        labels = json.load(f)
    assert len(labels["images"]) == SPEC.num_pool and len(labels["categories"]) == 80
    student = out / "students" / "pu_118k_thr0.5"
    with open(student / "eval_results.json") as f:
        assert not math.isnan(json.load(f)["bbox"]["AP"])
    with open(student / "metrics.json") as f:
        records = [json.loads(line) for line in f]
    assert any({"loss_hint", "loss_kdc", "loss_kdr"} <= set(r) for r in records)
    assert (student / "model_final_student.pth").is_file()


def test_gpu_check_and_overrides_fail_before_anything_runs(tmp_path):
    no_gpu = run_row("table1/baseline.sh", tmp_path, NUM_GPUS="8")
    assert no_gpu.returncode == 2
    assert "NUM_GPUS=8 but torch sees 0 CUDA GPU(s)" in no_gpu.stderr and "MODEL.DEVICE cpu" in no_gpu.stderr
    odd = run_row("table1/baseline.sh", tmp_path, "MODEL.DEVICE")
    assert odd.returncode == 2 and "KEY VALUE pairs" in odd.stderr
    cpu8 = run_row("table1/baseline.sh", tmp_path, "MODEL.DEVICE", "cpu", NUM_GPUS="8")
    assert cpu8.returncode == 2 and "NUM_GPUS=1" in cpu8.stderr
    two = run_row("table1/baseline.sh", tmp_path, NUM_MACHINES="2")
    assert two.returncode == 2 and "DIST_URL" in two.stderr
    assert not (tmp_path / "output").exists()
