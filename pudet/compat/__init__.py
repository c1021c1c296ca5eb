"""Makes every supported detectron2 build importable and correct, without touching site-packages.

Supported builds:

* an official detectron2 (git source or a prebuilt wheel) with its compiled extension ``detectron2._C``;
* the registry's ``pb1-detectron2==0.6`` source release (upstream v0.6, Python files identical) built
  without the extension, because the release lacks ``detectron2/layers/csrc``.

For the second, ``detectron2._C`` is replaced in ``sys.modules`` by a stand-in module, so that the
modules importing it at import time (deformable conv, rotated boxes, ROIAlignRotated, the fast COCO
evaluator) import; any use of a compiled op raises :class:`MissingCompiledOpError` naming the op.
Faster R-CNN FPN needs none of them (NMS and ROIAlign come from torchvision). detectron2's
``COCOEvaluator`` then runs faster-coco-eval's C++ COCOeval as its fast implementation, in place of the
compiled ``COCOeval_opt``: see :func:`cocoeval_class`.

On every build, multi-process runs work on a machine without GPUs (gloo processes, DDP without device ids), and
every process leaves its process group when it ends: see :mod:`.distributed`. pudet's trainers build on
:class:`.trainer.DefaultTrainer`, detectron2's made alike on every build (the inner trainer's state saved on v0.6
as main saves it); it patches nothing.

``python -m pudet.compat`` prints the detectron2 variant, the torch/torchvision versions and whether
CUDA is available.
"""
import importlib.metadata
import importlib.util
import logging
import sys
import types
import warnings

__all__ = [
    "MissingCompiledOpError",
    "apply",
    "has_compiled_ops",
    "detectron2_variant",
    "cocoeval_class",
    "environment_rows",
]

logger = logging.getLogger(__name__)

_STANDIN_NAME = "detectron2._C"


class MissingCompiledOpError(RuntimeError):
    """A detectron2 op that needs the compiled extension was called on a build without it."""


class _MissingCompiledOps(types.ModuleType):
    """Stand-in for ``detectron2._C``: importable, and every op lookup fails with a clear message.
    The build-information functions that ``detectron2.utils.collect_env`` calls answer truthfully."""

    @staticmethod
    def get_compiler_version():
        return "none: detectron2._C not built (pudet.compat stand-in)"

    @staticmethod
    def get_cuda_version():
        return "none: detectron2._C not built (pudet.compat stand-in)"

    @staticmethod
    def has_cuda():
        return False

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingCompiledOpError(
            f"detectron2 op '{name}' needs detectron2's compiled extension (detectron2._C), which this "
            f"build lacks ({detectron2_variant()}). Faster R-CNN FPN and pudet do not need it; "
            "for deformable convolution, rotated boxes, ROIAlignRotated or the fast COCO evaluator, "
            "install an official detectron2 build (COCOEvaluator works on this one: see pudet.compat.cocoeval_class)."
        )


def has_compiled_ops() -> bool:
    """Whether the installed detectron2 has its real compiled extension."""
    module = sys.modules.get(_STANDIN_NAME)
    if module is not None:
        return not isinstance(module, _MissingCompiledOps)
    return importlib.util.find_spec(_STANDIN_NAME) is not None


def detectron2_variant() -> str:
    """A one-line description of the installed detectron2 build."""
    import detectron2

    dists = importlib.metadata.packages_distributions().get("detectron2", [])
    origin = dists[0] if dists else f"source tree at {detectron2.__path__[0]}"
    ops = "with compiled ops" if has_compiled_ops() else "without compiled ops (pudet.compat stand-in)"
    return f"detectron2 {detectron2.__version__} from {origin}, {ops}"


def _patch_pillow():
    # detectron2 v0.6 uses Image.LINEAR, removed in Pillow 10 (an alias of BILINEAR before).
    from PIL import Image

    if "LINEAR" not in vars(Image):
        Image.LINEAR = Image.BILINEAR


def cocoeval_class():
    """The COCOeval class of ``COCOEvaluator``'s fast implementation (its default): detectron2's compiled
    ``COCOeval_opt`` where ``detectron2._C`` exists, else faster-coco-eval's (:class:`.cocoeval.FasterCOCOeval`)."""
    if has_compiled_ops():
        from detectron2.evaluation.fast_eval_api import COCOeval_opt

        return COCOeval_opt
    from .cocoeval import FasterCOCOeval

    return FasterCOCOeval


def _quiet_torch_deprecations():
    # detectron2 (v0.6 and main) calls torch.jit.script at import time; torch >= 2.10 warns on every call
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    # DefaultTrainer builds DDP with broadcast_buffers=False (what it means: no buffer sync at all), which recent
    # torch warns about in every process
    warnings.filterwarnings("ignore", message=r"`broadcast_buffers` is deprecated", category=FutureWarning)


def apply() -> None:
    """Install the stand-ins this detectron2 build needs. Idempotent; ``import pudet`` calls it."""
    _quiet_torch_deprecations()
    # before anything imports detectron2.data, whose transforms use Image.LINEAR as a default argument
    _patch_pillow()
    import detectron2

    if not has_compiled_ops() and _STANDIN_NAME not in sys.modules:
        standin = _MissingCompiledOps(_STANDIN_NAME, "pudet.compat stand-in for detectron2._C")
        sys.modules[_STANDIN_NAME] = standin
        detectron2._C = standin
        logger.debug("detectron2._C is missing: installed the pudet.compat stand-in")
    if not has_compiled_ops():
        # COCOEvaluator looks its fast implementation up in its module when it evaluates (v0.6 and later)
        from detectron2.evaluation import coco_evaluation

        coco_evaluation.COCOeval_opt = cocoeval_class()
    from . import distributed

    distributed.install_worker()
    distributed.install_cpu_ddp()


def environment_rows():
    """(name, value) rows describing the detectron2/torch environment."""
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    return [
        ("detectron2", detectron2_variant()),
        ("compiled ops (detectron2._C)", "yes" if has_compiled_ops() else "no"),
        ("COCO evaluation", f"{cocoeval_class().__module__}.{cocoeval_class().__name__}"),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("CUDA available", f"yes ({torch.cuda.device_count()} GPU)" if cuda else "no"),
    ]


def main():
    from tabulate import tabulate

    apply()
    print(tabulate(environment_rows(), tablefmt="plain"))
