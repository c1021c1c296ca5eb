"""The stages, each a few steps of pudet's tools (only the tools and ``tools/evaluate_pool_truth.py`` read the
benchmark; the driver never builds a config). Each stage is ``fn(args, paths, runner)``; every step is rerun-safe:
a finished step is skipped, an interrupted training resumes from its last checkpoint."""
import functools
import os
import shutil

from .report import write_report, write_table3_report
from .rows import (
    LARGE_TEACHER_YAML,
    POOL,
    PU_REGION_YAML,
    PU_YAML,
    TEACHER_YAML,
    benchmark_opts,
    pool_size,
    row_folder,
    row_schedule,
    schedule,
    student_args,
    table_rows,
    teacher_args,
)

TAUS = ("0.5", "0.7", "0.9")  # the thresholds purify_net.py label reports by default


def _weights(out):
    return os.path.join(out, "model_final.pth")


def stage_teacher(args, paths, runner):
    runner.step("teacher", os.path.join(paths.teacher, "eval_results.json"), "train_net.py",
                *teacher_args(args, paths.teacher, args.teacher_iters))


def stage_large_teacher(args, paths, runner):
    """Table 3's larger teacher, trained as the benchmark's teacher is (from its own architecture's glyph-pretrained
    bottom-up, built once and cached beside the benchmark), after it: its seconds per iteration against the
    benchmark teacher's, each measured alone, is its cost."""
    runner.step("large_teacher", os.path.join(paths.large_teacher, "eval_results.json"), "train_net.py",
                *teacher_args(args, paths.large_teacher, args.teacher_iters, config=LARGE_TEACHER_YAML))


def stage_pu(args, paths, runner):
    teacher = _weights(paths.teacher)
    runner.in_parallel(lambda r: r.step(
        "pu", os.path.join(paths.pu, "eval_results.json"), "purify_net.py",
        "train", "--resume", "--config-file", PU_YAML, *benchmark_opts(args), *schedule(args.pu_iters, 0.01),
        "PU.INIT_FROM_DETECTOR", teacher, "OUTPUT_DIR", paths.pu), lambda r: r.step(
        "pu_region", os.path.join(paths.pu_region, "eval_results.json"), "purify_net.py",
        "train", "--config-file", PU_REGION_YAML, *benchmark_opts(args), "PU.INIT_FROM_DETECTOR", teacher,
        "OUTPUT_DIR", paths.pu_region))


def _evaluate_selection(args, paths, runner, name, selection, *config):
    """The selection in the folder ``selection`` against the pool's hidden truth, into ``pool_truth/<name>``."""
    out = os.path.join(paths.pool_truth, name)
    runner.step(f"truth_{name}", os.path.join(out, "selection.json"), "evaluate_pool_truth.py", "selection",
                "--selection", selection, "--output-dir", out, *config)


def stage_select(args, paths, runner):
    """Both heads score the pool and select; then each selection is measured against the pool's hidden truth (the
    region head's beside what its features allow)."""
    prior = runner.value_from(os.path.join(paths.pu, "prior.json"), "prior")
    runner.step("select", os.path.join(paths.select, "selected.json"), "purify_net.py",
                "select", "--config-file", PU_YAML, *benchmark_opts(args), "PU.PRIOR", str(prior),
                "OUTPUT_DIR", paths.pu)
    region = ("--config-file", PU_REGION_YAML, *benchmark_opts(args), "PU.INIT_FROM_DETECTOR", _weights(paths.teacher))
    runner.step("select_region", os.path.join(paths.select_region, "selected.json"), "purify_net.py",
                "select", *region, "OUTPUT_DIR", paths.pu_region)
    _evaluate_selection(args, paths, runner, "select", paths.select, "--config-file", PU_YAML, *benchmark_opts(args))
    _evaluate_selection(args, paths, runner, "select_region", paths.select_region, *region)


def _label(args, paths, runner, name, *source):
    out = os.path.join(paths.labels, name)
    runner.step(f"label_{name}", os.path.join(out, "diagnostics.json"), "purify_net.py",
                "label", "--config-file", TEACHER_YAML, "--weights", _weights(paths.teacher),
                "--output-dir", out, *source, *benchmark_opts(args))


