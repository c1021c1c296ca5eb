#!/usr/bin/env python
"""Speed benchmarks that print ratios (never timed tests).

  tools/benchmark.py select [--images N] [--batch-size B] [--num-workers W]
      `purify_net.py select`'s scoring (files decoded by a DataLoader with workers, resized, batched,
      scored, written in chunks) in images/s, next to the raw backbone forward of the same images,
      already decoded and resized, at the same batch size; prints the ratio.
"""
import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pudet  # noqa: E402
import torch  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from tabulate import tabulate  # noqa: E402

from pudet.data import register_datasets  # noqa: E402
from pudet.data.mappers import PUDatasetMapper  # noqa: E402
from pudet.pu.select import score_pool  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def machine():
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def bench_select(args):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "WildDigits", "pu_R18_nnpu.yaml"))
    cfg.PU.INIT_FROM_DETECTOR = ""
    register_datasets(cfg)
    dicts = DatasetCatalog.get("wild_digits_pool")[: args.images]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    mapper = PUDatasetMapper(cfg, False)

    # raw backbone forward: the same images, decoded and resized beforehand, same batch size
    inputs = [mapper(d) for d in dicts]
    batches = [inputs[i: i + args.batch_size] for i in range(0, len(inputs), args.batch_size)]
    with torch.no_grad():
        model.scores(batches[0])  # warm-up
        start = time.perf_counter()
        for b in batches:
            images = torch.stack([(x["image"].float() - model.pixel_mean) / model.pixel_std for x in b])
            model.backbone(images)
        raw = len(inputs) / (time.perf_counter() - start)

    out = tempfile.mkdtemp(prefix="bench_select_")
    try:
        start = time.perf_counter()
        score_pool(model, dicts, out, mapper=mapper, batch_size=args.batch_size, num_workers=args.num_workers,
                   chunk_size=args.chunk_size, progress=False)
        full = len(dicts) / (time.perf_counter() - start)
    finally:
        shutil.rmtree(out)
    rows = [
        ["raw backbone forward (pre-decoded tensors)", f"{raw:.1f}"],
        ["select scoring (decode + resize + forward + chunks)", f"{full:.1f}"],
        ["ratio select / raw", f"{full / raw:.2f}"],
    ]
    print(f"select benchmark: {len(dicts)} wild-digits pool images at {cfg.PU.INPUT_SIZE}px, batch {args.batch_size}, "
          f"{args.num_workers} loader workers; {machine()}")
    print(tabulate(rows, headers=["", "images/s"], tablefmt="github"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("select", help="select scoring vs raw backbone forward")
    s.add_argument("--images", type=int, default=1024)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--num-workers", type=int, default=2)
    s.add_argument("--chunk-size", type=int, default=4096)
    args = p.parse_args(argv)
    bench_select(args)


if __name__ == "__main__":
    main()
