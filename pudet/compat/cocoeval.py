"""The COCOeval that detectron2's ``COCOEvaluator`` runs as its fast implementation on a build without
``detectron2._C``: faster-coco-eval's C++ ``COCOeval_faster`` (the same numbers as pycocotools' Python
``COCOeval``; its speed: ``tools/benchmark_coco_eval.py``)."""
from faster_coco_eval import COCOeval_faster

__all__ = ["FasterCOCOeval"]


class FasterCOCOeval(COCOeval_faster):
    """``COCOeval_faster`` with pycocotools' ``COCOeval(cocoGt, cocoDt, iouType)`` signature, printing its
    progress and summary to stdout as pycocotools does."""

    def __init__(self, cocoGt=None, cocoDt=None, iouType="segm"):
        super().__init__(cocoGt, cocoDt, iouType, print_function=print)