def stage_label(args, paths, runner):
    """The teacher pseudo-labels the whole pool (for U^C and its false alarms), U^P (each box with its region PU
    score: box-level purification), a random U^R of K images and U^C. Against the pool's hidden truth
    (``evaluate_pool_truth.py``, the only reader of it): U^C's ranking, the oracle's selection of K truly positive
    scenes, with their TRUE boxes (the oracle row) and as a selection that the teacher labels (the
    oracle-selection row), and the teacher's boxes on the negative scenes."""
    pool_labels = os.path.join(paths.labels, "pool", "pseudo_labels.json")
    k = str(pool_size(args))
    runner.in_parallel(
        lambda r: _label(args, paths, r, "pool", "--dataset", POOL),
        lambda r: _label(args, paths, r, "pu", "--selection", os.path.join(paths.select_region, "selected.json"),
                         "--pu-weights", _weights(paths.pu_region)),
        lambda r: _label(args, paths, r, "random", "--dataset", POOL, "--random", k, "--seed", str(args.seed)))
    runner.step("select_confidence", os.path.join(paths.select_confidence, "selected.json"), "purify_net.py",
                "select", "--by", "teacher-confidence", "--pseudo-labels", pool_labels,
                "--output-dir", paths.select_confidence, "--config-file", PU_YAML, *benchmark_opts(args))
    _evaluate_selection(args, paths, runner, "select_confidence", paths.select_confidence, "--config-file", PU_YAML,
                        *benchmark_opts(args))
    oracle = os.path.join(paths.labels, "oracle")
    runner.step("label_oracle", os.path.join(oracle, "diagnostics.json"), "evaluate_pool_truth.py", "oracle-labels",
                "--dataset", POOL, "--k", k, "--seed", str(args.seed), "--output-dir", oracle,
                "--taus", *TAUS, "--config-file", TEACHER_YAML, *benchmark_opts(args))
    runner.in_parallel(
        lambda r: _label(args, paths, r, "confidence", "--selection",
                         os.path.join(paths.select_confidence, "selected.json")),
        lambda r: _label(args, paths, r, "oracle_selection", "--selection", os.path.join(oracle, "selected.json")))
    runner.step("negative_scenes", os.path.join(paths.pool_truth, "negative_scenes.json"), "evaluate_pool_truth.py",
                "negative-scenes", "--pseudo-labels", pool_labels, "--score-thresh", "0.5",
                "--output-dir", paths.pool_truth, "--config-file", TEACHER_YAML, *benchmark_opts(args))


def training_cost(args, row) -> int:
    """A row's training in plain iterations (a distilled one costs about two: the teacher's forward and the box
    head on its proposals), to start the longest trainings first (Table 3's rows are all as long: its larger
    teacher's first)."""
    return row_schedule(args, row).max_iter * (2 if row.distill else 1) + (1 if row.large_teacher else 0)


def _train_student(args, paths, row, runner):
    out = row_folder(args, paths, row)
    if out in (paths.teacher, paths.large_teacher):  # a teacher's row: trained by its teacher stage
        return
    runner.step(f"student_{row.key}", os.path.join(out, "eval_results.json"), "train_net.py",
                *student_args(args, row, _weights(paths.teacher), paths.labels, out, paths.large_teacher))


def stage_students(args, paths, runner):
    chosen = set(args.rows.split(","))
    # the longest trainings first, so that none runs alone at the end
    trained = sorted((row for row in table_rows(args) if row.key in chosen), key=lambda row: -training_cost(args, row))
    runner.in_parallel(*(functools.partial(_train_student, args, paths, row) for row in trained))


def stage_report(args, paths, runner):
    """The gallery (random vs PU-selected, the paper's Figure 3), the region head's score histogram, and
    results.json / results.md (printed)."""
    galleries = [os.path.join(paths.labels, name, "pseudo_labels.json") for name in ("random", "pu")]
    if all(map(runner.will_exist, galleries)):
        runner.step("gallery", None, "visualize_pseudo_labels.py", *galleries,
                    "--titles", "random (U^R)", "PU-selected (U^P)", "--output",
                    os.path.join(args.output_dir, "gallery.png"), "--seed", str(args.seed))
    if runner.dry_run:
        return
    histogram = os.path.join(paths.pool_truth, "select_region", "score_histogram.png")
    if os.path.isfile(histogram):
        shutil.copyfile(histogram, os.path.join(args.output_dir, "score_histogram.png"))
    print(f"\n{write_report(args, paths)}\n")


def stage_table3_report(args, paths, runner):
    """Table 3's results.json / results.md (printed)."""
    if not runner.dry_run:
        print(f"\n{write_table3_report(args, paths)}\n")


# each table's stages (settings.TABLE_STAGES), in the order they run
STAGES = {
    1: {"teacher": stage_teacher, "pu": stage_pu, "select": stage_select, "label": stage_label,
        "students": stage_students, "report": stage_report},
    3: {"teacher": stage_teacher, "large_teacher": stage_large_teacher, "students": stage_students,
        "report": stage_table3_report},
}
