import json
import os
import threading
import time

import pytest

from pudet.data.datasets import load_pseudo_labeled
from pudet.evaluation.pool_truth import load_pool_truth, negative_scene_boxes, oracle_pseudo_labels

from .helpers import TINY, load_script, teacher_cfg


@pytest.fixture(scope="module")
def demo():
    return load_script("projects", "WildDigits", "run_demo.py")


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def test_claims_are_checked_on_the_rows_ap(demo):
    ap = {"baseline": 40.0, "sd": 40.5, "random_0.5": 40.2, "pu_0.5": 40.1, "random_0.9": 39.0, "pu_0.9": 40.0}
    claims = {c["claim"]: (c["verdict"], c["evidence"]) for c in demo.check_claims(ap)}
    assert claims == {
        "self-distillation beats the baseline": ("holds", "AP 40.5 vs 40.0: margin +0.5, noise not measured"),
        "PU-selected beats randomly selected at tau 0.5": ("does not hold",
                                                           "AP 40.1 vs 40.2: margin -0.1, noise not measured"),
        "PU-selected at tau 0.5 beats the baseline": ("holds", "AP 40.1 vs 40.0: margin +0.1, noise not measured"),
        "PU-selected beats randomly selected at tau 0.9": ("holds", "AP 40.0 vs 39.0: margin +1.0, noise not measured"),
        # a tie is not a win
        "PU-selected at tau 0.9 beats the baseline": ("does not hold",
                                                      "AP 40.0 vs 40.0: margin +0.0, noise not measured"),
    }
    # beyond the noise: a margin must exceed the labeled-only spread (equal to it is not enough)
    claims = {c["claim"]: c for c in demo.check_claims(ap, spread=0.5)}
    assert {k: c["verdict"] for k, c in claims.items()} == {
        "self-distillation beats the baseline": "does not hold",
        "PU-selected beats randomly selected at tau 0.5": "does not hold",
        "PU-selected at tau 0.5 beats the baseline": "does not hold",
        "PU-selected beats randomly selected at tau 0.9": "holds",
        "PU-selected at tau 0.9 beats the baseline": "does not hold",
    }
    tau_09 = claims["PU-selected beats randomly selected at tau 0.9"]
    assert (tau_09["margin"], tau_09["spread"]) == (1.0, 0.5)
    assert tau_09["evidence"] == "AP 40.0 vs 39.0: margin +1.0, noise spread 0.5"
    # judged on the APs as printed: 40.04 vs 40.0 is a tie
    assert demo.check_claims({"baseline": 40.0, "sd": 40.04})[0]["verdict"] == "does not hold"
    # rows without results are left out
    claims = demo.check_claims({"baseline": 1.0, "sd": 2.0})
    assert [c["claim"] for c in claims] == ["self-distillation beats the baseline"]


def test_noise_is_the_spread_of_three_training_seeds(demo):
    # the spread of the APs as printed (41.75 is printed 41.8)
    assert demo.noise({"baseline": 41.0, "baseline_seed+1": 41.75, "baseline_seed+2": 40.5, "sd": 50.0}) == (
        [41.0, 41.75, 40.5], 1.3)
    assert demo.noise({"baseline": 41.0, "baseline_seed+2": 40.5}) == ([41.0, None, 40.5], None)


def test_targets(demo):
    ap = {"baseline": 40.0, "sd": 41.0, "random_0.5": 40.0, "pu_0.5": 41.2, "random_0.9": 40.5, "pu_0.9": 41.5,
          "oracle": 45.0}
    negative = {"boxes/img": 0.25}
    targets = demo.check_targets(region_oracle_auc=95.0, negative=negative, teacher_ap=40.0, teacher_2x_ap=41.0,
                                 ap=ap, claims=demo.check_claims(ap, 0.5), spread=0.5)
    assert [(t["measured"], t["verdict"]) for t in targets] == [
        ("AUC 95.0", "met"),  # >= 95
        ("0.25 boxes/img", "not met"),  # < 0.3
        ("AP 41.0 vs 40.0: +1.0", "not met"),  # must change by less than 1.0
        ("AP 45.0 vs 40.0: +5.0", "met"),  # >= 5
        ("5 of 5 hold, noise spread 0.5", "met"),  # margins 1.0, 1.2, 1.2, 1.0, 1.5 > 0.5
    ]
    # a larger noise: the margins of 1.0 no longer count
    target_5 = demo.check_targets(ap=ap, claims=demo.check_claims(ap, 1.1), spread=1.1)[4]
    assert (target_5["measured"], target_5["verdict"]) == ("3 of 5 hold, noise spread 1.1", "not met")
    # nothing measured, or the noise or a claim missing: not measured, never met
    assert {t["verdict"] for t in demo.check_targets()} == {"not measured"}
    del ap["pu_0.9"]
    assert demo.check_targets(ap=ap, claims=demo.check_claims(ap, 0.5), spread=0.5)[4]["verdict"] == "not measured"


