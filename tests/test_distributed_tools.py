"""The tools with 2 processes on the CPU (``--num-gpus 2``, gloo), as a user runs them: the teacher,
the PU classifier (image and region heads) and self-distilled students train a few iterations, their
checkpoints load and ``--resume`` continues with 2 processes; ``select`` and ``label`` write byte for byte what
one process writes, also after a run killed on one rank resumes from its chunks; two "machines" of one process
each (``--num-machines 2``) train a student and run ``select``; a student's steps where one rank holds only a
background image, or boxes no teacher proposal matches, neither hang nor break DDP, and their distillation
terms are zero there.

Every run is a subprocess with a timeout (tests/multiproc.py): a hang fails instead of blocking the suite."""
import json
import os

import pytest
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model

import pudet
from pudet.modeling import load_checkpoint
from pudet.modeling.checkpoint import load_weights_strictly
from pudet.modeling.region_pu import load_region_head

from .helpers import FEW_ITERATIONS, TEACHER_YAML, TINY, WD_CONFIGS, load_script, tiny_opts
from .multiproc import run_machines, run_tool

pytestmark = pytest.mark.slow

TWO = ["--num-gpus", "2", "--dist-url", "auto"]
STUDENT_YAML = os.path.join(WD_CONFIGS, "student_R18_FPN_sd.yaml")
PU_YAML = os.path.join(WD_CONFIGS, "pu_R18_nnpu.yaml")
REGION_YAML = os.path.join(WD_CONFIGS, "pu_R18_region.yaml")


def _detector_opts(tiny_root, out, max_iter, *opts):
    return [*tiny_opts(tiny_root), *FEW_ITERATIONS, "SOLVER.MAX_ITER", str(max_iter), "DATASETS.TEST", "()",
            "OUTPUT_DIR", str(out), *opts]


def _log(out, rank=0):
    with open(os.path.join(out, "log.txt" if rank == 0 else f"log.txt.rank{rank}")) as f:
        return f.read()


def _loads_into(config, path, *opts):
    """The checkpoint at ``path`` loaded strictly into the model of ``config``; returns its iteration."""
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(config)
    cfg.merge_from_list(list(opts))
    load_weights_strictly(build_model(cfg), path)
    return load_checkpoint(path).get("iteration")


def _same_bytes(a, b, names):
    return {n: open(os.path.join(a, n), "rb").read() == open(os.path.join(b, n), "rb").read() for n in names}


# the teacher ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher(tiny_benchmark, tiny_root, tmp_path_factory):
    """The teacher trained 2 iterations with 2 processes, then resumed to 4 (evaluated on val and the pool)."""
    out = tmp_path_factory.mktemp("teacher2")
    run_tool("tools/train_net.py", [*TWO, *_detector_opts(tiny_root, out, 2)], log=out / "run1.txt")
    first = {"log": _log(out), "log rank1": _log(out, 1),
             "iteration": load_checkpoint(str(out / "model_final.pth"))["iteration"]}
    run_tool("tools/train_net.py", [*TWO, "--resume", *_detector_opts(
        tiny_root, out, 4, "DATASETS.TEST", "('wild_digits_val', 'wild_digits_pool')")], log=out / "run2.txt")
    return out, first


def test_teacher_trains_and_resumes_with_two_processes(teacher, tiny_root):
    out, first = teacher
    assert "Starting training from iteration 0" in first["log"] and first["iteration"] == 1
    assert "Starting training from iteration 0" in first["log rank1"]  # both processes trained
    log, log1 = _log(out), _log(out, 1)
    assert "Starting training from iteration 2" in log and "Starting training from iteration 2" in log1
    assert "Saving checkpoint" in log and "Saving checkpoint" not in log1  # only rank 0 writes checkpoints
    assert _loads_into(TEACHER_YAML, str(out / "model_final.pth")) == 3
    # the final evaluation, gathered from 2 processes, is what one process evaluates from the same weights
    with open(out / "eval_results.json") as f:
        two = json.load(f)
    tool = load_script("tools", "train_net.py")
    one = tool.main(default_argument_parser().parse_args(["--eval-only", *_detector_opts(
        tiny_root, out / "eval1", 4, "DATASETS.TEST", "('wild_digits_val', 'wild_digits_pool')",
        "MODEL.WEIGHTS", str(out / "model_final.pth"))]))
    assert json.dumps(two, sort_keys=True) == json.dumps(json.loads(json.dumps(one)), sort_keys=True)
    assert two["wild_digits_pool"]["pool"]["images pos"] + two["wild_digits_pool"]["pool"]["images neg"] == 20


# label: 2 processes = 1 process, a kill on one rank resumed ---------------------------------------------------

