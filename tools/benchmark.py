#!/usr/bin/env python
"""Speed and memory of pudet's pipeline on the built-in benchmark's data; each prints a table and a ratio (these
are measurements, never timed tests).

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
      step in turn), against its bound: the plain step plus the teacher's forward plus the student's box head
      on the teacher's proposals, each measured; with --parts, also with the terms switched off.
  tools/benchmark.py processes [--arrangements 1x2 2x1] [--steps S] [--images N] [--rounds R]
      what --num-gpus costs or gains on a CPU machine: images/s of teacher training steps and of label with P
      processes x T threads each (tools/benchmark_processes.py).
  tools/benchmark.py exits [--runs R] [--jobs ddp teacher select label fail]
      how many of R 2-process launches of each job exit as they should: 0 after finishing their work, non-zero
      (and long before the process group's timeout) when one rank fails (tools/benchmark_exits.py).
  tools/benchmark.py gpu-memory [--gpus G] [--steps S]
      peak GPU memory of a teacher training step, a distilled step, select's scoring and label's inference of
      the COCO recipe's R50 models (random weights, random images) at its per-GPU batch (SOLVER.IMS_PER_BATCH / G;
      select and label at their default --batch-size) and its image size (800x1067, PU.INPUT_SIZE for select).

select, label and distill take --device (default cpu; cuda on a GPU). tools/gpu_check.sh runs them on a GPU.

The class prior's estimate against the truth at several pi_p is tools/benchmark_prior.py; COCO evaluation's
implementations are compared by tools/benchmark_coco_eval.py, the COCO + ImageNet recipe's
per-image costs measured by projects/COCO-ImageNet/measure_costs.py.
"""
import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from tabulate import tabulate

from pudet.config import get_pudet_cfg
from pudet.data import register_datasets
from pudet.data.chunked import default_inference_workers
from pudet.data.datasets.wild_digits import CONFIG_DIR
from pudet.data.mappers import InferenceMapper, PUDatasetMapper
from pudet.engine.pseudo_label import label_images
from pudet.purification.image_head import score_pool
from pudet.utils import machine_summary

# isort: split
import benchmark_exits  # tools/benchmark_exits.py: the exits sub-command
import benchmark_processes  # tools/benchmark_processes.py: the processes sub-command

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_cfg(name, *opts):
    """The benchmark's config ``name`` with ``opts``, its datasets registered."""
    cfg = get_pudet_cfg(os.path.join(CONFIG_DIR, name), opts)
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