def test_seconds_per_iteration_and_stage_times(demo, tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps(e) for e in (
        {"iteration": 19, "time": 0.3, "total_loss": 2.0}, {"iteration": 39, "time": 0.5},
        {"iteration": 59, "time": 0.2}, {"iteration": 59, "bbox/AP": 40.0})) + "\n")
    assert demo.seconds_per_iteration(str(metrics)) == 0.3
    assert demo.seconds_per_iteration(str(tmp_path / "none.json")) is None
    logs = str(tmp_path / "logs")
    os.makedirs(logs)
    # steps side by side count once: students 1000-1050 and 1030-1060, then 1100-1130 alone = 60 + 30 s
    for stage, log, start, end in (("students", "student_sd", 1000.0, 1050.0), ("teacher", "teacher", 0.0, 120.0),
                                   ("students", "student_baseline", 1030.0, 1060.0),
                                   ("label", "label_pool", 500.0, 520.0),
                                   ("students", "student_oracle", 1100.0, 1130.0)):
        demo.record_time({"logs": logs, "stage": stage}, log, start, end)
    assert demo.stage_times(logs) == {"teacher": 120.0, "label": 20.0, "students": 90.0}
    assert list(demo.stage_times(logs)) == ["teacher", "label", "students"]  # in run order
    with open(os.path.join(logs, "pu.time.json"), "w") as f:  # kept by an older run: seconds only
        json.dump({"stage": "pu", "seconds": 40.0}, f)
    assert demo.stage_times(logs)["pu"] == 40.0
    os.remove(os.path.join(logs, "pu.time.json"))
    for log in ("teacher", "student_sd", "pu"):
        (tmp_path / "logs" / f"{log}.log").write_text("")
    assert demo.untimed_steps(logs) == ["pu"]  # a step with a log and no time: finished by an older run