LABEL_FILES = ("pseudo_labels.json", "diagnostics.json", "unreadable.tsv")


def _label_args(tiny_root, teacher_out, out):
    return ["label", "--config-file", TEACHER_YAML, "--weights", str(teacher_out / "model_final.pth"),
            "--output-dir", str(out), "--chunk-size", "4", "--batch-size", "2", "--num-workers", "0",
            "--min-score", "0.0",  # a 4-iteration teacher scores every box below the default floor
            *tiny_opts(tiny_root), "DATALOADER.NUM_WORKERS", "0"]


@pytest.fixture(scope="module")
def labelled(teacher, tiny_root, tmp_path_factory):
    """The teacher's pseudo-labels of the pool (20 images, 5 chunks of 4) by 1 process and by 2."""
    teacher_out, _ = teacher
    root = tmp_path_factory.mktemp("label")
    tool = load_script("tools", "purify_net.py")
    tool.main(tool.parse_args(_label_args(tiny_root, teacher_out, root / "one")))
    run_tool("tools/purify_net.py", [*_label_args(tiny_root, teacher_out, root / "two")[:1], *TWO,
                                     *_label_args(tiny_root, teacher_out, root / "two")[1:]], log=root / "two.txt")
    return root


def test_label_with_two_processes_writes_what_one_writes(labelled):
    assert _same_bytes(labelled / "one", labelled / "two", LABEL_FILES) == dict.fromkeys(LABEL_FILES, True)
    with open(labelled / "two" / "pseudo_labels.json") as f:
        coco = json.load(f)
    assert len(coco["images"]) == TINY.num_pool and len(coco["annotations"]) == 50 * TINY.num_pool


def test_label_killed_on_one_rank_resumes_from_its_chunks(teacher, labelled, tiny_root):
    teacher_out, _ = teacher
    out = labelled / "killed"
    args = _label_args(tiny_root, teacher_out, out)
    args = [args[0], *TWO, *args[1:]]
    # rank 1 holds chunks 1 and 3: killed as it writes chunk 3; the launcher then ends rank 0 too
    run_tool("tools/purify_net.py", args, log=labelled / "killed.txt",
             kill=("pudet.data.chunked.atomic_write", 2, 1), expect_ok=False)
    chunks = sorted(os.listdir(out / "chunks"))
    assert "chunk_000001.npz" in chunks and "chunk_000003.npz" not in chunks
    assert not os.path.exists(out / "pseudo_labels.json")
    run_tool("tools/purify_net.py", args, log=labelled / "resumed.txt")
    assert "Resuming: 1 of this rank's 2 chunks are already done" in _log(out, 1)
    assert _same_bytes(labelled / "one", out, LABEL_FILES) == dict.fromkeys(LABEL_FILES, True)


# the PU classifier: the image head, the region head ---------------------------------------------------------

def _pu_opts(tiny_root, teacher_out, out, max_iter, *opts):
    return [*tiny_opts(tiny_root), "PU.INIT_FROM_DETECTOR", str(teacher_out / "model_final.pth"), "PU.INPUT_SIZE",
            "32", "PU.HOLDOUT_FRACTION", "0.25", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", str(max_iter),
            "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
            "OUTPUT_DIR", str(out), *opts]


@pytest.fixture(scope="module")
def pu_image(teacher, tiny_root, tmp_path_factory):
    """The image head trained 2 iterations with 2 processes (2 labeled + 2 unlabeled images per step, the prior
    estimated on rank 0), then resumed to 4 (validated on the holdout)."""
    teacher_out, _ = teacher
    out = tmp_path_factory.mktemp("pu2")
    first = run_tool("tools/purify_net.py", ["train", *TWO, *_pu_opts(tiny_root, teacher_out, out, 2)],
                     log=out / "run1.txt")
    iteration = load_checkpoint(str(out / "model_final.pth"))["iteration"]
    second = run_tool("tools/purify_net.py", ["train", *TWO, "--resume", *_pu_opts(tiny_root, teacher_out, out, 4)],
                      log=out / "run2.txt")
    return out, (first, iteration, second)


def test_pu_image_head_trains_and_resumes_with_two_processes(pu_image, teacher, tiny_root):
    out, (first, iteration, second) = pu_image
    teacher_out, _ = teacher
    assert "Starting training from iteration 0" in first and iteration == 1
    assert "Starting training from iteration 2" in second and "Starting training from iteration 2" in _log(out, 1)
    assert "Estimated class prior" in first and "Estimated class prior" not in second  # prior.json reused
    assert _loads_into(PU_YAML, str(out / "model_final.pth"), "PU.INPUT_SIZE", "32") == 3
    # the PU evaluator's numbers gathered from 2 processes are one process's on the same weights
    with open(out / "eval_results.json") as f:
        two = json.load(f)
    tool = load_script("tools", "purify_net.py")
    one = tool.main(tool.parse_args(["train", "--eval-only", *_pu_opts(
        tiny_root, teacher_out, out / "eval1", 4, "PU.PRIOR", str(two["prior"]["pi_p"]["used"]),
        "MODEL.WEIGHTS", str(out / "model_final.pth"))]))
    assert one["pu"] == pytest.approx(two["pu"]) and two["pu"]["labeled"] == 3 and two["pu"]["unlabeled"] == 5


