#!/usr/bin/env python
"""Speed and memory benchmarks on the built-in benchmark's data; each prints a table and a ratio (these are
measurements, never timed tests).

  tools/benchmark.py select [--images N] [--batch-size B] [--num-workers W [W ...]] [--rounds R]
      `purify_net.py select`'s scoring (files decoded by a DataLoader with W workers, resized, batched, scored,
      written in chunks) in images/s, next to the raw backbone forward of the same images, already decoded
      and resized, at the same batch size (each measured in turn, R times: medians).
  tools/benchmark.py select-memory [--images N]  (the 10x pool cycles over the benchmark pool's files)
      peak resident memory of scoring N pool images and 10 N (each in a fresh process): the ratio of the peaks.
  tools/benchmark.py label [--images N] [--batch-size B] [--num-workers W [W ...]] [--rounds R]
      `purify_net.py label`'s pseudo-labelling in images/s, next to detectron2's DefaultPredictor called
      once per image on the same files (each measured in turn, R times: medians).
  tools/benchmark.py distill [--steps S] [--batch-size B] [--teacher-weights W] [--parts]
      a SelfDistillRCNN training step (student + frozen teacher + hint/kdc/kdr) over a plain detectron2
      GeneralizedRCNN step of the same student on the same batches (medians of wall and CPU time; the models
      step in turn); with --parts, also with the terms switched off, to show what each part costs.
  tools/benchmark.py costs [--steps S] [--batch-size B] [--device cuda [--batch-sizes B ...]]
      per-image CPU seconds of the COCO + ImageNet passes at the paper's sizes (R50 models, random weights):
      decoding an ImageNet-sized JPEG for select and for label, PU scoring and a PU training step at 224, the
      R50-FPN teacher's inference at 800x1067 (the cost model of projects/COCO-ImageNet/README.md); with
      --device cuda, the same passes' images/s on the GPU in fp32 and AMP at several batch sizes.
  tools/benchmark.py coco-eval [--images N] [--classes K]
      COCO box evaluation (evaluate + accumulate + summarize) of a synthetic detection set shaped like COCO
      val (default 5000 images, 80 classes): pycocotools' Python COCOeval, faster-coco-eval's C++ COCOeval
      (pudet's fallback without detectron2._C) and, where built, detectron2's compiled COCOeval_opt; the
      time, the ratio to pycocotools and whether the AP table is identical.
  tools/benchmark.py processes [--arrangements 1x2 2x1] [--steps S] [--images N] [--rounds R]
      what --num-gpus costs or gains on a CPU machine: images/s of teacher training steps and of label with P
      processes x T threads each (tools/benchmark_processes.py).
"""
import argparse
import contextlib
import copy
import functools
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pudet  # noqa: E402  (applies pudet.compat before detectron2 is used)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, DatasetMapper  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402
from tabulate import tabulate  # noqa: E402

from pudet.data import register_datasets  # noqa: E402
from pudet.data.chunked import default_inference_workers  # noqa: E402
from pudet.data.mappers import InferenceMapper, PUDatasetMapper  # noqa: E402
from pudet.engine.pseudo_label import label_images  # noqa: E402
from pudet.pu.select import score_pool  # noqa: E402

# isort: split
import benchmark_processes  # noqa: E402  (tools/benchmark_processes.py: the processes sub-command)

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
WD = os.path.join(REPO, "configs", "WildDigits")


def machine():
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")


def load_cfg(name, *opts):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(os.path.join(WD, name))
    cfg.merge_from_list(list(opts))
    register_datasets(cfg)
    return cfg


def pool_dicts(n, repeat=False):
    """The first ``n`` pool images; with ``repeat``, a longer list cycles over the pool's files (each entry
    its own image id), so that a pool larger than the benchmark's can be scored."""
    dicts = DatasetCatalog.get("wild_digits_pool")
    if repeat:
        return [dict(dicts[i % len(dicts)], image_id=i) for i in range(n)]
    if n > len(dicts):
        raise SystemExit(f"the benchmark's pool has {len(dicts)} images; ask for at most that many")
    return dicts[:n]


def _interleaved(measures, rounds):
    """Runs each of ``measures`` (name -> function returning images/s) in turn, ``rounds`` times, and returns each
    one's median: on a machine shared with other jobs, a change of load then slows all alike."""
    rates = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            rates[name].append(measure())
    return {name: statistics.median(r) for name, r in rates.items()}


def _rate(images, run):
    start = time.perf_counter()
    run()
    return images / (time.perf_counter() - start)


def _in_temporary_folder(prefix, run):
    out = tempfile.mkdtemp(prefix=prefix)
    try:
        run(out)
    finally:
        shutil.rmtree(out)


