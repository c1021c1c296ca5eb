import json
import os
import re
import shlex
import threading
import time

import pytest
import torch
import yaml

from pudet.data.datasets import load_pseudo_labeled
from pudet.evaluation.pool_truth import load_pool_truth, negative_scene_boxes, oracle_pseudo_labels
from wild_demo import checks, report, rows, runner, settings, stages
from wild_demo.runner import Runner
from wild_demo.settings import Paths

from .helpers import TINY, load_script, teacher_cfg, tiny_opts


@pytest.fixture(scope="module")
def demo():
    return load_script("projects", "WildDigits", "run_demo.py")


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def test_margins_of_the_comparisons():
    ap = {"baseline": 40.0, "sd": 40.5, "sd_2x": 41.0, "teacher_2x": 42.0, "random_0.5": 40.2, "pu_0.5": 40.1,
          "random_0.9": 39.0, "pu_0.9": 40.25, "confidence_0.5": 40.4, "oracle_selection": 41.5, "oracle": 44.0}
    margins = {c.name: checks.margin_of(c, ap) for c in checks.VERDICTS}
    assert margins == pytest.approx({
        "SD > labeled only": 0.5,
        "U^P > SD at tau 0.5": -0.4, "U^P > SD at tau 0.9": -0.25,
        "U^P > U^R at tau 0.5": -0.1, "U^P > U^R at tau 0.9": 1.25,
        "U^P > SD at equal iterations, tau 0.5": -0.9, "U^P > SD at equal iterations, tau 0.9": -0.75,
        "U^P > labeled only at equal iterations, tau 0.5": -1.9,
        "U^P > labeled only at equal iterations, tau 0.9": -1.75,
        "U^P > U^C at tau 0.5": -0.3,
        # above every pseudo-labelled row: against the best of them, the oracle's selection with the teacher's labels
        "the oracle > every pseudo-labelled row": 2.5,
        "the oracle > SD at equal iterations": 3.0,
    })
    # U^P's loss against the oracle (3.9) is the selection's 1.4 plus the labels' 2.5
    assert [checks.margin_of(c, ap) for c in checks.SPLIT] == pytest.approx([1.4, 2.5])
    assert checks.PSEUDO_LABELLED_ROWS == ("random_0.5", "random_0.9", "pu_0.5", "pu_0.9", "confidence_0.5",
                                           "oracle_selection")
    # a comparison of rows not trained is not measured; "above every" compares with the rows trained
    assert checks.margin_of(checks.VERDICTS[1], {"pu_0.5": 40.0}) is None
    assert checks.margin_of(checks.VERDICTS[-2], {"oracle": 44.0, "pu_0.9": 41.0}) == 3.0


def test_the_miniatures_checks():
    ap = {"baseline": 40.0, "sd": 41.0, "pu_0.5": 41.2, "oracle": 44.04}
    found = checks.check_miniature(region_oracle_auc=95.0, negative={"boxes/img": 0.25}, ap=ap)
    assert [c["check"] for c in found] == list(checks.CHECKS.values())
    assert [(c["measured"], c["value"], c["verdict"]) for c in found] == [
        ("AUC 95.0", 95.0, "reported"),  # no pass mark
        ("0.25 boxes/img", 0.25, "does not hold"),  # < 0.3
        ("AP 44.0: +4.0 over labeled only", 4.0, "holds"),  # >= 4, judged as printed
    ]

    def verdict(name, **kwargs):
        return next(c["verdict"] for c in checks.check_miniature(**kwargs) if c["check"] == checks.CHECKS[name])

    assert verdict("fooled", negative={"boxes/img": 0.3}) == "holds"  # >= 0.3
    assert verdict("ceiling", ap={**ap, "oracle": 43.9}) == "does not hold"
    # nothing measured: not measured, never holds
    assert {c["verdict"] for c in checks.check_miniature()} == {"not measured"}
    assert verdict("ceiling", ap={"oracle": 45.0}) == "not measured"  # labeled only not trained


def test_seconds_per_iteration_and_stage_times(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps(e) for e in (
        {"iteration": 19, "time": 0.3, "total_loss": 2.0}, {"iteration": 39, "time": 0.5},
        {"iteration": 59, "time": 0.2}, {"iteration": 59, "bbox/AP": 40.0})) + "\n")
    assert report.seconds_per_iteration(str(metrics)) == 0.3
    assert report.seconds_per_iteration(str(tmp_path / "none.json")) is None
    logs = str(tmp_path / "logs")
    os.makedirs(logs)
    # steps side by side count once: students 1000-1050 and 1030-1060, then 1100-1130 alone = 60 + 30 s
    for stage, log, start, end in (("students", "student_sd", 1000.0, 1050.0), ("teacher", "teacher", 0.0, 120.0),
                                   ("students", "student_baseline", 1030.0, 1060.0),
                                   ("label", "label_pool", 500.0, 520.0),
                                   ("students", "student_oracle", 1100.0, 1130.0)):
        Runner(logs, stage=stage).record_time(log, start, end)
    assert report.stage_times(logs) == {"teacher": 120.0, "label": 20.0, "students": 90.0}
    assert list(report.stage_times(logs)) == ["teacher", "label", "students"]  # in run order
    with open(os.path.join(logs, "pu.time.json"), "w") as f:  # kept by an older run: seconds only
        json.dump({"stage": "pu", "seconds": 40.0}, f)
    assert report.stage_times(logs)["pu"] == 40.0
    os.remove(os.path.join(logs, "pu.time.json"))
    for log in ("teacher", "student_sd", "pu"):
        (tmp_path / "logs" / f"{log}.log").write_text("")
    assert report.untimed_steps(logs) == ["pu"]  # a step with a log and no time: finished by an older run