def _synchronize():
    """Waits for the GPU's queued work, so that a timer reads what it took (nothing to wait for on a CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rate(images, run):
    _synchronize()
    start = time.perf_counter()
    run()
    _synchronize()
    return images / (time.perf_counter() - start)


def _in_temporary_folder(prefix, run):
    out = tempfile.mkdtemp(prefix=prefix)
    try:
        run(out)
    finally:
        shutil.rmtree(out)


def bench_select(args):
    cfg = load_cfg("pu_R18_nnpu.yaml", "PU.INIT_FROM_DETECTOR", "", "MODEL.DEVICE", args.device)
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
          f"{args.chunk_size}, medians of {args.rounds} interleaved rounds; {machine_summary()}")
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
          f"workers); {machine_summary()}")
    rows = [[p["images"], f"{p['peak_mib']:.0f}"] for p in peaks]
    rows.append(["ratio 10x pool / pool", f"{peaks[1]['peak_mib'] / peaks[0]['peak_mib']:.2f}"])
    print(tabulate(rows, headers=["pool images", "peak MiB"], tablefmt="github"))


def _teacher(cfg, weights):
    model = build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    return model.eval()


def bench_label(args):
    cfg = load_cfg("faster_rcnn_R18_FPN_teacher.yaml", "MODEL.DEVICE", args.device)
    dicts = pool_dicts(args.images)
    torch.manual_seed(0)
    weights = args.teacher_weights if os.path.isfile(args.teacher_weights) else ""
    model = _teacher(cfg, weights)
    predictor_cfg = cfg.clone()
    predictor_cfg.MODEL.WEIGHTS = weights
    predictor = DefaultPredictor(predictor_cfg)
    if not weights:
        predictor.model.load_state_dict(model.state_dict())
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
          f"{args.chunk_size}, medians of {args.rounds} interleaved rounds; {machine_summary()}")
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
                               "SOLVER.IMS_PER_BATCH", str(args.batch_size), "MODEL.DEVICE", args.device)
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
        distilled = models["self-distillation step (hint + kdc + kdr)"][0]
        parts = (TEACHER_FORWARD, BOX_HEAD_ON_TEACHER)
        times = {name: [] for name in (*models, *parts)}
        cpu = {name: [] for name in (*models, *parts)}
        q_fractions = []
        with EventStorage() as storage:
            for i, batch in enumerate(batches):
                steps = [(name, functools.partial(_train_step, model, optimizer, batch))
                         for name, (model, optimizer) in models.items()]
                steps += [(TEACHER_FORWARD, functools.partial(_teacher_proposals, distilled, batch)),
                          (BOX_HEAD_ON_TEACHER, functools.partial(_box_head_on, distilled,
                                                                  *_box_head_inputs(distilled, batch)))]
                for name, step in steps:
                    _synchronize()
                    start, start_cpu = time.perf_counter(), time.process_time()
                    step()
                    _synchronize()
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
    # what a distilled step cannot cost less than: a plain step, the teacher's forward and the student's box head
    # on the teacher's proposals, each measured
    bound = "bound: plain step + teacher forward + student box head on the teacher's proposals"
    for measured in (wall, cpu):
        measured[bound] = measured[plain] + measured[TEACHER_FORWARD] + measured[BOX_HEAD_ON_TEACHER]
    teacher = "from " + weights if tmp is None else "randomly initialised"
    print(f"distill: R18-FPN student (and R18-FPN teacher {teacher}, q_fraction "
          f"{statistics.mean(q_fractions):.2f}), {args.batch_size} images of 128x128 per step, "
          f"median of {args.steps} steps of each, interleaved; {machine_summary()}")
    print(tabulate([[name, f"{wall[name]:.3f}", f"{wall[name] / wall[plain]:.2f}", f"{cpu[name]:.3f}",
                     f"{cpu[name] / cpu[plain]:.2f}"] for name in (*models, *parts, bound)],
                   headers=["", "s/step", "ratio to plain", "CPU s/step", "CPU ratio to plain"], tablefmt="github"))
    distill = "self-distillation step (hint + kdc + kdr)"
    print(f"the distilled step over its bound: {wall[distill] / wall[bound]:.2f} (wall), "
          f"{cpu[distill] / cpu[bound]:.2f} (CPU)")


TEACHER_FORWARD = "teacher forward (backbone, RPN, box head on its sampled proposals)"
BOX_HEAD_ON_TEACHER = "student box head on the teacher's proposals (forward + backward)"


def _train_step(model, optimizer, batch):
    losses = model(batch)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()


def _teacher_proposals(model, batch):
    """The teacher's forward of a distilled step on ``batch``: its features, its proposals sampled against the
    ground truth, its box head on them. Returns the sampled proposals."""
    images = model.teacher.preprocess_image(batch)
    with torch.no_grad():
        features = model.teacher.backbone(images.tensor)
    sampled, _ = model._teacher_boxes(images, features, [x["instances"].to(model.device) for x in batch])
    return sampled


def _box_head_inputs(model, batch):
    """(the student's features, the teacher's sampled boxes) of ``batch``, for :func:`_box_head_on`."""
    with torch.no_grad():
        features = model.backbone(model.preprocess_image(batch).tensor)
    return features, [p.proposal_boxes for p in _teacher_proposals(model, batch)]


def _box_head_on(model, features, boxes):
    """The student's box pooler, head and predictor on ``boxes``, forward and backward to its features."""
    heads = model.roi_heads
    leaves = [features[f].detach().requires_grad_() for f in heads.box_in_features]
    logits, deltas = heads.box_predictor(heads.box_head(heads.box_pooler(leaves, boxes)))
    (logits.sum() + deltas.sum()).backward()


def _random_coco_batch(n, height, width, device, num_classes=80, boxes=5):
    """``n`` training inputs of random pixels with ``boxes`` random ground-truth boxes each, as detectron2's
    ``DatasetMapper`` gives them."""
    from detectron2.structures import Boxes, Instances

    batch = []
    for _ in range(n):
        xy = torch.rand(boxes, 2) * torch.tensor([width * 0.7, height * 0.7])
        wh = 32 + torch.rand(boxes, 2) * torch.tensor([width * 0.3, height * 0.3])
        instances = Instances((height, width), gt_boxes=Boxes(torch.cat([xy, xy + wh], dim=1)),
                              gt_classes=torch.randint(num_classes, (boxes,)))
        batch.append({"image": torch.randint(0, 256, (3, height, width), dtype=torch.uint8).float().to(device),
                      "height": height, "width": width, "instances": instances})
    return batch