def bench_select(args):
    cfg = load_cfg("pu_R18_nnpu.yaml", "PU.INIT_FROM_DETECTOR", "")
    dicts = pool_dicts(args.images)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    mapper = PUDatasetMapper(cfg, False)
    workers = args.num_workers or [default_inference_workers(cfg)]

    # raw backbone forward: the same images, decoded and resized beforehand, same batch size
    inputs = [mapper(d) for d in dicts]
    batches = [inputs[i: i + args.batch_size] for i in range(0, len(inputs), args.batch_size)]

    def raw():
        with torch.no_grad():
            for b in batches:
                model.backbone(model.preprocess_image(b).tensor)

    def select(w):
        _in_temporary_folder("bench_select_", lambda out: score_pool(
            model, dicts, out, mapper=mapper, batch_size=args.batch_size, num_workers=w, chunk_size=args.chunk_size,
            progress=False))

    with torch.no_grad():
        model.scores(batches[0])  # warm-up
    rates = _interleaved({"raw": lambda: _rate(len(inputs), raw),
                          **{w: functools.partial(_rate, len(dicts), functools.partial(select, w)) for w in workers}},
                         args.rounds)
    print(f"select: {len(dicts)} wild-digits pool images at {cfg.PU.INPUT_SIZE}px, batch {args.batch_size}, chunks of "
          f"{args.chunk_size}, medians of {args.rounds} interleaved rounds; {machine()}")
    rows = [["raw backbone forward (pre-decoded tensors)", f"{rates['raw']:.1f}", ""]]
    rows += [[f"select scoring, {w} loader workers (decode + resize + forward + chunks)", f"{rates[w]:.1f}",
              f"{rates[w] / rates['raw']:.2f}"] for w in workers]
    print(tabulate(rows, headers=["", "images/s", "ratio select / raw"], tablefmt="github"))


