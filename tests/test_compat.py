import subprocess
import sys

import numpy as np
import pytest

from pudet import compat

from .helpers import load_script


def test_stand_in_matches_installed_variant():
    import detectron2

    module = sys.modules["detectron2._C"] if "detectron2._C" in sys.modules else None
    if compat.has_compiled_ops():
        assert module is None or not isinstance(module, compat._MissingCompiledOps)
    else:
        assert isinstance(module, compat._MissingCompiledOps)
        assert detectron2._C is module
    assert ("with compiled ops" in compat.detectron2_variant()) == compat.has_compiled_ops()


def test_modules_importing_c_import():
    # these import detectron2._C at import time
    import detectron2.evaluation.fast_eval_api  # noqa: F401
    import detectron2.layers.deform_conv  # noqa: F401
    import detectron2.layers.roi_align_rotated  # noqa: F401
    import detectron2.layers.rotated_boxes  # noqa: F401
    from detectron2.modeling import build_model  # noqa: F401


def test_missing_op_error_names_the_op():
    standin = compat._MissingCompiledOps("x", "test")
    with pytest.raises(compat.MissingCompiledOpError, match="'box_iou_rotated'"):
        standin.box_iou_rotated
    with pytest.raises(AttributeError):
        standin.__file__
    assert standin.has_cuda() is False


@pytest.mark.skipif(compat.has_compiled_ops(), reason="this detectron2 has its compiled ops")
def test_compiled_op_fails_clearly_without_c():
    import torch
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0]])
    with pytest.raises(compat.MissingCompiledOpError, match="box_iou_rotated"):
        pairwise_iou_rotated(boxes, boxes)


def test_coco_evaluator_runs_a_fast_implementation_on_every_build(tiny_benchmark, tmp_path):
    from detectron2.evaluation import COCOEvaluator, coco_evaluation

    from pudet.compat.cocoeval import FasterCOCOeval
    from pudet.data.datasets import register_wild_digits

    spec, folder = tiny_benchmark
    names = register_wild_digits(spec, root=folder.rsplit("/", 1)[0], prefix="compat_wd")
    evaluator = COCOEvaluator(names["val"], output_dir=str(tmp_path))
    assert evaluator._use_fast_impl
    assert coco_evaluation.COCOeval_opt is compat.cocoeval_class()
    assert (compat.cocoeval_class() is FasterCOCOeval) == (not compat.has_compiled_ops())


def _benchmark_tool():
    return load_script("tools", "benchmark_coco_eval.py")


def test_fast_cocoeval_gives_pycocotools_ap_table():
    from pycocotools.cocoeval import COCOeval

    from pudet.compat.cocoeval import FasterCOCOeval

    bench = _benchmark_tool()
    # by hand: one object, found by the second-best detection (IoU 1) after a miss: precision 1/2 at recall 1
    gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
                           "iscrowd": 0}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [60, 60, 30, 30], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.8}]
    for cls in (COCOeval, FasterCOCOeval, compat.cocoeval_class()):
        _, stats, per_class = bench.run_cocoeval(cls, gt, dets)
        assert stats[0] == pytest.approx(0.5) and stats[1] == pytest.approx(0.5)
        assert per_class.tolist() == pytest.approx([50.0])
    # the benchmark's synthetic set, small: the same AP table as pycocotools' Python COCOeval
    gt, dets = bench.synthetic_coco(40, 5, seed=1)
    _, stats, per_class = bench.run_cocoeval(COCOeval, gt, dets)
    assert 0.05 < stats[0] < 0.95 and not np.isnan(per_class).any()
    for cls in (FasterCOCOeval, compat.cocoeval_class()):
        _, other_stats, other_per_class = bench.run_cocoeval(cls, gt, dets)
        assert bench.same_table(other_stats, other_per_class, stats, per_class)
        np.testing.assert_allclose(other_stats, stats, rtol=0, atol=1e-12)


def test_collect_env_runs():
    from detectron2.utils.collect_env import collect_env_info

    assert "detectron2" in collect_env_info()


def test_module_entry_point_prints_environment():
    import re

    import torch
    import torchvision

    out = subprocess.run([sys.executable, "-m", "pudet.compat"], capture_output=True, text=True, check=True)
    assert "RuntimeWarning" not in out.stderr
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.stdout.splitlines())
    assert rows["torch"] == torch.__version__
    assert rows["torchvision"] == torchvision.__version__
    assert rows["CUDA available"].startswith("yes" if torch.cuda.is_available() else "no")
    assert rows["compiled ops (detectron2._C)"] == ("yes" if compat.has_compiled_ops() else "no")
    assert rows["COCO evaluation"].endswith("COCOeval_opt" if compat.has_compiled_ops() else "FasterCOCOeval")
    assert rows["detectron2"] == compat.detectron2_variant()


def test_import_works_on_pillow_without_image_linear():
    # Pillow >= 10 removed Image.LINEAR, which detectron2 v0.6's transforms use as a default argument at import
    # time: `import pudet` must patch it before anything imports detectron2.data (a fresh interpreter, with the
    # attribute removed as Pillow 10 has it)
    code = ("from PIL import Image\n"
            "vars(Image).pop('LINEAR', None)\n"
            "def missing(name):\n    raise AttributeError(name)\n"
            "Image.__getattr__ = missing\n"  # Pillow 9 serves LINEAR through a deprecating module __getattr__
            "import pudet, detectron2.data\n"
            "print(Image.LINEAR == Image.BILINEAR)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_detectron2_tests_check_fails_only_on_a_test_pudet_breaks(tmp_path):
    """tools/check_detectron2_tests.py reads both runs' junit files: a test passing without pudet and failing with
    it breaks the check; one failing either way is listed with its reason; a skip is no failure."""
    tool = load_script("tools", "check_detectron2_tests.py")

    def junit(name, cases):
        body = "".join(f'<testcase classname="tests.t" name="{n}">{inner}</testcase>' for n, inner in cases)
        path = tmp_path / name
        path.write_text(f"<testsuites><testsuite>{body}</testsuite></testsuites>")
        return tool.outcomes(str(path))

    download = '<failure message="URLError: no network">trace</failure>'
    plain = junit("plain.xml", [("a", ""), ("b", download), ("c", ""), ("d", '<skipped message="no GPU"/>')])
    with_pudet = junit("pudet.xml", [("a", ""), ("b", download), ("c", '<error message="KeyError: x"/>'),
                                     ("d", '<skipped message="no GPU"/>')])
    assert plain["tests.t::b"] == ("failed", "URLError: no network") and plain["tests.t::d"][0] == "skipped"
    broken, differ, failing = tool.compare(plain, with_pudet)
    assert (broken, differ, failing) == (["tests.t::c"], [], ["tests.t::b"])
    assert tool.compare(plain, plain)[0] == []
    text = tool.report(plain, with_pudet)
    assert "- without pudet: 2 passed, 1 failed, 1 skipped" in text and "`tests.t::c`: KeyError: x" in text