def test_independent_steps_run_side_by_side_with_a_share_of_the_threads(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    seen, lock, both = [], threading.Lock(), threading.Barrier(2, timeout=10)

    def call(name):
        def fn(r):
            with lock:
                seen.append((name, r.threads))
            both.wait()  # returns only when the two calls run at the same time
        return fn

    Runner("logs", stage="students", jobs=2).in_parallel(call("a"), call("b"))
    assert sorted(seen) == [("a", 2), ("b", 2)]

    gate = threading.Barrier(2, timeout=10)

    def fails(r):
        gate.wait()
        raise SystemExit("failed (1): see row.log")

    def running(r):
        gate.wait()
        time.sleep(0.2)
        seen.append("done")

    seen.clear()
    with pytest.raises(SystemExit, match="row.log"):  # the call running beside the failure still finishes
        Runner("logs", jobs=2).in_parallel(fails, running)
    assert seen == ["done"]

    def fails_at_once(r):
        raise SystemExit("failed (1): see row.log")

    started = []  # a failure drops the calls not yet started
    with pytest.raises(SystemExit, match="row.log"):
        Runner("logs", jobs=1).in_parallel(fails_at_once, lambda r: started.append("late"))
    with pytest.raises(SystemExit):
        settings.parse_args(["--jobs", "0"])
    assert started == []
    order = []
    Runner("logs", jobs=1).in_parallel(lambda r: order.append(("x", r.threads)),
                                       lambda r: order.append(("y", r.threads)))
    assert order == [("x", None), ("y", None)]  # one after another, torch's own threads


def test_the_last_line_names_only_what_the_run_made(tmp_path):
    args = settings.parse_args(["--output-dir", str(tmp_path)])
    line = report.done_line(args, ["teacher"], 90.0)
    assert line.startswith("Done in 1.5 min: stage teacher;") and "results.md" not in line
    (tmp_path / "gallery.png").write_bytes(b"png")
    line = report.done_line(args, list(stages.STAGES[1]), 600.0)
    assert "results.md and results.json; gallery.png beside them" in line and "score_histogram" not in line


def test_finished_training_keeps_only_its_final_checkpoint(tmp_path):
    out = tmp_path / "teacher"
    out.mkdir()
    for name in ("model_0000165.pth", "model_0000331.pth", "last_checkpoint", "metrics.json"):
        (out / name).write_text("x")
    runner.prune_checkpoints(str(out))  # no model_final.pth: an unfinished training keeps what it resumes from
    assert len(list(out.iterdir())) == 4
    (out / "model_final.pth").write_text("x")
    runner.prune_checkpoints(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["last_checkpoint", "metrics.json", "model_final.pth"]


def test_options(capsys, tmp_path):
    assert settings.parse_args([]).rows.split(",") == [r.key for r in rows.ROWS] == [
        "baseline", "sd", "random_0.5", "random_0.9", "pu_0.5", "pu_0.9", "confidence_0.5", "oracle_selection",
        "oracle", "teacher_2x", "sd_2x"]
    assert settings.parse_args(["--rows", "sd,pu_0.9"]).rows == "sd,pu_0.9"
    with pytest.raises(SystemExit):
        settings.parse_args(["--rows", "sd,pu_0.7"])
    assert "unknown rows ['pu_0.7']" in capsys.readouterr().err
    full, quick = settings.parse_args([]), settings.parse_args(["--quick", "--num-pool", "100"])
    assert (full.output_dir, full.num_labeled, full.num_pool, full.teacher_iters, full.teacher_lr) == (
        "output/demo", 200, 2000, 500, 0.04)
    assert (quick.output_dir, quick.num_labeled, quick.num_pool, quick.teacher_lr) == (
        "output/demo_quick", settings.QUICK["num_labeled"], 100, settings.QUICK["teacher_lr"])
    # the students' 1x on L is the teacher's schedule unless told otherwise
    assert (full.student_iters, full.student_lr, quick.student_iters, quick.student_lr) == (
        500, 0.04, settings.QUICK["teacher_iters"], settings.QUICK["teacher_lr"])
    assert settings.parse_args(["--student-iters", "200", "--teacher-lr", "0.02"]).student_lr == 0.02
    assert rows.schedule(200, 0.02)[:6] == ["SOLVER.MAX_ITER", "200", "SOLVER.BASE_LR", "0.02", "SOLVER.STEPS",
                                            "(160,)"]
    # the schedule rule: 500 iterations of batch 8 on 200 images are 20 epochs; a row on L and K = 200 pool
    # images trains 20 epochs of 400 images (1000 iterations), as do the two controls at equal compute. --quick:
    # 60 iterations of batch 2 on 40 images are 3 epochs; with 40 pool images 120
    with open(os.path.join(rows.CONFIGS, "Base-WildDigits.yaml")) as f:
        assert yaml.safe_load(f)["SOLVER"]["IMS_PER_BATCH"] == rows.IMS_PER_BATCH
    by_key = {r.key: r for r in rows.ROWS}
    iters = {k: rows.row_schedule(full, r) for k, r in by_key.items()}
    assert {k: (s.max_iter, s.steps) for k, s in iters.items()} == {
        k: ((500, (400,)) if k in ("baseline", "sd") else (1000, (800,))) for k in by_key}
    assert {rows.row_schedule(quick, r).max_iter for r in rows.ROWS if r.key not in ("baseline", "sd")} == {120}
    assert rows.row_schedule(quick, by_key["sd"]).max_iter == 60
    assert rows.row_schedule(settings.parse_args(["--student-iters", "250"]), by_key["pu_0.5"]).max_iter == 500
    student = rows.student_args(full, by_key["pu_0.9"], "t.pth", "labels", "out")
    overrides = dict(zip(student[3::2], student[4::2]))
    assert (overrides["SOLVER.MAX_ITER"], overrides["SOLVER.STEPS"], overrides["SOLVER.WARMUP_ITERS"]) == (
        "1000", "(800,)", "100")  # the teacher's warmup
    assert overrides["DATASETS.TRAIN_PSEUDO"] == "('labels/pu/pseudo_labels.json',)"
    control = rows.student_args(full, by_key["teacher_2x"], "t.pth", "labels", "out")
    assert control[2] == rows.TEACHER_YAML and "MODEL.PUDET.TEACHER_WEIGHTS" not in control
    assert "DATASETS.TRAIN_PSEUDO" not in rows.student_args(full, by_key["sd_2x"], "t.pth", "labels", "out")
    # the class split reaches every tool: the benchmark's known digits and the detector's number of classes
    opts = rows.benchmark_opts(settings.parse_args(["--known-classes", "5,6,7"]))
    assert opts[opts.index("WILD_DIGITS.KNOWN_CLASSES") + 1] == "[5,6,7]"
    assert opts[opts.index("MODEL.ROI_HEADS.NUM_CLASSES") + 1] == "3"
    # an output dir keeps its settings: a rerun with others would reuse steps of another run
    out = str(tmp_path / "demo")
    settings.check_settings(settings.parse_args(["--output-dir", out]))
    settings.check_settings(settings.parse_args(["--output-dir", out, "--stage", "report"]))
    with pytest.raises(SystemExit, match="num_labeled 200 there, 40 now"):
        settings.check_settings(settings.parse_args(["--output-dir", out, "--quick"]))
    # the teachers start from the glyph pretraining, or from scratch with --pretrain-iters 0
    assert rows.pretrain_opts(full) == ["WILD_DIGITS.PRETRAIN.ENABLED", "True", "WILD_DIGITS.PRETRAIN.ITERS", "2400"]
    assert rows.pretrain_opts(settings.parse_args(["--pretrain-iters", "0"])) == [
        "WILD_DIGITS.PRETRAIN.ENABLED", "False"]
    # a run made before --pretrain-iters existed had scratch teachers: reusing it for pretrained ones is refused
    old = tmp_path / "old"
    old.mkdir()
    recorded = {k: getattr(full, k) for k in settings.SETTINGS if k != "pretrain_iters"}
    (old / "settings.json").write_text(json.dumps(recorded))
    with pytest.raises(SystemExit, match="pretrain_iters 0 there, 2400 now"):
        settings.check_settings(settings.parse_args(["--output-dir", str(old)]))
    settings.check_settings(settings.parse_args(["--output-dir", str(old), "--pretrain-iters", "0"]))
    # students start from the teacher's own start (the pretrained bottom-up), or from the teacher's weights;
    # an output dir made before --student-start existed holds teacher-started students
    assert rows.student_start_opts(full, "t.pth") == [
        "WILD_DIGITS.PRETRAIN.ENABLED", "True", "WILD_DIGITS.PRETRAIN.ITERS", "2400", "MODEL.WEIGHTS", ""]
    teacher_start = settings.parse_args(["--student-start", "teacher"])
    assert rows.student_start_opts(teacher_start, "t.pth") == ["MODEL.WEIGHTS", "t.pth"]
    recorded.pop("student_start")
    (old / "settings.json").write_text(json.dumps({**recorded, "pretrain_iters": 2400}))
    settings.check_settings(settings.parse_args(["--output-dir", str(old), "--student-start", "teacher"]))
    with pytest.raises(SystemExit, match="student_start teacher there, pretrained now"):
        settings.check_settings(settings.parse_args(["--output-dir", str(old)]))
    # a run made before the schedule rule trained every row the teacher's iterations: refused
    before_rule = {k: v for k, v in recorded.items() if k != "schedule_rule"}
    (old / "settings.json").write_text(json.dumps({**before_rule, "pretrain_iters": 2400}))
    with pytest.raises(SystemExit, match="schedule_rule the teacher's iterations there, the teacher's epochs of 2 "):
        settings.check_settings(settings.parse_args(["--output-dir", str(old), "--student-start", "teacher"]))
    # the paper's protocol makes the labeled-only row the teacher itself (trained once); any other start or
    # schedule trains it as a row of its own
    paths = settings.Paths.of("o")
    baseline = rows.ROWS[0]
    assert rows.teacher_is_baseline(full) and rows.row_folder(full, paths, baseline) == paths.teacher
    assert rows.row_folder(full, paths, rows.ROWS[1]) == os.path.join("o", "students", "sd")
    for other in (teacher_start, settings.parse_args(["--student-iters", "200"])):
        assert not rows.teacher_is_baseline(other)
        assert rows.row_folder(other, paths, baseline) == os.path.join("o", "students", "baseline")
    # the teacher and a labeled-only student of the same SEED get the same training: the same config file and
    # overrides (the student's MODEL.WEIGHTS "" is the teacher config's own)
    teacher, student = rows.teacher_args(full, "out", 500), rows.student_args(full, baseline, "t.pth", "labels", "out")
    assert teacher[:3] == student[:3] == ["--resume", "--config-file", rows.TEACHER_YAML]
    overrides = dict(zip(student[3::2], student[4::2]))
    assert overrides.pop("MODEL.WEIGHTS") == ""
    assert overrides == dict(zip(teacher[3::2], teacher[4::2]))
    # every tool runs on the device torch sees (auto), or on the one asked for
    assert full.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert settings.parse_args(["--device", "cpu"]).device == "cpu"


def test_dry_run_lists_the_commands_and_runs_nothing(demo, tmp_path, capsys):
    out = str(tmp_path / "demo")
    demo.main(["--dry-run", "--quick", "--output-dir", out])
    printed = capsys.readouterr().out.splitlines()
    commands = [line for line in printed if not line.startswith(("==", "Dry run"))]
    assert printed[-1] == "Dry run: stage teacher, pu, select, label, students, report listed; nothing ran"
    assert not os.path.exists(out)  # not even settings.json
    tools = [os.path.basename(next(w for w in shlex.split(c) if w.endswith(".py"))) for c in commands]
    # pu 2, select 2 and their measures against the pool's truth (by the evaluation tool, after each is made); label
    # 3, U^C's select and its measure, the oracle's scenes, their labels and U^C's, the negative scenes; 10 trainings
    # in the students stage (the labeled-only row is the teacher), the longest first (a distilled iteration counts
    # two)
    purify, evaluate = "purify_net.py", "evaluate_pool_truth.py"
    assert tools == ["train_net.py"] + [purify] * 4 + [evaluate] * 2 + [purify] * 4 + [evaluate] * 2 + [purify] * 2 \
        + [evaluate] + ["train_net.py"] * 10 + ["visualize_pseudo_labels.py"]
    assert "--output-dir {0}/labels/oracle_selection --selection {0}/labels/oracle/selected.json".format(out) \
        in commands[14]

    def value(command, key):
        words = shlex.split(command)
        return words[words.index(key) + 1]

    assert [(value(c, "OUTPUT_DIR").split("/")[-1], value(c, "SOLVER.MAX_ITER")) for c in commands[16:26]] == [
        (k, "120") for k in ("random_0.5", "random_0.9", "pu_0.5", "pu_0.9", "confidence_0.5", "oracle_selection",
                             "oracle", "sd_2x")] + [("sd", "60"), ("teacher_2x", "120")]
    # a step that needs an earlier one's output names it; steps side by side get their share of the threads
    assert f"PU.PRIOR '<prior of {out}/pu/prior.json>'" in commands[3]
    assert commands[1].startswith("OMP_NUM_THREADS=") and not commands[0].startswith("OMP_NUM_THREADS=")
    assert "--titles 'random (U^R)' 'PU-selected (U^P)'" in commands[-1]
    # a finished step is left out
    os.makedirs(os.path.join(out, "teacher"))
    with open(os.path.join(out, "teacher", "eval_results.json"), "w") as f:
        f.write("{}")
    demo.main(["--dry-run", "--quick", "--output-dir", out, "--stage", "teacher"])
    assert capsys.readouterr().out.splitlines()[1:] == ["Dry run: stage teacher listed; nothing ran"]


def test_oracle_pseudo_labels_are_the_pools_true_positives(tiny_root, tiny_benchmark, tmp_path):
    """The oracle row's file: K positive pool scenes with their true boxes, read by the student's loader
    like any pseudo-label file; and the teacher's false alarms counted on the negative scenes only."""
    teacher_cfg(tiny_root)
    truth = load_pool_truth("wild_digits_pool")
    positive = {im["id"] for im in truth["images"] if im["positive"]}
    assert len(positive) == round(TINY.pos_fraction * TINY.num_pool) == 8
    coco = oracle_pseudo_labels("wild_digits_pool", k=3, seed=0)
    ids = [im["id"] for im in coco["images"]]
    assert len(ids) == 3 and set(ids) <= positive and ids == sorted(ids)
    assert [im["id"] for im in oracle_pseudo_labels("wild_digits_pool", k=3, seed=0)["images"]] == ids
    assert {im["id"] for im in oracle_pseudo_labels("wild_digits_pool", k=50, seed=0)["images"]} == positive
    true_boxes = sorted((a["image_id"], a["category_id"], tuple(a["bbox"])) for a in truth["annotations"]
                        if a["image_id"] in ids)
    assert true_boxes and sorted((a["image_id"], a["category_id"], tuple(a["bbox"])) for a in coco["annotations"]) \
        == true_boxes
    assert {a["score"] for a in coco["annotations"]} == {1.0}
    assert coco["categories"] == truth["categories"] and coco["info"]["dataset"] == "wild_digits_pool"

    path = str(tmp_path / "oracle.json")
    write(path, coco)
    dicts = load_pseudo_labeled(path, "", "oracle_test", score_thresh=0.9, keep_empty=False)
    assert all(os.path.isfile(d["file_name"]) for d in dicts)
    loaded = sorted((d["image_id"], a["category_id"] + 1, tuple(round(v, 3) for v in a["bbox"]))
                    for d in dicts for a in d["annotations"])  # contiguous ids back to the dataset's 1..K
    assert loaded == [(i, c, tuple(round(v, 3) for v in b)) for i, c, b in true_boxes]

    negative = sorted(im["id"] for im in truth["images"] if not im["positive"])
    n1, n2, p1 = negative[0], negative[1], sorted(positive)[0]
    box = [10.0, 10.0, 20.0, 20.0]
    detections = [(n1, 1, 0.9), (n1, 2, 0.6), (n1, 1, 0.4), (n1, 3, 0.5), (p1, 1, 0.95)]
    pool_labels = {"info": {"dataset": "wild_digits_pool"}, "categories": truth["categories"],
                   "images": [{"id": i} for i in (n1, n2, p1)],
                   "annotations": [{"image_id": i, "category_id": c, "score": s, "bbox": box}
                                   for i, c, s in detections]}
    counted = negative_scene_boxes(pool_labels, score_thresh=0.5)
    # 2 negative scenes, 2 boxes above 0.5 (0.5 itself is not above), both on n1
    assert counted == {"score_thresh": 0.5, "negative images": 2, "boxes/img": 1.0, "fired": 0.5,
                       "per class": {"digit 0": 0.5, "digit 1": 0.5, "digit 2": 0.0, "digit 3": 0.0, "digit 4": 0.0}}

    # the demo's tool step writes what these functions give
    tool = load_script("tools", "evaluate_pool_truth.py")
    write(str(tmp_path / "pool" / "pseudo_labels.json"), pool_labels)
    tool.main(tool.parse_args(["negative-scenes", "--pseudo-labels", str(tmp_path / "pool" / "pseudo_labels.json"),
                               "--output-dir", str(tmp_path / "truth"), *tiny_opts(tiny_root)]))
    with open(tmp_path / "truth" / "negative_scenes.json") as f:
        assert json.load(f) == counted
    out = str(tmp_path / "oracle")
    tool.main(tool.parse_args(["oracle-labels", "--k", "3", "--output-dir", out, *tiny_opts(tiny_root)]))
    with open(os.path.join(out, "pseudo_labels.json")) as f:
        assert json.load(f) == coco
    # the same scenes as a selection, for the teacher to label (the oracle-selection row)
    with open(os.path.join(out, "selected.json")) as f:
        selection = json.load(f)
    assert selection["summary"]["dataset"] == "wild_digits_pool"
    assert [(im["image_id"], im["file_name"]) for im in selection["images"]] == [
        (im["id"], im["file_name"]) for im in coco["images"]]
    with open(os.path.join(out, "diagnostics.json")) as f:
        rows = json.load(f)["taus"]
    assert [(r["tau"], r["images"], r["precision"], r["recall"]) for r in rows] == [(t, 3, 1.0, 1.0) for t in
                                                                                  (0.5, 0.7, 0.9)]


@pytest.mark.slow
def test_report_reads_the_stages_summaries(tiny_benchmark, tmp_path, capsys):
    """The report tabulates what the stages wrote (files made here by hand), and nothing else."""
    _, folder = tiny_benchmark
    # students started from the teacher's weights: the labeled-only row is a training of its own
    args = settings.parse_args(["--output-dir", str(tmp_path), "--rows", "baseline,pu_0.5",
                                "--student-start", "teacher"])
    p = Paths.of(args.output_dir)

    bbox = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0, "APs": 41.0, "APm": 30.0}
    write(os.path.join(p.teacher, "eval_results.json"), {"bbox": bbox})
    for row, ap in (("baseline", 41.0), ("teacher_2x", 40.6), ("sd", 41.5), ("sd_2x", 42.75), ("pu_0.5", 42.5),
                    ("oracle", 47.0)):
        write(os.path.join(p.students, row, "eval_results.json"), {"bbox": {**bbox, "AP": ap}})
    taus = [{"tau": t, "images": 400, "boxes": b, "precision": pr, "recall": r}
            for t, b, pr, r in ((0.5, 900, 0.3, 0.6), (0.7, 600, 0.4, 0.5), (0.9, 300, 0.6, 0.4))]
    purified = [{**r, "boxes": r["boxes"] // 2, "precision": r["precision"] + 0.2, "recall": r["recall"] - 0.1}
                for r in taus]
    write(os.path.join(p.labels, "pu", "diagnostics.json"),
          {"taus": taus, "box purified": {"pu_score_thresh": 0.0, "taus": purified}})
    write(os.path.join(p.labels, "oracle", "diagnostics.json"),
          {"taus": [{"tau": t, "images": 200, "boxes": 520, "precision": 1.0, "recall": 1.0} for t in (0.5, 0.9)]})
    write(os.path.join(p.pool_truth, "negative_scenes.json"),
          {"score_thresh": 0.5, "negative images": 1500, "boxes/img": 0.42, "fired": 0.31,
           "per class": {"digit 0": 0.2, "digit 1": 0.22}})
    ranking = {"AUC": 0.8, "precision@K": 0.65, "recall@K": 0.52}
    write(os.path.join(p.pool_truth, "select", "selection.json"), {**ranking, "AUC": 0.56})
    comparison = [{"selection": name, "AUC": auc, "precision@K": 60.0, "recall@K": 48.0}
                  for name, auc in (("region head, nnpu (this selection)", 80.0), ("oracle", 84.0))]
    comparison.append({"selection": "random (expected)", "AUC": 50.0, "precision@K": 25.0, "recall@K": 20.0})
    write(os.path.join(p.pool_truth, "select_region", "selection.json"),
          {**ranking, "pool positive fraction": 0.25, "comparison": comparison})
    write(os.path.join(p.pool_truth, "select_confidence", "selection.json"), {**ranking, "AUC": 0.7})
    write(os.path.join(p.pu_region, "prior.json"), {"prior": 0.248, "estimator": "bbe", "elkan-noto": 0.52,
                                                    "interval": [0.21, 0.262], "interval_level": 0.9})
    write(os.path.join(p.pu, "prior.json"), {"prior": 0.6, "estimator": "bbe"})
    with open(os.path.join(p.teacher, "metrics.json"), "w") as f:
        f.write("".join(json.dumps({"iteration": i, "time": t}) + "\n" for i, t in ((19, 0.3), (39, 0.5), (59, 0.2))))
    with open(os.path.join(folder, "pool_truth.json")) as f:
        pool = json.load(f)
    coco = {"images": pool["images"][:2], "annotations": [], "categories": pool["categories"]}
    for name in ("random", "pu"):
        coco["images"] = [{**im, "file_name": os.path.join(folder, "pool", os.path.basename(im["file_name"]))}
                          for im in pool["images"][:2]]
        write(os.path.join(p.labels, name, "pseudo_labels.json"), coco)
    with open(os.path.join(p.pool_truth, "select_region", "score_histogram.png"), "wb") as f:
        f.write(b"png")
    os.makedirs(p.logs, exist_ok=True)
    for stage, log, start, end in (("teacher", "teacher", 0.0, 120.0), ("pu", "pu", 200.0, 260.0),
                                   ("label", "label_pool", 300.0, 320.0)):
        Runner(p.logs, stage=stage).record_time(log, start, end)

    stages.stage_report(args, p, Runner(p.logs, stage="report"))
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert [r[0] for r in results["rows"]] == [
        "Teacher D_t (L)", "Labeled only (baseline)", "+ Self-distillation", "+ PU selected (U^P)",
        "+ oracle: K true-positive pool scenes, true boxes (perfect purifier + labels)",
        "Labeled only at the pool rows' iterations (train-longer)", "+ Self-distillation at the pool rows' iterations"]
    # n_u, thr, boxes, iterations, AP
    assert results["rows"][-3][1:6] == [200, 0.5, 520, 1000, 47.0]
    assert [r[4] for r in results["rows"]] == [500, 500, 500, 1000, 1000, 1000, 1000]
    assert results["ap"] == {"baseline": 41.0, "sd": 41.5, "pu_0.5": 42.5, "oracle": 47.0, "teacher_2x": 40.6,
                             "sd_2x": 42.75}
    assert results["iterations"] == {"baseline": 500, "sd": 500, "pu_0.5": 1000, "oracle": 1000, "teacher_2x": 1000,
                                     "sd_2x": 1000}
    assert [r[0] for r in results["selection_rows"]] == [
        "image head N_pu, nnPU (the paper's)", "region head, nnpu (this selection)", "oracle",
        "teacher's best box score (U^C)", "random (expected)"]
    assert [r[1] for r in results["selection_rows"]] == pytest.approx([56.0, 80.0, 84.0, 70.0, 50.0])
    assert results["box_purification"] == [
        ["as labelled", 0.5, 900, 0.3, 0.6], ["as labelled", 0.9, 300, 0.6, 0.4],
        ["box-purified (region PU score >= 0)", 0.5, 450, 0.5, 0.5],
        ["box-purified (region PU score >= 0)", 0.9, 150, 0.8, pytest.approx(0.3)]]
    # this fold's margins of the comparisons whose rows were trained
    assert [(m["comparison"], m["rows"], m["margin"]) for m in results["margins"]] == [
        ("SD > labeled only", "sd 41.5 vs baseline 41.0", 0.5),
        ("U^P > SD at tau 0.5", "pu_0.5 42.5 vs sd 41.5", 1.0),
        ("U^P > SD at equal iterations, tau 0.5", "pu_0.5 42.5 vs sd_2x 42.8", -0.25),
        ("U^P > labeled only at equal iterations, tau 0.5", "pu_0.5 42.5 vs teacher_2x 40.6", pytest.approx(1.9)),
        ("the oracle > every pseudo-labelled row", "oracle 47.0 vs pu_0.5 42.5", 4.5),
        ("the oracle > SD at equal iterations", "oracle 47.0 vs sd_2x 42.8", 4.25)]
    assert results["split"] == []  # the oracle-selection row not trained
    assert [(c["measured"], c["verdict"]) for c in results["checks"]] == [
        ("AUC 84.0", "reported"), ("0.42 boxes/img", "holds"), ("AP 47.0: +6.0 over labeled only", "holds")]
    assert results["negative_scenes"]["per class"] == {"digit 0": 0.2, "digit 1": 0.22}
    times = results["time"]
    assert times["teacher seconds/iteration"] == 0.3
    assert list(times["stages"]) == ["teacher", "pu", "label", "report"]  # the report: its gallery
    assert times["total"] == pytest.approx(200.0 + times["stages"]["report"])
    assert times["untimed steps"] == []
    assert times["total in teacher iterations"] == pytest.approx(times["total"] / 0.3)
    out = capsys.readouterr().out
    assert ("estimated 0.248, 90% interval [0.210, 0.262] (bbe on the region head's out-of-fold scores; Elkan-Noto "
            "there 0.520). The image head trained with 0.600 (bbe on its pooled features, whose head ranks the pool at "
            "AUC 56.0): an upper bound on pi_p, not an estimate of it") in out
    assert ("the teacher on the pool's 1500 negative scenes: 0.42 boxes/img above 0.5 (digit 0 0.20, digit 1 0.22); "
            "31.0% of them hold at least one") in out
    assert re.search(r"\| U\^P > SD at equal iterations, tau 0.5 +\| pu_0.5 42.5 vs sd_2x 42.8 +\| +-0.2 \|", out)
    assert "a verdict needs the folds" in out
    assert "seconds per iteration (median of its metrics.json; the machine's yardstick): 0.300" in out
    assert f"device: {args.device};" in out

    # the paper's protocol (the default): the labeled-only row is the teacher, whatever students/baseline holds
    paper = settings.parse_args(["--output-dir", str(tmp_path), "--rows", "baseline,pu_0.5"])
    stages.stage_report(paper, p, Runner(p.logs, stage="report"))
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert results["rows"][1][0] == "Labeled only (baseline) = the teacher" and results["rows"][1][-5] == 40.0
    assert results["margins"][0]["margin"] == 1.5  # SD against the teacher


def test_report_of_a_run_without_the_pool_stages(tmp_path):
    """A run of the teacher and some rows only (e.g. a class-split check of self-distillation): the report
    tabulates them, gives the margins it can, and says what was not measured instead of failing."""
    args = settings.parse_args(["--output-dir", str(tmp_path), "--rows", "baseline,sd", "--student-start", "teacher"])
    p = Paths.of(args.output_dir)
    bbox = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0, "APs": 41.0, "APm": 30.0}
    write(os.path.join(p.teacher, "eval_results.json"), {"bbox": bbox})
    for row, ap in (("baseline", 41.0), ("sd", 42.5)):
        write(os.path.join(p.students, row, "eval_results.json"), {"bbox": {**bbox, "AP": ap}})
    os.makedirs(p.logs, exist_ok=True)

    stages.stage_report(args, p, Runner(p.logs, stage="report"))
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert [r[-5] for r in results["rows"]] == [40.0, 41.0, 42.5]
    assert [(m["comparison"], m["margin"]) for m in results["margins"]] == [("SD > labeled only", 1.5)]
    assert results["pu_selection"] is None and results["negative_scenes"] is None
    with open(os.path.join(str(tmp_path), "results.md")) as f:
        text = f.read()
    assert "against the pool's truth: not measured" in text and "pool_truth/select/selection.json is missing" in text
    assert not os.path.exists(os.path.join(str(tmp_path), "gallery.png"))


def test_table3_options_and_rows(capsys):
    args = settings.parse_args(["--table", "3"])
    assert (args.output_dir, settings.parse_args(["--table", "3", "--quick"]).output_dir) == (
        "output/demo_table3", "output/demo_table3_quick")
    assert args.rows.split(",") == [r.key for r in rows.TABLE3_ROWS] == [
        "large_teacher", "baseline", "large_hint", "large_hint_kdc", "large_all", "large_eq15", "same_hint",
        "same_hint_kdc", "same_all", "same_eq15"]
    # Table 1's rows, stages and start are not Table 3's
    for argv, message in ((["--rows", "sd"], "Table 3's rows are"), (["--stage", "pu"], "Table 3's stages are"),
                          (["--student-start", "teacher"], "--student-start pretrained")):
        with pytest.raises(SystemExit):
            settings.parse_args(["--table", "3", *argv])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        settings.parse_args(["--stage", "large_teacher"])
    assert "Table 1's stages are" in capsys.readouterr().err
    # a run made before --table existed made Table 1
    assert settings.SETTINGS_BEFORE["table"] == 1 and "table" in settings.SETTINGS


def test_table3_dry_run_lists_the_two_teachers_and_the_eight_distilled_rows(demo, tmp_path, capsys):
    out = str(tmp_path / "t3")
    demo.main(["--table", "3", "--dry-run", "--output-dir", out])
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "Dry run: stage teacher, large_teacher, students, report listed; nothing ran"
    commands = [shlex.split(line) for line in printed if not line.startswith(("==", "Dry run"))]
    assert len(commands) == 10 and all(os.path.basename(c[c.index("--resume") - 1]) == "train_net.py"
                                       for c in commands)

    def overrides(words):
        i = words.index("--config-file")
        return words[i + 1], dict(zip(words[i + 2::2], words[i + 3::2]))

    (teacher_yaml, teacher), (large_yaml, large) = map(overrides, commands[:2])
    assert (teacher_yaml, large_yaml) == (rows.TEACHER_YAML, rows.LARGE_TEACHER_YAML)
    # the two teachers train alike, each from its own architecture's glyph pretraining
    assert {k: v for k, v in large.items() if k != "OUTPUT_DIR"} == {k: v for k, v in teacher.items()
                                                                      if k != "OUTPUT_DIR"}
    assert (teacher["OUTPUT_DIR"], large["OUTPUT_DIR"]) == (f"{out}/teacher", f"{out}/large_teacher")
    assert (large["SOLVER.MAX_ITER"], large["WILD_DIGITS.PRETRAIN.ENABLED"]) == ("500", "True")
    # the students, the larger teacher's first: each the teacher's schedule from the glyph-pretrained R18h, and
    # only the keys of its row differ
    students = [overrides(c) for c in commands[2:]]
    assert {yaml_ for yaml_, _ in students} == {rows.STUDENT_YAML}
    by_row = {o["OUTPUT_DIR"].split("/")[-1]: o for _, o in students}
    assert list(by_row) == ["large_hint", "large_hint_kdc", "large_all", "large_eq15", "same_hint", "same_hint_kdc",
                            "same_all", "same_eq15"]
    common = {"SOLVER.MAX_ITER": "500", "SOLVER.STEPS": "(400,)", "SOLVER.BASE_LR": "0.04", "MODEL.WEIGHTS": "",
              "WILD_DIGITS.PRETRAIN.ENABLED": "True"}
    distill = ("MODEL.PUDET.TEACHER_CONFIG", "MODEL.PUDET.TEACHER_WEIGHTS", "MODEL.PUDET.KDC_ON",
               "MODEL.PUDET.KDR_ON", "MODEL.PUDET.KDR_MODE", "MODEL.PUDET.KDR_NORMALIZER")
    terms = {"hint": {"MODEL.PUDET.KDC_ON": "False", "MODEL.PUDET.KDR_ON": "False"},
             "hint_kdc": {"MODEL.PUDET.KDR_ON": "False"}, "all": {},
             "eq15": {"MODEL.PUDET.KDR_MODE": "min", "MODEL.PUDET.KDR_NORMALIZER": "foreground"}}
    teachers = {"large": {"MODEL.PUDET.TEACHER_CONFIG": f"{out}/large_teacher/config.yaml",
                          "MODEL.PUDET.TEACHER_WEIGHTS": f"{out}/large_teacher/model_final.pth"},
                "same": {"MODEL.PUDET.TEACHER_WEIGHTS": f"{out}/teacher/model_final.pth"}}
    for key, o in by_row.items():
        setting, term = key.split("_", 1)
        assert {k: o[k] for k in common} == common
        assert {k: v for k, v in o.items() if k in distill} == {**teachers[setting], **terms[term]}
    # every other key is the same in every row
    rest = [{k: v for k, v in o.items() if k not in distill and k != "OUTPUT_DIR"} for o in by_row.values()]
    assert all(r == rest[0] for r in rest)


def test_table3_steps_and_check():
    ap = {"large_teacher": 44.06, "baseline": 41.0, "large_hint": 41.5, "large_hint_kdc": 42.25, "large_all": 42.0,
          "large_eq15": 40.0, "same_hint": 40.5, "same_hint_kdc": 41.75, "same_all": 42.5, "same_eq15": 41.0}
    margins = {c.name: checks.margin_of(c, ap) for c in checks.TABLE3_STEPS}
    assert margins == pytest.approx({
        "(i) larger teacher: + hint > the student alone": 0.5,
        "(i) larger teacher: + L_kdc > + hint": 0.75,
        "(i) larger teacher: + L_kdr > + L_kdc": -0.25,
        "(i) larger teacher: + L_kdr as Eq. 15 reads > + L_kdc": -2.25,
        "(i) larger teacher: the default L_kdr > Eq. 15's": 2.0,
        "(i) larger teacher: all three terms > the student alone": 1.0,
        "(ii) the same size: + hint > the teacher": -0.5,
        "(ii) the same size: + L_kdc > + hint": 1.25,
        "(ii) the same size: + L_kdr > + L_kdc": 0.75,
        "(ii) the same size: + L_kdr as Eq. 15 reads > + L_kdc": -0.75,
        "(ii) the same size: the default L_kdr > Eq. 15's": 1.5,
        "(ii) the same size: all three terms > the teacher": 1.5,
    })
    # the larger teacher must be >= 3 AP above the student alone, judged as printed (44.1 - 41.0)
    (found,) = checks.check_table3(ap)
    assert (found["measured"], found["value"], found["verdict"]) == ("AP 44.1: +3.1", 3.1, "holds")
    assert checks.check_table3({**ap, "large_teacher": 43.9})[0]["verdict"] == "does not hold"
    assert checks.check_table3({"baseline": 41.0})[0]["verdict"] == "not measured"


def test_table3_report(tmp_path, capsys):
    args = settings.parse_args(["--table", "3", "--output-dir", str(tmp_path)])
    p = Paths.of(args.output_dir)
    bbox = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0, "APs": 41.0, "APm": 30.0}
    write(os.path.join(p.teacher, "eval_results.json"), {"bbox": bbox})
    write(os.path.join(p.large_teacher, "eval_results.json"), {"bbox": {**bbox, "AP": 44.0}})
    for row, ap in (("large_hint", 41.0), ("same_hint", 40.5)):
        write(os.path.join(p.students, row, "eval_results.json"), {"bbox": {**bbox, "AP": ap}})
    for folder, seconds in ((p.teacher, 0.2), (p.large_teacher, 0.26)):
        with open(os.path.join(folder, "metrics.json"), "w") as f:
            f.write("\n".join(json.dumps({"iteration": i, "time": seconds}) for i in (19, 39)))
    os.makedirs(p.logs)
    for step, stage, start, end in (("teacher", "teacher", 0, 100), ("large_teacher", "large_teacher", 100, 230),
                                    ("student_large_hint", "students", 230, 430)):
        write(os.path.join(p.logs, f"{step}.time.json"), {"stage": stage, "seconds": end - start, "start": start,
                                                           "end": end})
    demo_stages = stages.STAGES[3]
    demo_stages["report"](args, p, Runner(p.logs, stage="report"))
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert results["ap"] == {"large_teacher": 44.0, "baseline": 40.0, "large_hint": 41.0, "same_hint": 40.5}
    assert results["iterations"] == {"large_teacher": 500, "baseline": 500, "large_hint": 500, "same_hint": 500}
    assert [(m["comparison"], m["margin"]) for m in results["margins"]] == [
        ("(i) larger teacher: + hint > the student alone", 1.0), ("(ii) the same size: + hint > the teacher", 0.5)]
    assert results["time"]["stages"] == {"teacher": 100, "large_teacher": 130, "students": 200}
    assert results["time"]["total in teacher iterations"] == pytest.approx(430 / 0.2)
    assert results["time"]["larger teacher / teacher per iteration"] == pytest.approx(1.3)
    assert [(c["value"], c["verdict"]) for c in results["checks"]] == [(4.0, "holds")]
    text = capsys.readouterr().out
    assert "the larger teacher's seconds per iteration: 0.260, 1.30x the benchmark teacher's" in text
    assert "| (i) R18h student <- R34h teacher: + hint" in text