def _select_peak(args):
    """(internal) scores ``args.images`` pool images in this process and prints its peak RSS in MiB."""
    cfg = load_cfg("pu_R18_nnpu.yaml", "PU.INIT_FROM_DETECTOR", "")
    dicts = pool_dicts(args.images, repeat=True)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    out = tempfile.mkdtemp(prefix="bench_peak_")
    try:
        score_pool(model, dicts, out, mapper=PUDatasetMapper(cfg, False), batch_size=32, num_workers=0,
                   chunk_size=256, progress=False)
    finally:
        shutil.rmtree(out)
    print(json.dumps({"images": len(dicts), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bench_select_memory(args):
    peaks = []
    for n in (args.images, 10 * args.images):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "_select-peak", "--images", str(n)],
                             check=True, capture_output=True, text=True).stdout
        peaks.append(json.loads(out.strip().splitlines()[-1]))
    print(f"select-memory: peak resident memory of one scoring process (batch 32, chunks of 256, no loader "
          f"workers); {machine()}")
    rows = [[p["images"], f"{p['peak_mib']:.0f}"] for p in peaks]
    rows.append(["ratio 10x pool / pool", f"{peaks[1]['peak_mib'] / peaks[0]['peak_mib']:.2f}"])
    print(tabulate(rows, headers=["pool images", "peak MiB"], tablefmt="github"))


def _teacher(cfg, weights):
    model = build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    return model.eval()


def bench_label(args):
    cfg = load_cfg("faster_rcnn_R18_FPN_teacher.yaml")
    dicts = pool_dicts(args.images)
    torch.manual_seed(0)
    weights = args.teacher_weights if os.path.isfile(args.teacher_weights) else ""
    model = _teacher(cfg, weights)
    predictor_cfg = cfg.clone()
    predictor_cfg.MODEL.WEIGHTS = weights
    predictor = DefaultPredictor(predictor_cfg)
    if not weights:
        predictor.model.load_state_dict(model.state_dict())
    from detectron2.data.detection_utils import read_image

    workers = args.num_workers or [cfg.DATALOADER.NUM_WORKERS]

    def one_by_one():
        for d in dicts:
            predictor(read_image(d["file_name"], format="BGR"))

    def label(w):
        _in_temporary_folder("bench_label_", lambda out: label_images(
            model, dicts, out, mapper=InferenceMapper(cfg), category_ids=list(range(1, 6)),
            batch_size=args.batch_size, num_workers=w, chunk_size=args.chunk_size, progress=False))

    predictor(read_image(dicts[0]["file_name"], format="BGR"))  # warm-up
    rates = _interleaved({"predictor": lambda: _rate(len(dicts), one_by_one),
                          **{w: functools.partial(_rate, len(dicts), functools.partial(label, w)) for w in workers}},
                         args.rounds)
    print(f"label: {len(dicts)} wild-digits pool images (128x128), teacher "
          f"{'from ' + weights if weights else 'randomly initialised'}, batch {args.batch_size}, chunks of "
          f"{args.chunk_size}, medians of {args.rounds} interleaved rounds; {machine()}")
    rows = [["DefaultPredictor, one image per call", f"{rates['predictor']:.1f}", ""]]
    rows += [[f"purify_net.py label (batched, chunked), {w} loader workers", f"{rates[w]:.1f}",
              f"{rates[w] / rates['predictor']:.2f}"] for w in workers]
    print(tabulate(rows, headers=["", "images/s", "ratio label / DefaultPredictor"], tablefmt="github"))


def bench_distill(args):
    weights = args.teacher_weights
    tmp = None
    if not os.path.isfile(weights):
        tmp = tempfile.mkdtemp(prefix="bench_teacher_")
        torch.manual_seed(1)
        weights = os.path.join(tmp, "teacher.pth")
        torch.save({"model": build_model(load_cfg("faster_rcnn_R18_FPN_teacher.yaml")).state_dict()}, weights)
    try:
        student_cfg = load_cfg("student_R18_FPN_sd.yaml", "MODEL.PUDET.TEACHER_WEIGHTS", weights,
                               "SOLVER.IMS_PER_BATCH", str(args.batch_size))
        plain_cfg = student_cfg.clone()
        plain_cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
        mapper = DatasetMapper(student_cfg, True)
        dicts = DatasetCatalog.get("wild_digits_train")
        batches = [[mapper(d) for d in dicts[i * args.batch_size: (i + 1) * args.batch_size]]
                   for i in range(args.steps + 1)]
        variants = {"plain detectron2 step (same student, same batches)": (plain_cfg, []),
                    "self-distillation step (hint + kdc + kdr)": (student_cfg, [])}
        if args.parts:  # what each part costs: the teacher's backbone forward runs in each of these
            off = {term: [f"MODEL.PUDET.{term}_ON", "False"] for term in ("HINT", "KDC", "KDR")}
            variants.update({
                "every term off (the teacher's backbone forward alone)": (student_cfg, sum(off.values(), [])),
                "hint only": (student_cfg, off["KDC"] + off["KDR"]),
                "kdc + kdr only (teacher RPN + box head, student box head on its proposals)":
                    (student_cfg, off["HINT"]),
            })
        # the models step on each batch in turn, and the medians are compared: on a machine shared with other
        # jobs, a change of load then slows all alike instead of one run
        models = {}
        for name, (cfg, opts) in variants.items():
            cfg = cfg.clone()
            cfg.merge_from_list(opts)
            torch.manual_seed(0)
            model = build_model(cfg).train()
            models[name] = (model, torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9))
        times = {name: [] for name in models}
        cpu = {name: [] for name in models}
        q_fractions = []
        with EventStorage() as storage:
            for i, batch in enumerate(batches):
                for name, (model, optimizer) in models.items():
                    start, start_cpu = time.perf_counter(), time.process_time()
                    losses = model(batch)
                    optimizer.zero_grad()
                    sum(losses.values()).backward()
                    optimizer.step()
                    if i > 0:  # the first step is a warm-up
                        times[name].append(time.perf_counter() - start)
                        cpu[name].append(time.process_time() - start_cpu)
                q_fractions.append(storage.latest()["distill/q_fraction"][0])
    finally:
        if tmp:
            shutil.rmtree(tmp)
    wall = {name: statistics.median(t) for name, t in times.items()}
    cpu = {name: statistics.median(t) for name, t in cpu.items()}
    plain = next(iter(models))
    teacher = "from " + weights if tmp is None else "randomly initialised"
    print(f"distill: R18-FPN student (and R18-FPN teacher {teacher}, q_fraction "
          f"{statistics.mean(q_fractions):.2f}), {args.batch_size} images of 128x128 per step, "
          f"median of {args.steps} steps of each, interleaved; {machine()}")
    print(tabulate([[name, f"{wall[name]:.3f}", f"{wall[name] / wall[plain]:.2f}", f"{cpu[name]:.3f}",
                     f"{cpu[name] / cpu[plain]:.2f}"] for name in models],
                   headers=["", "s/step", "ratio to plain", "CPU s/step", "CPU ratio to plain"], tablefmt="github"))


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