def test_independent_steps_run_side_by_side_with_a_share_of_the_threads(demo, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    seen, lock, both = [], threading.Lock(), threading.Barrier(2, timeout=10)

    def call(name):
        def fn(q):
            with lock:
                seen.append((name, q.get("threads")))
            both.wait()  # returns only when the two calls run at the same time
        return fn

    demo.in_parallel(demo.parse_args(["--jobs", "2"]), {"stage": "students"}, call("a"), call("b"))
    assert sorted(seen) == [("a", 2), ("b", 2)]

    gate = threading.Barrier(2, timeout=10)

    def fails(q):
        gate.wait()
        raise SystemExit("failed (1): see row.log")

    def running(q):
        gate.wait()
        time.sleep(0.2)
        seen.append("done")

    seen.clear()
    with pytest.raises(SystemExit, match="row.log"):  # the call running beside the failure still finishes
        demo.in_parallel(demo.parse_args(["--jobs", "2"]), {}, fails, running)
    assert seen == ["done"]
    def fails_at_once(q):
        raise SystemExit("failed (1): see row.log")

    started = []  # a failure drops the calls not yet started
    with pytest.raises(SystemExit, match="row.log"):
        demo.in_parallel(demo.parse_args(["--jobs", "1"]), {}, fails_at_once, lambda q: started.append("late"))
    with pytest.raises(SystemExit):
        demo.parse_args(["--jobs", "0"])
    assert started == []
    order = []
    demo.in_parallel(demo.parse_args(["--jobs", "1"]), {}, lambda q: order.append(("x", q.get("threads"))),
                     lambda q: order.append(("y", q.get("threads"))))
    assert order == [("x", None), ("y", None)]  # one after another, torch's own threads


def test_the_last_line_names_only_what_the_run_made(demo, tmp_path):
    args = demo.parse_args(["--output-dir", str(tmp_path)])
    line = demo.done_line(args, ["teacher"], 90.0)
    assert line.startswith("Done in 1.5 min: stage teacher;") and "results.md" not in line
    (tmp_path / "gallery.png").write_bytes(b"png")
    line = demo.done_line(args, list(demo.STAGES), 600.0)
    assert "results.md and results.json; gallery.png beside them" in line and "score_histogram" not in line


def test_finished_training_keeps_only_its_final_checkpoint(demo, tmp_path):
    out = tmp_path / "teacher"
    out.mkdir()
    for name in ("model_0000165.pth", "model_0000331.pth", "last_checkpoint", "metrics.json"):
        (out / name).write_text("x")
    demo.prune_checkpoints(str(out))  # no model_final.pth: an unfinished training keeps what it resumes from
    assert len(list(out.iterdir())) == 4
    (out / "model_final.pth").write_text("x")
    demo.prune_checkpoints(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["last_checkpoint", "metrics.json", "model_final.pth"]


def test_options(demo, capsys, tmp_path):
    assert demo.parse_args([]).rows.split(",") == [r[0] for r in demo.ROWS] + ["teacher_2x"]
    assert demo.parse_args(["--rows", "sd,pu_0.9"]).rows == "sd,pu_0.9"
    with pytest.raises(SystemExit):
        demo.parse_args(["--rows", "sd,pu_0.7"])
    assert "unknown rows ['pu_0.7']" in capsys.readouterr().err
    full, quick = demo.parse_args([]), demo.parse_args(["--quick", "--num-pool", "100"])
    assert (full.output_dir, full.num_labeled, full.num_pool, full.teacher_iters, full.teacher_lr) == (
        "output/demo", 200, 2000, 500, 0.04)
    assert (quick.output_dir, quick.num_labeled, quick.num_pool, quick.teacher_lr) == (
        "output/demo_quick", demo.QUICK["num_labeled"], 100, demo.QUICK["teacher_lr"])
    assert (full.student_iters, full.student_lr, quick.student_lr) == (200, 0.02, demo.QUICK["student_lr"])
    assert demo.schedule(200, 0.02)[:4] == ["SOLVER.MAX_ITER", "200", "SOLVER.BASE_LR", "0.02"]
    # the class split reaches every tool: the benchmark's known digits and the detector's number of classes
    opts = demo.benchmark_opts(demo.parse_args(["--known-classes", "5,6,7"]))
    assert opts[opts.index("WILD_DIGITS.KNOWN_CLASSES") + 1] == "[5,6,7]"
    assert opts[opts.index("MODEL.ROI_HEADS.NUM_CLASSES") + 1] == "3"
    # an output dir keeps its settings: a rerun with others would reuse steps of another run
    out = str(tmp_path / "demo")
    demo.check_settings(demo.parse_args(["--output-dir", out]))
    demo.check_settings(demo.parse_args(["--output-dir", out, "--stage", "report"]))
    with pytest.raises(SystemExit, match="num_labeled 200 there, 40 now"):
        demo.check_settings(demo.parse_args(["--output-dir", out, "--quick"]))
    # the teachers start from the glyph pretraining, or from scratch with --pretrain-iters 0
    assert demo.pretrain_opts(full) == ["WILD_DIGITS.PRETRAIN.ENABLED", "True", "WILD_DIGITS.PRETRAIN.ITERS", "2400"]
    assert demo.pretrain_opts(demo.parse_args(["--pretrain-iters", "0"])) == ["WILD_DIGITS.PRETRAIN.ENABLED", "False"]
    # a run made before --pretrain-iters existed had scratch teachers: reusing it for pretrained ones is refused
    old = tmp_path / "old"
    old.mkdir()
    settings = {k: getattr(full, k) for k in demo.SETTINGS if k != "pretrain_iters"}
    (old / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(SystemExit, match="pretrain_iters 0 there, 2400 now"):
        demo.check_settings(demo.parse_args(["--output-dir", str(old)]))
    demo.check_settings(demo.parse_args(["--output-dir", str(old), "--pretrain-iters", "0"]))
    # students start from the teacher's weights, or from the teacher's own start (the pretrained bottom-up);
    # an output dir made before --student-start existed holds teacher-started students
    assert demo.student_start_opts(full, "t.pth") == ["MODEL.WEIGHTS", "t.pth"]
    assert demo.student_start_opts(demo.parse_args(["--student-start", "pretrained"]), "t.pth") == [
        "WILD_DIGITS.PRETRAIN.ENABLED", "True", "WILD_DIGITS.PRETRAIN.ITERS", "2400", "MODEL.WEIGHTS", "",
        "SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "5.0"]
    settings.pop("student_start")
    (old / "settings.json").write_text(json.dumps({**settings, "pretrain_iters": 2400}))
    demo.check_settings(demo.parse_args(["--output-dir", str(old)]))
    with pytest.raises(SystemExit, match="student_start teacher there, pretrained now"):
        demo.check_settings(demo.parse_args(["--output-dir", str(old), "--student-start", "pretrained"]))


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


@pytest.mark.slow
def test_report_reads_the_stages_summaries(demo, tiny_benchmark, tmp_path, capsys):
    """The report tabulates what the stages wrote (files made here by hand), and nothing else."""
    _, folder = tiny_benchmark
    args = demo.parse_args(["--output-dir", str(tmp_path), "--rows", "baseline,pu_0.5"])
    p = demo.paths(args)

    bbox = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0, "APs": 41.0, "APm": 30.0}
    write(os.path.join(p["teacher"], "eval_results.json"), {"bbox": bbox})
    write(os.path.join(p["teacher_2x"], "eval_results.json"), {"bbox": {**bbox, "AP": 40.6}})
    for row, ap in (("baseline", 41.0), ("baseline_seed+1", 41.5), ("baseline_seed+2", 40.75), ("sd", 41.5),
                    ("pu_0.5", 42.5), ("oracle", 47.0)):
        write(os.path.join(p["students"], row, "eval_results.json"), {"bbox": {**bbox, "AP": ap}})
    taus = [{"tau": t, "images": 400, "boxes": b, "precision": pr, "recall": r}
            for t, b, pr, r in ((0.5, 900, 0.3, 0.6), (0.7, 600, 0.4, 0.5), (0.9, 300, 0.6, 0.4))]
    purified = [{**r, "boxes": r["boxes"] // 2, "precision": r["precision"] + 0.2, "recall": r["recall"] - 0.1}
                for r in taus]
    write(os.path.join(p["labels"], "pu", "diagnostics.json"),
          {"taus": taus, "box purified": {"pu_score_thresh": 0.0, "taus": purified}})
    write(os.path.join(p["labels"], "oracle", "diagnostics.json"),
          {"taus": [{"tau": t, "images": 200, "boxes": 520, "precision": 1.0, "recall": 1.0} for t in (0.5, 0.9)]})
    write(os.path.join(p["labels"], "pool", "negative_scenes.json"),
          {"score_thresh": 0.5, "negative images": 1500, "boxes/img": 0.42, "fired": 0.31,
           "per class": {"digit 0": 0.2, "digit 1": 0.22}})
    ranking = {"AUC": 0.8, "precision@K": 0.65, "recall@K": 0.52}
    write(os.path.join(p["select"], "selected.json"), {"summary": {**ranking, "AUC": 0.56}})
    comparison = [{"selection": name, "AUC": auc, "precision@K": 60.0, "recall@K": 48.0}
                  for name, auc in (("region head, nnpu (this selection)", 80.0), ("oracle", 84.0))]
    comparison.append({"selection": "random (expected)", "AUC": 50.0, "precision@K": 25.0, "recall@K": 20.0})
    write(os.path.join(p["select_region"], "selected.json"),
          {"summary": {**ranking, "pool positive fraction": 0.25, "comparison": comparison}})
    write(os.path.join(p["select_confidence"], "selected.json"), {"summary": {**ranking, "AUC": 0.7}})
    write(os.path.join(p["pu_region"], "prior.json"), {"prior": 0.248, "estimator": "bbe", "elkan-noto": 0.52})
    write(os.path.join(p["pu"], "prior.json"), {"prior": 0.6, "estimator": "bbe"})
    with open(os.path.join(p["teacher"], "metrics.json"), "w") as f:
        f.write("".join(json.dumps({"iteration": i, "time": t}) + "\n" for i, t in ((19, 0.3), (39, 0.5), (59, 0.2))))
    with open(os.path.join(folder, "pool_truth.json")) as f:
        pool = json.load(f)
    coco = {"images": pool["images"][:2], "annotations": [], "categories": pool["categories"]}
    for name in ("random", "pu"):
        coco["images"] = [{**im, "file_name": os.path.join(folder, "pool", os.path.basename(im["file_name"]))}
                          for im in pool["images"][:2]]
        write(os.path.join(p["labels"], name, "pseudo_labels.json"), coco)
    with open(os.path.join(p["select_region"], "score_histogram.png"), "wb") as f:
        f.write(b"png")
    os.makedirs(p["logs"], exist_ok=True)
    for stage, log, start, end in (("teacher", "teacher", 0.0, 120.0), ("pu", "pu", 200.0, 260.0),
                                   ("label", "label_pool", 300.0, 320.0)):
        demo.record_time({**p, "stage": stage}, log, start, end)

    demo.stage_report(args, {**p, "stage": "report"})
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert [r[0] for r in results["rows"]] == [
        "Teacher D_t (L)", "Teacher D_t, 2x iterations (L)", "Labeled only (baseline)",
        "Labeled only, training SEED 1 (noise)", "Labeled only, training SEED 2 (noise)", "+ Self-distillation",
        "+ PU selected (U^P)", "+ oracle: K true-positive pool scenes, true boxes (perfect purifier + labels)"]
    assert results["rows"][-1][1:5] == [200, 0.5, 520, 47.0]
    assert [r[0] for r in results["selection_rows"]] == [
        "image head N_pu, nnPU (the paper's)", "region head, nnpu (this selection)", "oracle",
        "teacher's best box score (U^C)", "random (expected)"]
    assert [r[1] for r in results["selection_rows"]] == pytest.approx([56.0, 80.0, 84.0, 70.0, 50.0])
    assert results["box_purification"] == [
        ["as labelled", 0.5, 900, 0.3, 0.6], ["as labelled", 0.9, 300, 0.6, 0.4],
        ["box-purified (region PU score >= 0)", 0.5, 450, 0.5, 0.5],
        ["box-purified (region PU score >= 0)", 0.9, 150, 0.8, pytest.approx(0.3)]]
    assert results["noise"] == {"labeled-only AP": [41.0, 41.5, 40.75], "spread": 0.7}  # 40.75 is printed 40.8
    # margins 0.5 (not beyond the spread 0.7) and 1.5
    assert [(c["claim"], c["verdict"], c["margin"]) for c in results["claims"]] == [
        ("self-distillation beats the baseline", "does not hold", 0.5),
        ("PU-selected at tau 0.5 beats the baseline", "holds", 1.5)]
    assert [(t["measured"], t["verdict"]) for t in results["targets"]] == [
        ("AUC 84.0", "not met"), ("0.42 boxes/img", "met"), ("AP 40.6 vs 40.0: +0.6", "met"),
        ("AP 47.0 vs 41.0: +6.0", "met"), ("not measured", "not measured")]  # 2 of the 5 claims' rows trained
    assert results["negative_scenes"]["per class"] == {"digit 0": 0.2, "digit 1": 0.22}
    times = results["time"]
    assert times["teacher seconds/iteration"] == 0.3
    assert list(times["stages"]) == ["teacher", "pu", "label", "report"]  # the report: its gallery
    assert times["total"] == pytest.approx(200.0 + times["stages"]["report"])
    assert times["untimed steps"] == []
    out = capsys.readouterr().out
    assert "estimated 0.248 (bbe on the region head's out-of-fold scores; Elkan-Noto there 0.520)" in out
    assert "training SEED 0 / 1 / 2 (same data): 41.0 / 41.5 / 40.8; spread (max - min) 0.7" in out
    assert ("the teacher on the pool's 1500 negative scenes: 0.42 boxes/img above 0.5 (digit 0 0.20, digit 1 0.22); "
            "31.0% of them hold at least one") in out
    assert "reaches val AP 40.6 against 40.0 (+0.6)" in out
    assert "seconds per iteration (median of its metrics.json; the machine's yardstick): 0.300" in out
    assert "| PU-selected at tau 0.5 beats the baseline | AP 42.5 vs 41.0: margin +1.5, noise spread 0.7 | holds" in out


def test_report_of_a_run_without_the_pool_stages(demo, tmp_path):
    """A run of the teacher and some rows only (e.g. a class-split check of self-distillation): the report
    tabulates them, judges the claims it can, and says what was not measured instead of failing."""
    args = demo.parse_args(["--output-dir", str(tmp_path), "--rows", "baseline,sd"])
    p = demo.paths(args)
    bbox = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0, "APs": 41.0, "APm": 30.0}
    write(os.path.join(p["teacher"], "eval_results.json"), {"bbox": bbox})
    for row, ap in (("baseline", 41.0), ("baseline_seed+1", 41.2), ("baseline_seed+2", 40.9), ("sd", 42.5)):
        write(os.path.join(p["students"], row, "eval_results.json"), {"bbox": {**bbox, "AP": ap}})
    os.makedirs(p["logs"], exist_ok=True)

    demo.stage_report(args, {**p, "stage": "report"})
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert [r[-5] for r in results["rows"]] == [40.0, 41.0, 41.2, 40.9, 42.5]
    assert [(c["claim"], c["verdict"], c["margin"]) for c in results["claims"]] == [
        ("self-distillation beats the baseline", "holds", 1.5)]
    assert results["pu_selection"] is None and results["negative_scenes"] is None
    with open(os.path.join(str(tmp_path), "results.md")) as f:
        text = f.read()
    assert "against the pool's truth: not measured" in text and "pu/select/selected.json is missing" in text
    assert not os.path.exists(os.path.join(str(tmp_path), "gallery.png"))
