"""The experiment's rows (the paper's Table 1, plus the controls at equal compute and the oracles; and, with
``--table 3``, the paper's Table 3: self-distillation's terms one by one, from a larger teacher and from one of the
same size) and the tool options each training is given: the benchmark's sizes, the schedule rule's iterations,
the start of each detector."""
import os
from typing import NamedTuple, Optional, Tuple

from pudet.data.schedule import Schedule, iterations_per_epoch, student_schedule

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIGS = os.path.join(REPO, "configs", "WildDigits")
TEACHER_YAML = os.path.join(CONFIGS, "faster_rcnn_R18_FPN_teacher.yaml")
# Table 3's larger teacher: the benchmark's detector with a half-width ResNet-34 bottom-up
LARGE_TEACHER_YAML = os.path.join(CONFIGS, "faster_rcnn_R34_FPN_teacher.yaml")
STUDENT_YAML = os.path.join(CONFIGS, "student_R18_FPN_sd.yaml")
PU_YAML = os.path.join(CONFIGS, "pu_R18_nnpu.yaml")
PU_REGION_YAML = os.path.join(CONFIGS, "pu_R18_region.yaml")
POOL = "wild_digits_pool"
VAL = "wild_digits_val"


class Row(NamedTuple):
    """A trained row of the table: a student on L, or on L and ``K`` pool images (:func:`pool_size`), trained for
    the iterations of the schedule rule (:func:`row_schedule`)."""

    key: str  # its name in --rows and its folder under students/
    label: str  # as the table prints it
    selection: Optional[str] = None  # pool data: the pseudo-labels of labels/<selection>, else L only
    tau: Optional[float] = None  # the pseudo-boxes' score threshold
    distill: bool = False  # self-distillation from the teacher
    pool_iterations: bool = False  # on L alone for the iterations of a pool row: a control at equal compute
    large_teacher: bool = False  # distilled from Table 3's larger teacher instead of the benchmark's
    overrides: Tuple[str, ...] = ()  # config keys and values of this row (which distillation terms, which L_kdr)


ROWS = (
    Row("baseline", "Labeled only (baseline)"),
    Row("sd", "+ Self-distillation", distill=True),
    Row("random_0.5", "+ Randomly selected (U^R)", "random", 0.5, distill=True),
    Row("random_0.9", "+ Randomly selected (U^R)", "random", 0.9, distill=True),
    Row("pu_0.5", "+ PU selected (U^P)", "pu", 0.5, distill=True),
    Row("pu_0.9", "+ PU selected (U^P)", "pu", 0.9, distill=True),
    Row("confidence_0.5", "+ Teacher-confidence selected (U^C)", "confidence", 0.5, distill=True),
    Row("oracle_selection", "+ oracle selection, teacher's pseudo-labels (K true-positive pool scenes)",
        "oracle_selection", 0.5, distill=True),
    Row("oracle", "+ oracle: K true-positive pool scenes, true boxes (perfect purifier + labels)", "oracle", 0.5,
        distill=True),
    Row("teacher_2x", "Labeled only at the pool rows' iterations (train-longer)", pool_iterations=True),
    Row("sd_2x", "+ Self-distillation at the pool rows' iterations", distill=True, pool_iterations=True),
)
# Table 3's rows: the distillation terms added one by one (no weight differs between rows), and L_kdr as Eq. 15
# reads (the nearer of the teacher's and the ground truth's deltas the target, averaged over the foreground
# proposals) beside the default (bounded by the ground truth, averaged over the sampled proposals)
HINT_ONLY = ("MODEL.PUDET.KDC_ON", "False", "MODEL.PUDET.KDR_ON", "False")
HINT_KDC = ("MODEL.PUDET.KDR_ON", "False")
EQ15 = ("MODEL.PUDET.KDR_MODE", "min", "MODEL.PUDET.KDR_NORMALIZER", "foreground")


