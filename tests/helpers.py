"""What several test modules share: the repository root, the session's tiny benchmark and its config
overrides, loading a tool script as a module, a small PU classifier config, and a model killed mid-run."""
import importlib.util
import os

from pudet.config import get_pudet_cfg
from pudet.data.datasets import WildDigitsSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WD_CONFIGS = os.path.join(REPO, "configs", "WildDigits")
TEACHER_YAML = os.path.join(WD_CONFIGS, "faster_rcnn_R18_FPN_teacher.yaml")

# one tiny benchmark for the whole session: every test that needs scenes reads these files
TINY = WildDigitsSpec(seed=3, num_labeled=12, num_pool=20, num_val=6, pos_fraction=0.4)

# few-iteration detector trainings: a few-iteration detector scores every box low, so keep them all (COCO AP
# is then defined, not NaN), at a lr that a 2-image batch from random weights does not blow up (the
# benchmark's 0.04 can)
FEW_ITERATIONS = [
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "()",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "SOLVER.BASE_LR", "0.01",
    "SOLVER.CHECKPOINT_PERIOD", "100", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
]


def tiny_opts(tiny_root):
    """Config overrides that make a tool use the session's tiny benchmark (built under ``tiny_root``), its
    detectors from scratch (tests/test_pretrain.py tests the glyph-pretrained start)."""
    return ["WILD_DIGITS.ROOT", tiny_root, "WILD_DIGITS.PRETRAIN.ENABLED", "False", "WILD_DIGITS.SEED", str(TINY.seed),
            "WILD_DIGITS.NUM_LABELED", str(TINY.num_labeled), "WILD_DIGITS.NUM_POOL", str(TINY.num_pool),
            "WILD_DIGITS.NUM_VAL", str(TINY.num_val), "WILD_DIGITS.POS_FRACTION", str(TINY.pos_fraction)]


def load_script(*path):
    """The script at ``REPO/<path>`` (e.g. ``"tools", "purify_net.py"``) imported as a module."""
    name = os.path.splitext(path[-1])[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def teacher_cfg(tiny_root, *opts):
    """The benchmark teacher's config on the tiny benchmark (plus ``opts``), its datasets registered."""
    from pudet.data import register_datasets

    cfg = get_pudet_cfg(TEACHER_YAML, tiny_opts(tiny_root) + list(opts))
    register_datasets(cfg)
    return cfg


def pu_cfg():
    """The benchmark's PU classifier config on 32x32 inputs, randomly initialised, prior 0.3."""
    cfg = get_pudet_cfg(os.path.join(WD_CONFIGS, "pu_R18_nnpu.yaml"))
    cfg.PU.INPUT_SIZE = 32
    cfg.PU.INIT_FROM_DETECTOR = ""
    cfg.PU.PRIOR = 0.3
    return cfg


class Crash(RuntimeError):
    pass


class CrashAfter:
    """The model, killed (raising :class:`Crash`) after ``n`` forward calls."""

    def __init__(self, model, n):
        self.model, self.n = model, n

    def eval(self):
        self.model.eval()

    def __call__(self, batch):
        if self.n == 0:
            raise Crash()
        self.n -= 1
        return self.model(batch)