def _region_opts(tiny_root, teacher_out, out):
    return ["--config-file", REGION_YAML, *_pu_opts(tiny_root, teacher_out, out, 4), "PU.PRIOR", "0.3",
            "PU.REGION.TOPK", "4", "PU.REGION.ITERS", "20", "PU.REGION.BATCH_BAGS", "4"]


def test_pu_region_head_trains_with_two_processes_and_reruns_from_its_features(teacher, tiny_root, tmp_path):
    teacher_out, _ = teacher
    args = ["train", *TWO, *_region_opts(tiny_root, teacher_out, tmp_path)]
    run_tool("tools/purify_net.py", args, log=tmp_path / "run1.txt")
    head, info = load_region_head(str(tmp_path / "model_final.pth"))
    assert info["prior"] == 0.3 and info["topk"] == 4
    with open(tmp_path / "eval_results.json") as f:
        results = json.load(f)
    assert (results["pu"]["labeled"], results["pu"]["unlabeled"]) == (3 * 2, 5)  # 3 held-out images + their crops
    run_tool("tools/purify_net.py", [*args[:3], "--resume", *args[3:]], log=tmp_path / "run2.txt")
    log = _log(tmp_path)
    # labeled, crops, pool: each one chunk (of 2048 images), rank 0's, found complete
    assert log.count("Resuming: 1 of this rank's 1 chunks are already done") == 3
    again, _ = load_region_head(str(tmp_path / "model_final.pth"))
    assert all(v.equal(again.state_dict()[k]) for k, v in head.state_dict().items())


# select: 2 processes = 1 process; killed on one rank, resumed on two machines ----------------------------------

SELECT_FILES = ("selected.json", "scores.tsv", "unreadable.tsv")


def _select_args(tiny_root, teacher_out, pu_out, out, *launch):
    return ["select", *launch, "--weights", str(pu_out / "model_final.pth"), "--output-dir", str(out), "--topk", "5",
            "--chunk-size", "4", "--batch-size", "2", "--num-workers", "0",
            *_pu_opts(tiny_root, teacher_out, pu_out, 4, "PU.PRIOR", "0.3")]


def test_select_with_two_processes_and_on_two_machines_after_a_kill(teacher, pu_image, tiny_root, tmp_path):
    teacher_out, _ = teacher
    pu_out, _ = pu_image
    tool = load_script("tools", "purify_net.py")
    one = tool.main(tool.parse_args(_select_args(tiny_root, teacher_out, pu_out, tmp_path / "one")))
    assert one["scored"] == TINY.num_pool and one["selected"] == 5
    run_tool("tools/purify_net.py", _select_args(tiny_root, teacher_out, pu_out, tmp_path / "two", *TWO),
             log=tmp_path / "two.txt")
    assert _same_bytes(tmp_path / "one", tmp_path / "two", SELECT_FILES) == dict.fromkeys(SELECT_FILES, True)
    # rank 1 (chunks 1 and 3 of 5) killed as it writes chunk 3, then resumed as two machines of one process
    killed = tmp_path / "killed"
    run_tool("tools/purify_net.py", _select_args(tiny_root, teacher_out, pu_out, killed, *TWO),
             log=tmp_path / "killed.txt", kill=("pudet.data.chunked.atomic_write", 2, 1), expect_ok=False)
    assert "chunk_000003.npz" not in os.listdir(killed / "chunks") and not os.path.exists(killed / "selected.json")
    args = _select_args(tiny_root, teacher_out, pu_out, killed)
    run_machines("tools/purify_net.py", args[1:], 2, command=args[:1], log_prefix=str(tmp_path / "machine"))
    assert "Resuming: 1 of this rank's 2 chunks are already done" in _log(killed, 1)
    assert _same_bytes(tmp_path / "one", killed, SELECT_FILES) == dict.fromkeys(SELECT_FILES, True)


# self-distilled students: L only; L + pseudo-labels with the hard cases --------------------------------------

def _student_opts(tiny_root, teacher_out, out, max_iter, *opts):
    return ["--config-file", STUDENT_YAML, *_detector_opts(
        tiny_root, out, max_iter, "MODEL.PUDET.TEACHER_WEIGHTS", str(teacher_out / "model_final.pth"), *opts)]