def _distilled_rows(prefix, setting, large):
    terms = (("hint", "+ hint", HINT_ONLY), ("hint_kdc", "+ hint + L_kdc", HINT_KDC),
             ("all", "+ hint + L_kdc + L_kdr", ()), ("eq15", "+ hint + L_kdc + L_kdr as Eq. 15 reads", EQ15))
    return tuple(Row(f"{prefix}_{key}", f"{setting}: {label}", distill=True, large_teacher=large, overrides=opts)
                 for key, label, opts in terms)


LARGER = "(i) R18h student <- R34h teacher"
SAME = "(ii) R18h <- R18h (the same size)"
TABLE3_ROWS = (
    Row("large_teacher", f"{LARGER}: the R34h teacher"),
    Row("baseline", f"{LARGER}: the R18h student alone (baseline) = (ii)'s teacher"),
    *_distilled_rows("large", LARGER, True),
    *_distilled_rows("same", SAME, False),
)
TABLES = {1: ROWS, 3: TABLE3_ROWS}


def table_rows(args):
    """The rows of the table the run makes (``--table``)."""
    return TABLES[args.table]

# SOLVER.IMS_PER_BATCH of the benchmark's detectors (configs/WildDigits/Base-WildDigits.yaml), and with --quick
IMS_PER_BATCH = 8
QUICK_IMS_PER_BATCH = 2
# --quick also trains each detector on batches of 2 images (as the tests' few-iteration trainings, at lr 0.01)
QUICK_DETECTOR = ["SOLVER.IMS_PER_BATCH", str(QUICK_IMS_PER_BATCH)]
STEP_AT = 0.8  # every training's one lr step, as a fraction of its iterations


def benchmark_opts(args):
    """The benchmark's data and the training SEED, both ``--seed``."""
    return [
        "WILD_DIGITS.SEED", str(args.seed), "WILD_DIGITS.NUM_LABELED", str(args.num_labeled),
        "WILD_DIGITS.NUM_POOL", str(args.num_pool), "WILD_DIGITS.NUM_VAL", str(args.num_val),
        "WILD_DIGITS.POS_FRACTION", str(args.pos_fraction), "SEED", str(args.seed),
        "WILD_DIGITS.KNOWN_CLASSES", f"[{args.known_classes}]",
        "MODEL.ROI_HEADS.NUM_CLASSES", str(len(args.known_classes.split(","))),
        "MODEL.DEVICE", args.device,
    ]


