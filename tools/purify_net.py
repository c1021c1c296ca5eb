#!/usr/bin/env python
"""PU purification and pseudo-labelling (paper Section 3.1, Algorithm 1).

  purify_net.py train   [detectron2 options] : trains the PU classifier N_pu on L (positive) and U (unlabeled)
  purify_net.py select  [options]            : scores every image of a pool and writes U^P
  purify_net.py label   [options]            : the teacher D_t pseudo-labels U^P (or a pool, or a random U^R)
  purify_net.py gallery A.json B.json        : pseudo-labelled images of two files side by side (Figure 3)

With no --config-file, train/select use the built-in benchmark's classifier (configs/WildDigits/pu_R18_nnpu.yaml)
and label uses its teacher (configs/WildDigits/faster_rcnn_R18_FPN_teacher.yaml).

  tools/purify_net.py train
  tools/purify_net.py train PU.RISK upu OUTPUT_DIR output/wild_digits/pu_upu
  tools/purify_net.py select --topk 400
  tools/purify_net.py select --by teacher-confidence \
      --pseudo-labels output/wild_digits/teacher/pseudo_labels/pseudo_labels.json
  tools/purify_net.py label --selection output/wild_digits/pu_nnpu/select/selected.json
  tools/purify_net.py label --random 400 --seed 0 --output-dir output/wild_digits/teacher/pseudo_random
  tools/purify_net.py gallery output/wild_digits/teacher/pseudo_random/pseudo_labels.json \
      output/wild_digits/teacher/pseudo_labels/pseudo_labels.json --titles random PU-selected
  tools/purify_net.py select --num-gpus 8 --config-file configs/PU/pu_R50_coco_imagenet.yaml
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pudet  # noqa: E402  (applies pudet.compat before detectron2 is used)

# isort: split
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from tabulate import tabulate  # noqa: E402

from pudet.config import check_config  # noqa: E402
from pudet.data import register_datasets  # noqa: E402
from pudet.data.build import register_pu_splits  # noqa: E402
from pudet.data.chunked import default_inference_workers, describe_job  # noqa: E402
from pudet.data.datasets import use_pool_option  # noqa: E402
from pudet.data.mappers import InferenceMapper, PUDatasetMapper  # noqa: E402
from pudet.engine import PUTrainer  # noqa: E402
from pudet.engine.pseudo_label import (  # noqa: E402
    finish_pseudo_labels,
    label_images,
    label_source,
    teacher_categories,
)
from pudet.engine.purification import resolve_prior  # noqa: E402
from pudet.engine.region_pu import box_pu_scorer, score_pool_regions, train_region_pu  # noqa: E402
from pudet.evaluation import results_table, save_results  # noqa: E402
from pudet.evaluation.pseudo_labels import label_diagnostics, plot_gallery  # noqa: E402
from pudet.modeling.checkpoint import load_weights_strictly  # noqa: E402
from pudet.pu.select import (  # noqa: E402
    score_pool,
    select_by_pu_scores,
    select_by_region_head,
    select_by_teacher_confidence,
)

DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "configs", "WildDigits", "pu_R18_nnpu.yaml"
)
DEFAULT_TEACHER_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "configs", "WildDigits", "faster_rcnn_R18_FPN_teacher.yaml"
)
logger = logging.getLogger("pudet.purify_net")
# the config's dataset names each command reads (checked before it starts)
_DATASET_KEYS = {"train": ("DATASETS.TEST", "PU.LABELED_DATASETS", "PU.UNLABELED_DATASETS"),
                 "select": ("PU.UNLABELED_DATASETS",), "label": ("DATASETS.TRAIN", "PU.UNLABELED_DATASETS")}


def setup(args):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(args.config_file or (DEFAULT_TEACHER_CONFIG if args.command == "label" else DEFAULT_CONFIG))
    cfg.merge_from_list(args.opts)
    if args.command in ("select", "label"):
        args.weights = args.weights or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        default = {"select": "select", "label": "pseudo_labels"}[args.command]
        if args.command == "select" and args.by == "teacher-confidence":
            default = "select_confidence"
        cfg.OUTPUT_DIR = args.output_dir or os.path.join(cfg.OUTPUT_DIR, default)
    if args.command == "label":
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.min_score
    if args.pool:
        cfg.PU.POOL = args.pool
    use_pool_option(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="pudet")
    register_datasets(cfg)
    if args.command == "train":
        register_pu_splits(cfg)
    check_config(cfg, args.config_file, _DATASET_KEYS[args.command])
    return cfg


def train(args):
    cfg = setup(args)
    if cfg.PU.HEAD == "region":
        return _report(train_region_pu(cfg), cfg)
    cfg = resolve_prior(cfg)
    if args.eval_only:
        model = PUTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = PUTrainer.test(cfg, model)
    else:
        trainer = PUTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()
    return _report({"prior": {"pi_p": {"used": cfg.PU.PRIOR}}, **results}, cfg)


def _report(results, cfg):
    if comm.is_main_process():
        save_results(results, os.path.join(cfg.OUTPUT_DIR, "eval_results.json"))
        print(results_table(results))
    return results


def select(args):
    cfg = setup(args)
    out = cfg.OUTPUT_DIR
    if args.by == "teacher-confidence":
        if comm.is_main_process():
            return print_selection(select_by_teacher_confidence(
                cfg, args.pseudo_labels, out, topk=args.topk, threshold=args.threshold), out)
        return None
    if not os.path.isfile(args.weights):
        raise FileNotFoundError(f"PU classifier weights {args.weights} not found: train it first or pass --weights")
    dataset = args.dataset or cfg.PU.UNLABELED_DATASETS[0]
    dicts = DatasetCatalog.get(dataset)
    if cfg.PU.HEAD == "region":
        # the region bags are cached beside the head's checkpoint (train's OUTPUT_DIR/features)
        feature_dir = cfg.PU.REGION.FEATURE_DIR or os.path.join(os.path.dirname(args.weights), "features")
        scored = score_pool_regions(cfg, args.weights, dataset, feature_dir=feature_dir, rank=comm.get_rank(),
                                    world_size=comm.get_world_size(), num_workers=args.num_workers)
        if not comm.is_main_process():
            return None
        summary = select_by_region_head(cfg, dataset, dicts, out, scored, topk=args.topk, threshold=args.threshold,
                                        weights=args.weights)
        return print_selection(summary, out)
    model = build_model(cfg)  # not PUTrainer's: its PU.INIT_FROM_DETECTOR is overwritten by the weights anyway
    load_weights_strictly(model, args.weights)
    score_pool(
        model, dicts, out, mapper=PUDatasetMapper(cfg, False), batch_size=args.batch_size,
        num_workers=default_inference_workers(cfg) if args.num_workers is None else args.num_workers,
        chunk_size=args.chunk_size, rank=comm.get_rank(), world_size=comm.get_world_size(),
        progress=comm.is_main_process(), job=describe_job(cfg, args.weights), overwrite=args.overwrite,
    )
    comm.synchronize()
    if not comm.is_main_process():
        return None
    summary = select_by_pu_scores(cfg, dataset, dicts, out, chunk_size=args.chunk_size, topk=args.topk,
                                  threshold=args.threshold, weights=args.weights)
    return print_selection(summary, out)


def print_selection(summary, out):
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in summary.items() if k != "comparison"]
    print(tabulate(rows, tablefmt="github", headers=["selection", ""]))
    if "comparison" in summary:
        print(f"\nThe same pool ranked by what the same region features allow (K = {summary['selected']}):")
        print(tabulate([list(r.values()) for r in summary["comparison"]], tablefmt="github", floatfmt=".1f",
                       headers=list(summary["comparison"][0])))
    print(f"Wrote {out}/scores.tsv (every image), selected.json (the selection), unreadable.tsv, score_histogram.png")
    return summary


def label(args):
    cfg = setup(args)
    if not os.path.isfile(args.weights):
        raise FileNotFoundError(
            f"teacher weights {args.weights} not found: train it with tools/train_net.py or pass --weights")
    dicts, dataset, source = label_source(selection=args.selection, random=args.random, seed=args.seed,
                                          dataset=args.dataset or cfg.PU.UNLABELED_DATASETS[0])
    model = build_model(cfg)
    load_weights_strictly(model, args.weights)
    job = describe_job(cfg, args.weights)
    if args.pu_weights:
        job["pu_weights"] = describe_job(weights=args.pu_weights)["weights"]
        model = box_pu_scorer(model, args.pu_weights, args.weights)
    categories = teacher_categories(cfg.DATASETS.TRAIN[0])
    out = cfg.OUTPUT_DIR
    label_images(
        model, dicts, out, mapper=InferenceMapper(cfg), category_ids=[c["id"] for c in categories],
        batch_size=args.batch_size, chunk_size=args.chunk_size,
        num_workers=cfg.DATALOADER.NUM_WORKERS if args.num_workers is None else args.num_workers,
        rank=comm.get_rank(), world_size=comm.get_world_size(), progress=comm.is_main_process(), job=job,
        overwrite=args.overwrite,
    )
    comm.synchronize()
    if not comm.is_main_process():
        return None
    info = {"teacher_config": args.config_file or DEFAULT_TEACHER_CONFIG, "teacher_weights": args.weights,
            "source": source, "dataset": dataset, "min_score": args.min_score}
    coco, bad = finish_pseudo_labels(out, len(dicts), args.chunk_size, categories, info)
    diagnostics = label_diagnostics(coco, out, taus=args.taus, labeled_datasets=cfg.DATASETS.TRAIN,
                                    pu_score_thresh=args.pu_thresh if args.pu_weights else None)
    print(f"Pseudo-labels of {coco['info']['source']} ({len(bad)} unreadable images skipped)")
    print_label_table(diagnostics["taus"])
    if "box purified" in diagnostics:
        print(f"With box-level purification (region PU score >= {args.pu_thresh}; "
              "DATASETS.PSEUDO_PU_SCORE_THRESH applies it in training):")
        print_label_table(diagnostics["box purified"]["taus"])
    print(f"Wrote {out}/pseudo_labels.json, diagnostics.json, class_counts.png, unreadable.tsv")
    return diagnostics


def print_label_table(rows):
    truth = "precision" in rows[0]
    headers = ["tau", "images", "images with boxes", "boxes", "boxes/img"] + (
        ["box precision", "box recall"] if truth else [])
    table = [[r["tau"], r["images"], r["images with boxes"], r["boxes"], f"{r['boxes/img']:.2f}"]
             + ([f"{r['precision']:.3f}", f"{r['recall']:.3f}"] if truth else []) for r in rows]
    print(tabulate(table, headers=headers, tablefmt="github"))


def gallery(args):
    panels = []
    for path, title in zip(args.files, args.titles or [os.path.basename(os.path.dirname(p)) for p in args.files]):
        with open(path) as f:
            panels.append((title, json.load(f)))
    plot_gallery(args.output, panels, tau=args.tau, num_images=args.num_images, seed=args.seed)
    print(f"Wrote {args.output}")


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__ + "\n'purify_net.py COMMAND --help' lists a command's options.")
        raise SystemExit(0)
    if not argv or argv[0] not in ("train", "select", "label", "gallery"):
        raise SystemExit(__doc__ + "\nerror: the first argument must be 'train', 'select', 'label' or 'gallery'")
    command, rest = argv[0], argv[1:]
    if command == "gallery":
        parser = argparse.ArgumentParser(prog="purify_net.py gallery",
                                         description="Figure 3: pseudo-labels side by side")
        add = parser.add_argument
        add("files", nargs="+", help="pseudo-label files (one column each)")
        add("--titles", nargs="+", default=None, help="column titles (default: the files' folders)")
        add("--output", default="gallery.png", help="PNG to write (default: %(default)s)")
        add("--tau", type=float, default=0.5, help="draw boxes scoring at least this (default: %(default)s)")
        add("--num-images", type=int, default=6, help="images per column (default: %(default)s)")
        add("--seed", type=int, default=0, help="which images are drawn (default: %(default)s)")
        args = parser.parse_args(rest)
        if args.titles and len(args.titles) != len(args.files):
            parser.error("give one title per file")
        args.command = command
        return args
    parser = default_argument_parser()
    parser.prog = f"purify_net.py {command}"
    add = parser.add_argument
    if command == "label":
        add("--weights", default="",
            help="teacher checkpoint (default: the teacher config's OUTPUT_DIR/model_final.pth)")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--selection", default="", help="a selected.json written by 'select' (U^P, U^C)")
        source.add_argument("--dataset", default="",
                            help="a registered unlabeled dataset (default: PU.UNLABELED_DATASETS[0])")
        add("--random", type=int, default=0, help="label K random images of the dataset (U^R)")
        add("--seed", type=int, default=0, help="seed of --random (default: %(default)s)")
        add("--output-dir", default="", help="where the pseudo-labels go (default: OUTPUT_DIR/pseudo_labels)")
        add("--pu-weights", default="", help="a region PU head (PU.HEAD region, trained on this teacher): each "
            "pseudo-box also gets its region PU score, for box-level purification")
        add("--pu-thresh", type=float, default=0.0, help="the region PU score the diagnostics report box-level "
            "purification at (default: %(default)s, the classifier's boundary)")
        add("--min-score", type=float, default=0.05, help="score floor of kept detections (default: %(default)s)")
        add("--taus", type=float, nargs="+", default=[0.5, 0.7, 0.9],
            help="thresholds to report (default: %(default)s)")
        add("--batch-size", type=int, default=8, help="images per forward (default: %(default)s)")
        add("--chunk-size", type=int, default=1024, help="images per resumable chunk (default: %(default)s)")
        add("--num-workers", type=int, default=None, help="loader workers (default: DATALOADER.NUM_WORKERS)")
    if command == "select":
        add("--weights", default="", help="PU classifier checkpoint (default: OUTPUT_DIR/model_final.pth)")
        add("--dataset", default="", help="registered pool to score (default: PU.UNLABELED_DATASETS[0])")
        add("--by", choices=("pu", "teacher-confidence"), default="pu",
            help="pu: the PU classifier scores the pool (U^P); teacher-confidence: each image's best box in "
                 "--pseudo-labels (U^C) (default: %(default)s)")
        add("--pseudo-labels", default="",
            help="with --by teacher-confidence: a pseudo-label file of the whole pool ('label')")
        add("--output-dir", default="", help="where scores and the selection go (default: OUTPUT_DIR/select, or "
            "OUTPUT_DIR/select_confidence with --by teacher-confidence)")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--topk", type=int, default=None,
                           help="keep the K best images (default: n_l, the labeled set's size)")
        group.add_argument("--threshold", type=float, default=None, help="keep every image scoring at least this")
        add("--batch-size", type=int, default=32, help="images per forward (default: %(default)s)")
        add("--chunk-size", type=int, default=4096, help="images per resumable chunk (default: %(default)s)")
        add("--num-workers", type=int, default=None,
            help="loader workers (default: DATALOADER.NUM_WORKERS; 0 for a model on a CPU of <= 2 cores)")
    add("--pool", default="", help="a folder (images at any depth) or a list file of images: the unlabeled pool, "
        "instead of PU.UNLABELED_DATASETS (sets PU.POOL)")
    if command in ("select", "label"):
        add("--overwrite", action="store_true", help="start again in an output folder that holds another job's "
            "chunks (without it, such a rerun is refused)")
    args = parser.parse_args(rest)
    if command == "label" and args.random and args.selection:
        parser.error("--random draws from a dataset, not from a --selection")
    if command == "select" and (args.by == "teacher-confidence") != bool(args.pseudo_labels):
        parser.error("--by teacher-confidence and --pseudo-labels go together")
    args.command = command
    return args


def main(args):
    return {"train": train, "select": select, "label": label, "gallery": gallery}[args.command](args)


if __name__ == "__main__":
    args = parse_args()
    if args.command == "gallery":
        sys.exit(gallery(args))
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