def test_student_on_l_trains_with_two_processes_and_resumes_on_two_machines(teacher, tiny_root, tmp_path):
    teacher_out, _ = teacher
    run_tool("tools/train_net.py", [*TWO, *_student_opts(tiny_root, teacher_out, tmp_path, 2)],
             log=tmp_path / "run1.txt")
    weights = ("MODEL.PUDET.TEACHER_WEIGHTS", str(teacher_out / "model_final.pth"))
    assert _loads_into(STUDENT_YAML, str(tmp_path / "model_final.pth"), *weights) == 1
    outputs = run_machines("tools/train_net.py", ["--resume", *_student_opts(tiny_root, teacher_out, tmp_path, 4)],
                           2, log_prefix=str(tmp_path / "machine"))
    assert "Starting training from iteration 2" in outputs[0]
    assert "Starting training from iteration 2" in _log(tmp_path, 1)
    assert _loads_into(STUDENT_YAML, str(tmp_path / "model_final.pth"), *weights) == 3
    # the exported student is a plain detector's checkpoint
    assert _loads_into(TEACHER_YAML, str(tmp_path / "model_final_student.pth")) == 4


def _hard_pseudo_labels(labelled, path):
    """Two pool images of label's file: one whose every box scores below tau = 0.5 (a background-only image
    once loaded), one with a single 3x3 box scoring 0.9, smaller than every anchor and proposal (at IoU 0.5 no
    teacher proposal matches it, as ROI_HEADS.PROPOSAL_APPEND_GT is off)."""
    with open(labelled / "two" / "pseudo_labels.json") as f:
        coco = json.load(f)
    below, tiny = coco["images"][:2]
    boxes = [{**a, "score": min(a["score"], 0.2)} for a in coco["annotations"] if a["image_id"] == below["id"]]
    boxes.append({**boxes[0], "id": 10 ** 6, "image_id": tiny["id"], "bbox": [2.0, 2.0, 3.0, 3.0], "area": 9.0,
                  "score": 0.9})
    with open(path, "w") as f:
        json.dump({**coco, "images": [below, tiny], "annotations": boxes}, f)
    return str(path)


def test_student_on_l_and_pseudo_labels_with_empty_and_unmatched_ranks(teacher, labelled, tiny_root, tmp_path):
    """1 image per rank per step, pseudo-labelled and labeled steps alternating from the start of each run (3
    steps, resumed for 3 more: P L P, P L P); the pseudo-labelled steps give one rank the background-only image
    and the other the unmatched box (detectron2's TrainingSampler deals the two images of each epoch to the
    two ranks). No hang, no DDP error (every parameter gets a gradient on every
    rank: unused ones would fail the next step), and the distillation terms that need a matched box are 0."""
    teacher_out, _ = teacher
    pseudo = _hard_pseudo_labels(labelled, tmp_path / "hard.json")
    opts = ["DATASETS.TRAIN_PSEUDO", f"('{pseudo}',)", "DATASETS.PSEUDO_SCORE_THRESH", "0.5",
            "DATASETS.PSEUDO_KEEP_EMPTY", "True", "MODEL.ROI_HEADS.PROPOSAL_APPEND_GT", "False"]
    record = tmp_path / "steps"
    run_tool("tools/train_net.py", [*TWO, *_student_opts(tiny_root, teacher_out, tmp_path, 3, *opts)],
             log=tmp_path / "run1.txt", record=record)
    run_tool("tools/train_net.py", [*TWO, "--resume", *_student_opts(tiny_root, teacher_out, tmp_path, 6, *opts)],
             log=tmp_path / "run2.txt", record=record)
    steps = [[json.loads(line) for line in open(record / f"rank{r}.jsonl")] for r in (0, 1)]
    assert [len(s) for s in steps] == [6, 6]  # 3 steps, resumed for 3 more
    for step in (0, 2, 3, 5):
        pair = sorted((steps[0][step], steps[1][step]), key=lambda s: s["gt boxes"])
        background, unmatched = pair
        assert (background["gt boxes"], unmatched["gt boxes"]) == ([0], [1])
        assert background["loss_hint"] == 0.0 and background["loss_kdr"] == 0.0
        assert background["teacher fg proposals"] == unmatched["teacher fg proposals"] == 0
        assert unmatched["loss_kdr"] == 0.0 and unmatched["loss_hint"] > 0.0
    for step in (1, 4):  # labeled images: boxes, masked hint locations
        assert all(s[step]["gt boxes"][0] > 0 and s[step]["loss_hint"] > 0 for s in steps)
    assert _loads_into(TEACHER_YAML, str(tmp_path / "model_final_student.pth")) == 6
