#!/usr/bin/env python
"""Per-image costs of the COCO + ImageNet recipe's passes at the paper's sizes (R50 models, random weights: the
cost does not depend on them): the cost model of this project's README (a measurement, never a timed test).

  projects/COCO-ImageNet/measure_costs.py [--steps S] [--batch-size B]
      CPU seconds per image: decoding an ImageNet-sized JPEG for select and for label, PU scoring and a PU
      training step at 224, the R50-FPN teacher's inference at 800x1067
  projects/COCO-ImageNet/measure_costs.py --device cuda [--batch-sizes B ...] [--det-batch-sizes B ...]
      the same passes' images/s on the GPU in fp32 and AMP at several batch sizes
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
import cv2
import numpy as np
import torch
from detectron2.modeling import build_model
from tabulate import tabulate

from pudet.config import get_pudet_cfg
from pudet.data.mappers import InferenceMapper, PUDatasetMapper
from pudet.utils import machine_summary

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")


def _cpu_seconds_per_image(step, images_per_step, steps):
    """Median CPU time (all threads of this process) and wall time of ``step()`` per image, after a warm-up."""
    step()
    cpu, wall = [], []
    for _ in range(steps):
        c, w = time.process_time(), time.perf_counter()
        step()
        cpu.append((time.process_time() - c) / images_per_step)
        wall.append((time.perf_counter() - w) / images_per_step)
    return statistics.median(cpu), statistics.median(wall)


def _gpu_images_per_second(step, images_per_step, steps):
    """Images/s of ``step()`` on the GPU (synchronised wall time, median of ``steps`` after two warm-ups)."""
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return images_per_step / statistics.median(times)


def _paper_cfgs(device):
    """The COCO recipe's R50 PU classifier and R50-FPN teacher configs on ``device``, without weights."""
    return [get_pudet_cfg(os.path.join(CONFIGS, *path), ["MODEL.DEVICE", device, weights_key, ""])
            for path, weights_key in ((("PU", "pu_R50_coco_imagenet.yaml"), "PU.INIT_FROM_DETECTOR"),
                                      (("COCO", "faster_rcnn_R_50_FPN_1x_teacher.yaml"), "MODEL.WEIGHTS"))]


def gpu_costs(args):
    """The GPU side of the cost model: images/s of PU scoring, a PU training step and the R50-FPN teacher's
    inference at the paper's sizes, in fp32 and AMP (fp16 autocast, as detectron2's AMP trainer), at several
    batch sizes; the images are already on the GPU (decoding is the CPU rows of ``costs``)."""
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    pu_cfg, det_cfg = _paper_cfgs("cuda")
    pu, det = build_model(pu_cfg), build_model(det_cfg).eval()

    def images(n, h, w):
        return [{"image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8, device="cuda"), "height": h, "width": w}
                for _ in range(n)]

    rows = []
    for amp in (False, True):
        precision = "AMP fp16" if amp else "fp32"

        def run(fn, amp=amp):
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                return fn()

        for b in args.batch_sizes:
            batch = images(b, 224, 224)
            pu.eval()
            with torch.no_grad():
                rows.append(["PU scoring, R50 at 224 (select)", precision, b,
                             _gpu_images_per_second(lambda: run(lambda: pu.scores(batch)), b, args.steps)])
            pu.train()

            def pu_step():
                out = run(lambda: pu.backbone(pu.preprocess_image(batch).tensor)["res5"].float().mean())
                out.backward()

            rows.append(["PU training step, R50 at 224, forward + backward", precision, b,
                         _gpu_images_per_second(pu_step, b, args.steps)])
        for b in args.det_batch_sizes:
            batch = images(b, 800, 1067)
            with torch.no_grad():
                rows.append(["pseudo-labelling, R50-FPN Faster R-CNN at 800x1067 (label)", precision, b,
                             _gpu_images_per_second(lambda: run(lambda: det(batch)), b, args.steps)])
    print(f"gpu costs: images/s, synchronised wall time, median of {args.steps} steps; "
          f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(tabulate([[name, prec, b, f"{ips:.0f}"] for name, prec, b, ips in rows],
                   headers=["", "precision", "batch", "images/s"], tablefmt="github"))


def cpu_costs(args):
    """The CPU side of the cost model: CPU seconds per image of each pass."""
    torch.manual_seed(0)
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench_costs_")
    try:
        # an ImageNet-like JPEG: 500x375 (the commonest ImageNet size), quality 90, with texture
        rng = np.random.default_rng(0)
        base = cv2.resize(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (500, 375), interpolation=cv2.INTER_CUBIC)
        noisy = np.clip(base.astype(np.int16) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        path = os.path.join(tmp, "n0000000_0.JPEG")
        cv2.imwrite(path, noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])
        pu_cfg, det_cfg = _paper_cfgs("cpu")
        pu_mapper, det_mapper = PUDatasetMapper(pu_cfg, False), InferenceMapper(det_cfg)
        d = {"file_name": path, "image_id": 0}
        rows.append(["decode + resize a 500x375 JPEG to 224x224 (select's mapper)",
                     *_cpu_seconds_per_image(lambda: pu_mapper(d), 1, args.steps * 10)])
        rows.append(["decode + resize a 500x375 JPEG to 800x1067 (label's mapper)",
                     *_cpu_seconds_per_image(lambda: det_mapper(d), 1, args.steps * 10)])

        pu = build_model(pu_cfg).eval()
        batch = [{"image": torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8)} for _ in range(args.batch_size)]
        with torch.no_grad():
            rows.append([f"PU scoring, R50 at 224, batch {args.batch_size} (select)",
                         *_cpu_seconds_per_image(lambda: pu.scores(batch), args.batch_size, args.steps)])
        pu.train()

        def pu_step():
            images = pu.preprocess_image(batch).tensor
            pu.backbone(images)["res5"].mean().backward()

        rows.append([f"PU training step, R50 at 224, forward + backward, batch {args.batch_size}",
                     *_cpu_seconds_per_image(pu_step, args.batch_size, args.steps)])

        det = build_model(det_cfg).eval()
        image = det_mapper(d)
        with torch.no_grad():
            rows.append(["pseudo-labelling, R50-FPN Faster R-CNN at 800x1067, batch 1 (label)",
                         *_cpu_seconds_per_image(lambda: det([image]), 1, args.steps)])
    finally:
        shutil.rmtree(tmp)
    print(f"costs: per image, CPU seconds (this process's threads together) and wall seconds; {machine_summary()}")
    print(tabulate([[name, f"{c:.4f}", f"{w:.4f}"] for name, c, w in rows],
                   headers=["", "CPU s/image", "wall s/image"], tablefmt="github"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="measured steps of each pass (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="(cpu) PU batch size (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: images/s on the GPU in fp32 and AMP at --batch-sizes (default: %(default)s)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="(cuda) PU batch sizes")
    parser.add_argument("--det-batch-sizes", type=int, nargs="+", default=[1, 8], help="(cuda) detector batch sizes")
    args = parser.parse_args(argv)
    (gpu_costs if args.device == "cuda" else cpu_costs)(args)


if __name__ == "__main__":
    main()