def bench_gpu_memory(args):
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu-memory: no CUDA device (torch.cuda.is_available() is False)")
    coco = os.path.join(REPO, "configs", "COCO")
    on = ["MODEL.DEVICE", args.device, "MODEL.WEIGHTS", "", *args.opts]
    teacher_cfg = get_pudet_cfg(os.path.join(coco, "faster_rcnn_R_50_FPN_1x_teacher.yaml"), on)
    pu_cfg = get_pudet_cfg(os.path.join(REPO, "configs", "PU", "pu_R50_coco_imagenet.yaml"),
                           [*on, "PU.INIT_FROM_DETECTOR", ""])
    per_gpu = max(1, teacher_cfg.SOLVER.IMS_PER_BATCH // args.gpus)
    height, width = args.image_size
    tmp = tempfile.mkdtemp(prefix="bench_gpu_memory_")
    teacher_weights = os.path.join(tmp, "teacher.pth")
    torch.manual_seed(0)
    torch.save({"model": build_model(teacher_cfg).state_dict()}, teacher_weights)
    student_cfg = get_pudet_cfg(os.path.join(coco, "faster_rcnn_R_50_FPN_1x_self_distill_pseudo.yaml"),
                                [*on, "MODEL.PUDET.TEACHER_WEIGHTS", teacher_weights,
                                 "MODEL.PUDET.TEACHER_CONFIG", ""])  # R50 <- R50: the student's own architecture

    def timed(step):
        """The seconds of the last of ``args.steps`` calls of ``step``."""
        for _ in range(args.steps):
            _synchronize()
            start = time.perf_counter()
            step()
            _synchronize()
        return time.perf_counter() - start

    def train_steps(cfg):
        model = build_model(cfg).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        with EventStorage():
            return timed(lambda: _train_step(model, optimizer, _random_coco_batch(per_gpu, height, width,
                                                                                  args.device)))

    def inference(cfg, n, size):
        model = build_model(cfg).eval()
        with torch.no_grad():
            return timed(lambda: model([{"image": torch.randint(0, 256, (3, *size), dtype=torch.uint8).float().to(
                args.device), "height": size[0], "width": size[1]} for _ in range(n)]))

    passes = [
        (f"teacher training step, R50-FPN, {per_gpu} images", lambda: train_steps(teacher_cfg)),
        (f"distilled training step, R50-FPN <- R50-FPN, {per_gpu} images", lambda: train_steps(student_cfg)),
        (f"select: PU classifier R50 at {pu_cfg.PU.INPUT_SIZE}px, {args.select_batch} images",
         lambda: inference(pu_cfg, args.select_batch, (pu_cfg.PU.INPUT_SIZE, pu_cfg.PU.INPUT_SIZE))),
        (f"label: teacher R50-FPN inference, {args.label_batch} images",
         lambda: inference(teacher_cfg, args.label_batch, (height, width))),
    ]
    rows = []
    try:
        for name, run in passes:
            cuda = torch.cuda.is_available() and args.device.startswith("cuda")
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            seconds = run()
            peak = f"{torch.cuda.max_memory_allocated() / 2 ** 30:.2f}" if cuda else "n/a (not a GPU)"
            rows.append([name, peak, f"{seconds:.3f}"])
    finally:
        shutil.rmtree(tmp)
    device = (f"{torch.cuda.get_device_name()}, torch {torch.__version__}" if args.device.startswith("cuda")
              else machine_summary())
    print(f"gpu-memory: the COCO recipe's models (random weights, random images of {height}x{width}) at its "
          f"per-GPU batch on {args.gpus} GPUs, {args.steps} steps each (s: the last step); {device}")
    print(tabulate(rows, headers=["pass", "peak GiB allocated", "s/step"], tablefmt="github"))


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
    for parser in (s, lab, d):
        parser.add_argument("--device", default="cpu", help="MODEL.DEVICE (default: %(default)s)")
    g = sub.add_parser("gpu-memory", help="peak GPU memory of the COCO recipe's passes at its per-GPU sizes")
    g.add_argument("--gpus", type=int, default=8, help="GPUs the recipe's batch is split over (default: %(default)s)")
    g.add_argument("--image-size", type=int, nargs=2, default=[800, 1067], metavar=("H", "W"),
                   help="training and label images (default: %(default)s, a 4:3 COCO image at shorter side 800)")
    g.add_argument("--select-batch", type=int, default=32, help="select's --batch-size (default: %(default)s)")
    g.add_argument("--label-batch", type=int, default=8, help="label's --batch-size (default: %(default)s)")
    g.add_argument("--steps", type=int, default=2)
    g.add_argument("--device", default="cuda", help="(default: %(default)s; cpu runs the passes, no memory)")
    g.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every model, KEY VALUE pairs")
    benchmark_processes.add_parser(sub)
    benchmark_exits.add_parser(sub)
    args = p.parse_args(argv)
    {"processes": benchmark_processes.bench_processes, "exits": benchmark_exits.bench_exits,
     "select": bench_select, "select-memory": bench_select_memory,
     "_select-peak": _select_peak, "label": bench_label, "distill": bench_distill,
     "gpu-memory": bench_gpu_memory}[args.command](args)


if __name__ == "__main__":
    main()
