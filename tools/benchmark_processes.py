#!/usr/bin/env python
"""``tools/benchmark.py processes``: what ``--num-gpus N`` costs or gains on a CPU machine, in images/s.

Each arrangement of the machine's cores (``--arrangements``, ``PxT`` = P processes of T threads each; default
1x2 and 2x1) runs, in a fresh launch of detectron2's ``launch`` (gloo), the same work:

* ``teacher``: training steps of the benchmark's teacher (DetectionTrainer, DDP across the processes) with
  ``--batch-size`` images per step in all (so batch / P per process), after ``--warmup`` steps;
* ``label``: ``purify_net.py label``'s pseudo-labelling (batched, chunked; the chunks dealt to the processes) of
  the first ``--images`` pool images, after a warm-up forward.

Times are wall time between barriers of all processes (process start-up and model building excluded), the
arrangements measured in turn ``--rounds`` times (medians); the ratios are to the first arrangement. Data from
the built-in benchmark (built on first use); random weights (the cost does not depend on them) unless
``--teacher-weights``. The loaders read in the training/labelling processes (``--num-workers`` 0), so that
every arrangement uses only its P x T threads.

  tools/benchmark.py processes [--arrangements 1x2 2x1] [--steps S] [--batch-size B] [--images N] [--rounds R]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.engine import launch
from detectron2.utils import comm
from detectron2.utils.events import EventStorage
from tabulate import tabulate

from pudet.data.datasets.wild_digits import TEACHER_CONFIG

WORK = ("teacher", "label")


def add_parser(sub):
    """Adds the ``processes`` sub-command to ``tools/benchmark.py``'s sub-parsers."""
    p = sub.add_parser("processes", help="images/s of a teacher step and of label: P processes x T threads")
    p.add_argument("--arrangements", nargs="+", default=["1x2", "2x1"],
                   help="PxT: P processes of T threads each, measured in turn (default: %(default)s)")
    p.add_argument("--work", nargs="+", choices=WORK, default=list(WORK), help="(default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="timed teacher steps (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="teacher steps before timing (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="teacher images per step in all processes together (default: %(default)s)")
    p.add_argument("--images", type=int, default=200, help="pool images to label (default: %(default)s)")
    p.add_argument("--label-batch-size", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--chunk-size", type=int, default=25, help="label's images per chunk (default: %(default)s)")
    p.add_argument("--num-workers", type=int, default=0, help="loader workers per process (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="(default: %(default)s)")
    p.add_argument("--teacher-weights", default="", help="(default: random weights)")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides of the teacher (KEY VALUE ...)")
    return p


def _arrangement(text):
    processes, threads = (int(x) for x in text.lower().split("x"))
    if processes < 1 or threads < 1:
        raise SystemExit(f"--arrangements: PxT with P, T >= 1, got '{text}'")
    return processes, threads


def _teacher_cfg(args, out):
    from pudet.data import register_datasets

    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(TEACHER_CONFIG)
    cfg.merge_from_list(["WILD_DIGITS.PRETRAIN.ENABLED", "False", "SOLVER.IMS_PER_BATCH", str(args.batch_size),
                         "DATALOADER.NUM_WORKERS", str(args.num_workers), "DATASETS.TEST", "()", "SEED", "0",
                         "OUTPUT_DIR", out, *args.opts])
    register_datasets(cfg)
    return cfg


def _timed(run):
    """Wall seconds of ``run()`` between barriers of every process."""
    comm.synchronize()
    start = time.perf_counter()
    run()
    comm.synchronize()
    return time.perf_counter() - start


def _measure(args, work, threads, out):
    """In each launched process: ``work``'s images and seconds (rank 0 writes them to ``out/result.json``)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from pudet.data.mappers import InferenceMapper
    from pudet.engine import DetectionTrainer
    from pudet.engine.pseudo_label import label_images

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = _teacher_cfg(args, out)
    if work == "teacher":
        trainer = DetectionTrainer(cfg)
        if args.teacher_weights:
            DetectionCheckpointer(trainer.model).load(args.teacher_weights)

        def steps(first, n):
            for i in range(first, first + n):
                trainer.iter = i
                trainer.run_step()

        with EventStorage(0):
            steps(0, args.warmup)
            seconds = _timed(lambda: steps(args.warmup, args.steps))
        images = args.steps * args.batch_size
    else:
        model = build_model(cfg).eval()
        if args.teacher_weights:
            DetectionCheckpointer(model).load(args.teacher_weights)
        dicts = DatasetCatalog.get("wild_digits_pool")[: args.images]
        mapper = InferenceMapper(cfg)
        with torch.no_grad():
            model([mapper(d) for d in dicts[: args.label_batch_size]])  # warm-up
        seconds = _timed(lambda: label_images(
            model, dicts, os.path.join(out, "label"), mapper=mapper, category_ids=list(range(1, 6)),
            batch_size=args.label_batch_size, num_workers=args.num_workers, chunk_size=args.chunk_size,
            rank=comm.get_rank(), world_size=comm.get_world_size(), progress=False))
        images = len(dicts)
    if comm.is_main_process():
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump({"images": images, "seconds": seconds}, f)


def _run(args, work, processes, threads):
    """images/s of ``work`` with ``processes`` x ``threads``, in a fresh launch."""
    with tempfile.TemporaryDirectory(prefix="bench_processes_") as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        subprocess.run([sys.executable, os.path.abspath(__file__), "_measure", work, str(processes), str(threads),
                        out, json.dumps(vars(args))], check=True, env=env, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "result.json")) as f:
            result = json.load(f)
    return result["images"] / result["seconds"]


def bench_processes(args):
    arrangements = [_arrangement(a) for a in args.arrangements]
    _teacher_cfg(args, "")
    for split in ("train", "pool"):  # the benchmark's files, built here once (not by each launched process)
        DatasetCatalog.get(f"wild_digits_{split}")
    rates = {(w, a): [] for w in args.work for a in arrangements}
    for _ in range(args.rounds):
        for work in args.work:
            for a in arrangements:
                rates[work, a].append(_run(args, work, *a))
    rows = []
    for work in args.work:
        base = statistics.median(rates[work, arrangements[0]])
        for p, t in arrangements:
            rate = statistics.median(rates[work, (p, t)])
            rows.append([work, f"{p} process{'es' if p > 1 else ''} x {t} thread{'s' if t > 1 else ''}",
                         f"{rate:.1f}", f"{rate / base:.2f}"])
    print(f"processes: teacher steps of {args.batch_size} images in all ({args.steps} timed), label of {args.images} "
          f"pool images (batch {args.label_batch_size}, chunks of {args.chunk_size}); gloo; medians of {args.rounds} "
          f"rounds; {os.cpu_count()} cores, torch {torch.__version__}")
    print(tabulate(rows, headers=["", "arrangement", "images/s", f"ratio to {args.arrangements[0]}"],
                   tablefmt="github"))


def _main(argv):
    """(internal) ``_measure WORK P T OUT ARGS_JSON``: one arrangement's launch."""
    import argparse

    work, processes, threads, out = argv[0], int(argv[1]), int(argv[2]), argv[3]
    launch(_measure, processes, dist_url="auto", args=(argparse.Namespace(**json.loads(argv[4])), work, threads, out))


if __name__ == "__main__" and sys.argv[1:2] == ["_measure"]:
    _main(sys.argv[2:])