def schedule(iters, lr, steps=None, warmup=None):
    """A training of ``iters`` iterations at ``lr``: one lr step at ``steps`` (default: 80% of ``iters``), three
    checkpoints, a warmup of ``warmup`` iterations (default: a fifth of ``iters``, at most 100)."""
    steps = (int(iters * STEP_AT),) if steps is None else steps
    warmup = min(100, iters // 5) if warmup is None else warmup
    return ["SOLVER.MAX_ITER", str(iters), "SOLVER.BASE_LR", f"{lr:g}",
            "SOLVER.STEPS", f"({','.join(map(str, steps))},)", "SOLVER.CHECKPOINT_PERIOD", str(max(1, iters // 3)),
            "SOLVER.WARMUP_ITERS", str(warmup)]


def pool_size(args) -> int:
    """K, the pool images of every pool row: U^P (the region head's top K), U^R, U^C and the oracle's scenes
    each keep K = n_l images."""
    return args.num_labeled


def row_schedule(args, row) -> Schedule:
    """``row``'s iterations and lr step by the schedule rule (:mod:`pudet.data.schedule`): the students' 1x on L
    (``--student-iters``, by default the teacher's) is a number of epochs of L; a row on L and K pool images (or
    a control at their iterations) trains as many epochs of 2 * max(n_l, K) images."""
    ims = QUICK_IMS_PER_BATCH if args.quick else IMS_PER_BATCH
    per_epoch = iterations_per_epoch(args.num_labeled, 0, ims)
    pool = pool_size(args) if row.selection is not None or row.pool_iterations else 0
    return student_schedule(num_labeled=args.num_labeled, num_pool=pool, ims_per_batch=ims,
                            epochs=args.student_iters / per_epoch,
                            step_epochs=(int(args.student_iters * STEP_AT) / per_epoch,))


def detector_opts(args):
    return QUICK_DETECTOR if args.quick else []


def pretrain_opts(args):
    """The teachers' start: the glyph-pretrained bottom-up of ``--pretrain-iters`` iterations, or scratch (0)."""
    if args.pretrain_iters <= 0:
        return ["WILD_DIGITS.PRETRAIN.ENABLED", "False"]
    return ["WILD_DIGITS.PRETRAIN.ENABLED", "True", "WILD_DIGITS.PRETRAIN.ITERS", str(args.pretrain_iters)]


def student_start_opts(args, teacher):
    """Where a student's weights start: (``--student-start pretrained``) the teacher's own start, the
    glyph-pretrained bottom-up (``MODEL.WEIGHTS`` empty: train_net.py resolves it), or the teacher's checkpoint."""
    if args.student_start == "pretrained":
        return [*pretrain_opts(args), "MODEL.WEIGHTS", ""]
    return ["MODEL.WEIGHTS", teacher]


def teacher_is_baseline(args) -> bool:
    """Whether the labeled-only row is the teacher itself: the students start where it started and train its
    schedule (the paper's protocol), so that row's training would be the teacher's, step for step."""
    return (args.student_start == "pretrained"
            and (args.student_iters, args.student_lr) == (args.teacher_iters, args.teacher_lr))


def row_folder(args, paths, row) -> str:
    """Where ``row``'s training writes (the teacher's folder for a labeled-only row that is the teacher, the larger
    teacher's for its row)."""
    if row.key == "baseline" and teacher_is_baseline(args):
        return paths.teacher
    if row.key == "large_teacher":
        return paths.large_teacher
    return os.path.join(paths.students, row.key)


def teacher_args(args, out, iters, config=TEACHER_YAML):
    """``train_net.py``'s arguments for a teacher of ``iters`` iterations trained into ``out`` (``config``: the
    benchmark's teacher, or Table 3's larger one)."""
    return ["--resume", "--config-file", config, *benchmark_opts(args), *pretrain_opts(args),
            *schedule(iters, args.teacher_lr), *detector_opts(args), "DATASETS.TEST", f"('{VAL}',)", "OUTPUT_DIR", out]


def student_args(args, row, teacher, labels, out, large_teacher=None):
    """``train_net.py``'s arguments for ``row``'s student (``teacher``: the teacher's checkpoint; ``labels``: the
    folder of the pseudo-label folders; ``large_teacher``: the output folder of Table 3's larger teacher, whose
    ``config.yaml`` is the config it was trained with) trained into ``out``."""
    extra = []
    if row.large_teacher:
        extra += ["MODEL.PUDET.TEACHER_CONFIG", os.path.join(large_teacher, "config.yaml"),
                  "MODEL.PUDET.TEACHER_WEIGHTS", os.path.join(large_teacher, "model_final.pth")]
    elif row.distill:
        extra += ["MODEL.PUDET.TEACHER_WEIGHTS", teacher]
    if row.selection is not None:
        extra += ["DATASETS.TRAIN_PSEUDO", f"('{os.path.join(labels, row.selection, 'pseudo_labels.json')}',)",
                  "DATASETS.PSEUDO_SCORE_THRESH", str(row.tau)]
        if args.quick:  # a toy teacher may leave no box above tau: keep the images, background-only
            extra += ["DATASETS.PSEUDO_KEEP_EMPTY", "True"]
    plan = row_schedule(args, row)
    return ["--resume", "--config-file", STUDENT_YAML if row.distill else TEACHER_YAML, *benchmark_opts(args),
            *schedule(plan.max_iter, args.student_lr, plan.steps, min(100, args.student_iters // 5)),
            *detector_opts(args), *student_start_opts(args, teacher), *extra, *row.overrides,
            "DATASETS.TEST", f"('{VAL}',)", "OUTPUT_DIR", out]