def bench_coco_eval(args):
    from pudet.compat.cocoeval import FasterCOCOeval

    gt, detections = synthetic_coco(args.images, args.classes, seed=args.seed)
    impls = [("pycocotools COCOeval (Python)", COCOeval), ("faster-coco-eval COCOeval_faster (C++)", FasterCOCOeval)]
    if pudet.compat.has_compiled_ops():
        from detectron2.evaluation.fast_eval_api import COCOeval_opt

        impls.append(("detectron2 COCOeval_opt (compiled)", COCOeval_opt))
    results = [(name, *run_cocoeval(cls, gt, detections)) for name, cls in impls]
    _, base_s, base_stats, base_ap = results[0]
    print(f"COCO box evaluation of {args.images} images, {args.classes} classes, {len(gt['annotations'])} objects, "
          f"{len(detections)} detections (seed {args.seed}); {machine()}")
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
    cfgs = []
    for path, weights_key in ((("PU", "pu_R50_coco_imagenet.yaml"), "PU.INIT_FROM_DETECTOR"),
                              (("COCO", "faster_rcnn_R_50_FPN_1x_teacher.yaml"), "MODEL.WEIGHTS")):
        cfg = get_cfg()
        pudet.add_pudet_config(cfg)
        cfg.merge_from_file(os.path.join(REPO, "configs", *path))
        cfg.merge_from_list(["MODEL.DEVICE", device, weights_key, ""])
        cfgs.append(cfg)
    return cfgs


def bench_gpu_costs(args):
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


def bench_costs(args):
    """Per-image costs of the COCO + ImageNet recipe's passes at the paper's sizes (R50 models, random weights:
    the cost does not depend on them), in CPU seconds: the cost model of projects/COCO-ImageNet/README.md.
    With ``--device cuda``, the GPU's images/s instead (bench_gpu_costs)."""
    if args.device == "cuda":
        return bench_gpu_costs(args)
    import cv2

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
    print(f"costs: per image, CPU seconds (this process's threads together) and wall seconds; {machine()}")
    print(tabulate([[name, f"{c:.4f}", f"{w:.4f}"] for name, c, w in rows],
                   headers=["", "CPU s/image", "wall s/image"], tablefmt="github"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("select", help="select scoring vs raw backbone forward")
    s.add_argument("--images", type=int, default=1024)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--num-workers", type=int, nargs="+", default=None,
                   help="loader workers, each measured in turn (default: what purify_net.py select uses)")
    s.add_argument("--chunk-size", type=int, default=4096)
    s.add_argument("--rounds", type=int, default=3)
    m = sub.add_parser("select-memory", help="select peak memory on a pool and a 10x larger one")
    m.add_argument("--images", type=int, default=400)
    peak = sub.add_parser("_select-peak")
    peak.add_argument("--images", type=int, required=True)
    teacher = os.path.join(REPO, "output", "demo", "teacher", "model_final.pth")
    lab = sub.add_parser("label", help="label throughput vs DefaultPredictor one image at a time")
    lab.add_argument("--images", type=int, default=400)
    lab.add_argument("--batch-size", type=int, default=8)
    lab.add_argument("--num-workers", type=int, nargs="+", default=None,
                     help="loader workers, each measured in turn (default: DATALOADER.NUM_WORKERS, as label)")
    lab.add_argument("--chunk-size", type=int, default=1024)
    lab.add_argument("--rounds", type=int, default=3)
    lab.add_argument("--teacher-weights", default=teacher, help="(default: %(default)s; random if missing)")
    d = sub.add_parser("distill", help="self-distillation step vs plain detectron2 step")
    d.add_argument("--steps", type=int, default=20)
    d.add_argument("--batch-size", type=int, default=8)
    d.add_argument("--teacher-weights", default=teacher, help="(default: %(default)s; random if missing)")
    d.add_argument("--parts", action="store_true", help="also step with parts of the distillation switched off")
    c = sub.add_parser("coco-eval", help="COCO evaluation: pycocotools vs faster-coco-eval (vs detectron2's compiled)")
    c.add_argument("--images", type=int, default=5000)
    c.add_argument("--classes", type=int, default=80)
    c.add_argument("--seed", type=int, default=0)
    costs = sub.add_parser("costs", help="per-image costs of the COCO + ImageNet passes (R50, the paper's sizes)")
    costs.add_argument("--steps", type=int, default=5)
    costs.add_argument("--batch-size", type=int, default=16)
    costs.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="cuda: images/s on the GPU in fp32 and AMP at --batch-sizes (default: %(default)s)")
    costs.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="(cuda) PU batch sizes")
    costs.add_argument("--det-batch-sizes", type=int, nargs="+", default=[1, 8], help="(cuda) detector batch sizes")
    benchmark_processes.add_parser(sub)
    args = p.parse_args(argv)
    {"processes": benchmark_processes.bench_processes,
     "costs": bench_costs, "select": bench_select, "select-memory": bench_select_memory, "_select-peak": _select_peak,
     "label": bench_label, "distill": bench_distill, "coco-eval": bench_coco_eval}[args.command](args)


if __name__ == "__main__":
    main()
