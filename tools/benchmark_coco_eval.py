#!/usr/bin/env python
"""COCO box evaluation (evaluate + accumulate + summarize) of a synthetic detection set shaped like COCO val
(default 5000 images, 80 classes): pycocotools' Python COCOeval, faster-coco-eval's C++ COCOeval (pudet's
fallback without detectron2._C) and, where built, detectron2's compiled COCOeval_opt; the time, the ratio to
pycocotools and whether the AP table is identical (a measurement, never a timed test).

  tools/benchmark_coco_eval.py [--images N] [--classes K] [--seed S]
"""
import argparse
import contextlib
import copy
import io
import time

import pudet

# isort: split
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

from pudet.compat.cocoeval import FasterCOCOeval
from pudet.utils import machine_summary


def synthetic_coco(num_images, num_classes, seed=0, size=640):
    """A COCO ground truth (dict) and detections (list) shaped like COCO val: 1-14 objects per image, of 8 to
    400 px (all three COCO area ranges), 1% crowd; each object detected with probability 0.8 (its box
    jittered by 10% of its size, of another class one time in ten), plus 0-9 false positives per image."""
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": size, "height": size, "file_name": f"{image_id:06d}.jpg"})
        for _ in range(rng.integers(1, 15)):
            w, h = np.exp(rng.uniform(np.log(8), np.log(400), 2))
            x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
            c = int(rng.integers(1, num_classes + 1))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": c,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.01)})
            if rng.random() < 0.8:
                j = rng.normal(0, 0.1, 4) * [w, h, w, h]
                detections.append({"image_id": image_id, "score": float(rng.random()),
                                   "category_id": c if rng.random() < 0.9 else int(rng.integers(1, num_classes + 1)),
                                   "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]})
        for _ in range(rng.integers(0, 10)):
            w, h = np.exp(rng.uniform(np.log(8), np.log(400), 2))
            detections.append({"image_id": image_id, "category_id": int(rng.integers(1, num_classes + 1)),
                               "bbox": [rng.uniform(0, size - w), rng.uniform(0, size - h), w, h],
                               "score": float(0.7 * rng.random())})
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, num_classes + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def run_cocoeval(cocoeval_cls, gt, detections):
    """Evaluates ``detections`` against ``gt`` (box AP) as detectron2's ``COCOEvaluator`` does with
    ``cocoeval_cls``. Returns (seconds of evaluate + accumulate + summarize, the 12 summary numbers, the AP
    of each class in percent, NaN where a class has no ground truth)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        start = time.perf_counter()
        coco_eval = cocoeval_cls(coco_gt, coco_dt, "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        seconds = time.perf_counter() - start
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # (IoUs, recalls, classes) at all areas, 100 dets
    per_class = [100 * p[p > -1].mean() if (p > -1).any() else float("nan") for p in np.moveaxis(precision, 2, 0)]
    return seconds, np.array(coco_eval.stats), np.array(per_class)


def main(args):
    gt, detections = synthetic_coco(args.images, args.classes, seed=args.seed)
    impls = [("pycocotools COCOeval (Python)", COCOeval), ("faster-coco-eval COCOeval_faster (C++)", FasterCOCOeval)]
    if pudet.compat.has_compiled_ops():
        from detectron2.evaluation.fast_eval_api import COCOeval_opt

        impls.append(("detectron2 COCOeval_opt (compiled)", COCOeval_opt))
    results = [(name, *run_cocoeval(cls, gt, detections)) for name, cls in impls]
    _, base_s, base_stats, base_ap = results[0]
    print(f"COCO box evaluation of {args.images} images, {args.classes} classes, {len(gt['annotations'])} objects, "
          f"{len(detections)} detections (seed {args.seed}); {machine_summary()}")
    rows = [[name, f"{s:.2f}", f"{base_s / s:.2f}", f"{100 * stats[0]:.3f}", f"{100 * stats[1]:.3f}",
             f"{100 * np.abs(stats - base_stats).max():.1e}", f"{np.nanmax(np.abs(ap - base_ap)):.1e}",
             "yes" if same_table(stats, ap, base_stats, base_ap) else "NO"]
            for name, s, stats, ap in results]
    print(tabulate(rows, headers=["implementation", "s", "speed-up", "AP", "AP50", "max diff of the 12 summary APs",
                                  "max diff of per-class AP", "same AP table"], tablefmt="github"))
    print("(differences in AP points against pycocotools; "
          "'same AP table': equal as detectron2 prints them, 3 decimals)")


def same_table(stats, per_class, other_stats, other_per_class):
    """Whether two evaluations give the AP table detectron2 prints (summary and per-class AP, 3 decimals)."""
    def table(st, ap):
        return [f"{100 * x:.3f}" for x in st] + [f"{x:.3f}" for x in ap]

    return table(stats, per_class) == table(other_stats, other_per_class)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000, help="images of the synthetic set (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=80, help="its classes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="its seed (default: %(default)s)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
