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
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": REPO,
           "DETECTRON2_DATASETS": str(tmp_path / "datasets"), "OUTPUT_ROOT": str(tmp_path / "output"),
           "PUDET_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([os.path.join(PROJECT, script), *opts], env=env, capture_output=True, text=True)


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


# the steps' overrides and the output guard, with a stand-in for the tools ------------------------------------

FAKE_PYTHON = """#!{python}
# records each tool command (one JSON line) and writes the file that marks its step done; runs python -c and -m
# itself
import json, os, sys
argv = sys.argv[1:]
if argv[0] in ("-c", "-m"):
    os.execv({python!r}, [{python!r}, *argv])
with open({log!r}, "a") as f:
    f.write(json.dumps(argv) + "\\n")
def value(flag):
    return argv[len(argv) - 1 - argv[::-1].index(flag) + 1]
tool, command = os.path.basename(argv[0]), argv[1]
if tool == "train_net.py" or command == "train":
    done = os.path.join(value("OUTPUT_DIR"), "model_final.pth")
else:
    done = os.path.join(value("--output-dir"), "selected.json" if command == "select" else "pseudo_labels.json")
os.makedirs(os.path.dirname(done), exist_ok=True)
open(done, "w").close()
"""


@pytest.fixture
def fake_tools(tmp_path):
    """(PYTHON for the row scripts, a function returning the tool commands run so far)."""
    log = str(tmp_path / "commands.jsonl")
    path = tmp_path / "fake_python"
    path.write_text(FAKE_PYTHON.format(python=sys.executable, log=log))
    path.chmod(0o755)

    def commands():
        if not os.path.exists(log):
            return []
        with open(log) as f:
            return [json.loads(line) for line in f]

    return str(path), commands


def _value(argv, key):
    return argv[len(argv) - 1 - argv[::-1].index(key) + 1] if key in argv else None


def test_each_step_gets_its_own_overrides_and_the_student_its_epoch(tmp_path, fake_tools):
    python, commands = fake_tools
    run = run_row("table1/pu_118k_thr0.5.sh", tmp_path, "MODEL.DEVICE", "cpu", "--pu", "SOLVER.BASE_LR", "0.001",
                  "--label", "TEST.DETECTIONS_PER_IMAGE", "50", "--student", "SOLVER.IMS_PER_BATCH", "16",
                  PYTHON=python)
    assert run.returncode == 0, run.stderr[-3000:]
    ran = commands()
    assert [(os.path.basename(c[0]), c[1] if "purify" in c[0] else "") for c in ran] == [
        ("train_net.py", ""), ("purify_net.py", "train"), ("purify_net.py", "select"), ("purify_net.py", "label"),
        ("train_net.py", "")]
    teacher, pu, select, label, student = ran
    assert all(_value(c, "MODEL.DEVICE") == "cpu" for c in ran)
    assert all(_value(c, "SOLVER.IMS_PER_BATCH") is None for c in (teacher, pu, select, label))
    assert _value(pu, "SOLVER.BASE_LR") == _value(select, "SOLVER.BASE_LR") == "0.001"
    assert _value(teacher, "SOLVER.BASE_LR") is None and _value(student, "SOLVER.BASE_LR") is None
    assert _value(label, "TEST.DETECTIONS_PER_IMAGE") == "50" and _value(student, "TEST.DETECTIONS_PER_IMAGE") is None
    # 12 epochs of L + U^P (118,287 + 118,287 images) at the student's 16 images per batch
    per_epoch = math.ceil(2 * 118287 / 16)
    assert _value(student, "SOLVER.IMS_PER_BATCH") == "16"
    assert _value(student, "SOLVER.MAX_ITER") == str(12 * per_epoch)
    assert _value(student, "SOLVER.STEPS") == f"({8 * per_epoch},{11 * per_epoch})"
    assert "--resume" in teacher and "--resume" in student and "--resume" not in select + label

    # the same again: every step is done; other student settings: refused, nothing run
    again = run_row("table1/pu_118k_thr0.5.sh", tmp_path, "MODEL.DEVICE", "cpu", "--pu", "SOLVER.BASE_LR", "0.001",
                    "--label", "TEST.DETECTIONS_PER_IMAGE", "50", "--student", "SOLVER.IMS_PER_BATCH", "16",
                    PYTHON=python)
    assert again.returncode == 0 and len(commands()) == 5
    other = run_row("table1/pu_118k_thr0.5.sh", tmp_path, "MODEL.DEVICE", "cpu", "--pu", "SOLVER.BASE_LR", "0.001",
                    "--label", "TEST.DETECTIONS_PER_IMAGE", "50", "--student", "SOLVER.IMS_PER_BATCH", "8",
                    PYTHON=python)
    assert other.returncode == 2 and len(commands()) == 5
    assert "students/pu_118k_thr0.5 was made with other settings" in other.stderr
    assert "SOLVER.IMS_PER_BATCH 16" in other.stderr and "SOLVER.IMS_PER_BATCH 8" in other.stderr


def test_a_teacher_made_with_other_settings_is_refused_before_anything_runs(tmp_path, fake_tools):
    python, commands = fake_tools
    assert run_row("table1/baseline.sh", tmp_path, "MODEL.DEVICE", "cpu", PYTHON=python).returncode == 0
    other = run_row("table1/random_236k_thr0.5.sh", tmp_path, "MODEL.DEVICE", "cpu", "--teacher",
                    "SOLVER.BASE_LR", "0.02", PYTHON=python)
    assert other.returncode == 2 and "teacher_R50_FPN_1x was made with other settings" in other.stderr
    assert len(commands()) == 1


def test_table3_r50_full_row_reuses_table1_self_distillation(tmp_path, fake_tools):
    python, commands = fake_tools
    assert run_row("table1/self_distillation.sh", tmp_path, "MODEL.DEVICE", "cpu", PYTHON=python).returncode == 0
    assert run_row("table3/r50_from_r50_hint_kdc_kdr.sh", tmp_path, "MODEL.DEVICE", "cpu",
                   PYTHON=python).returncode == 0
    trained = [_value(c, "OUTPUT_DIR") for c in commands()]
    assert trained == [str(tmp_path / "output" / "teacher_R50_FPN_1x"),
                       str(tmp_path / "output" / "student_R50_FPN_1x_self_distill")]


def test_unknown_section_and_odd_section_are_refused(tmp_path):
    unknown = run_row("table1/baseline.sh", tmp_path, "MODEL.DEVICE", "cpu", "--students", "SEED", "1")
    assert unknown.returncode == 2 and "unknown section --students" in unknown.stderr
    odd = run_row("table1/baseline.sh", tmp_path, "MODEL.DEVICE", "cpu", "--student", "SEED")
    assert odd.returncode == 2 and "KEY VALUE pairs" in odd.stderr
    assert not (tmp_path / "output").exists()
