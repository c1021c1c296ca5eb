#!/usr/bin/env python
"""PU purification and pseudo-labelling (paper Section 3.1, Algorithm 1).

  purify_net.py train   [options] [KEY VALUE ...] : trains the PU classifier N_pu on L (positive) and U (unlabeled)
  purify_net.py select  [options] [KEY VALUE ...] : scores every image of a pool and writes U^P
  purify_net.py label   [options] [KEY VALUE ...] : the teacher D_t pseudo-labels U^P (or a pool, or a random U^R)

With no --config-file, train/select use the built-in benchmark's classifier (configs/WildDigits/pu_R18_nnpu.yaml)
and label uses its teacher (configs/WildDigits/faster_rcnn_R18_FPN_teacher.yaml). 'purify_net.py COMMAND --help'
lists a command's options; tools/visualize_pseudo_labels.py draws pseudo-label files side by side (Figure 3).

  tools/purify_net.py train
  tools/purify_net.py train PU.RISK upu OUTPUT_DIR output/wild_digits/pu_upu
  tools/purify_net.py select --topk 400
  tools/purify_net.py select --by teacher-confidence \\
      --pseudo-labels output/wild_digits/teacher/pseudo_labels/pseudo_labels.json
  tools/purify_net.py label --selection output/wild_digits/pu_nnpu/select/selected.json
  tools/purify_net.py label --random 400 --seed 0 --output-dir output/wild_digits/teacher/pseudo_random
  tools/purify_net.py select --num-gpus 8 --config-file configs/PU/pu_R50_coco_imagenet.yaml
"""
import argparse
import os

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm

from pudet.data.datasets.wild_digits import PU_CONFIG, TEACHER_CONFIG
from pudet.engine import setup_cfg
from pudet.engine.pseudo_label import pseudo_label
from pudet.evaluation import results_table, save_results
from pudet.evaluation.results import label_table, selection_table
from pudet.purification import select_pool, train_purifier

# the config's dataset names each command reads (checked before it starts)
DATASET_KEYS = {"train": ("DATASETS.TEST", "PU.LABELED_DATASETS", "PU.UNLABELED_DATASETS"),
                "select": ("PU.UNLABELED_DATASETS",), "label": ("DATASETS.TRAIN", "PU.UNLABELED_DATASETS")}
# where select and label write, under the config's OUTPUT_DIR, without --output-dir
OUTPUT_SUBDIRS = {"select": "select", "teacher-confidence": "select_confidence", "label": "pseudo_labels"}


def setup(args):
    def apply_options(cfg):
        if args.command in ("select", "label"):  # the weights of the training in OUTPUT_DIR, outputs below it
            args.weights = args.weights or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
            subdir = OUTPUT_SUBDIRS["teacher-confidence" if getattr(args, "by", "") == "teacher-confidence"
                                    else args.command]
            cfg.OUTPUT_DIR = args.output_dir or os.path.join(cfg.OUTPUT_DIR, subdir)
        if args.command == "label":
            cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.min_score
        if args.pool:
            cfg.PU.POOL = args.pool

    default = TEACHER_CONFIG if args.command == "label" else PU_CONFIG
    return setup_cfg(args, default, edit=apply_options, dataset_keys=DATASET_KEYS[args.command],
                     pu_splits=args.command == "train")


def train(args):
    cfg = setup(args)
    results = train_purifier(cfg, resume=args.resume, eval_only=args.eval_only)
    if comm.is_main_process():
        save_results(results, os.path.join(cfg.OUTPUT_DIR, "eval_results.json"))
        print(results_table(results))
    return results


def select(args):
    cfg = setup(args)
    summary = select_pool(cfg, weights=args.weights, dataset=args.dataset, by=args.by, pseudo_labels=args.pseudo_labels,
                          topk=args.topk, threshold=args.threshold, batch_size=args.batch_size,
                          chunk_size=args.chunk_size, num_workers=args.num_workers, overwrite=args.overwrite)
    if summary is not None:
        print(selection_table(summary))
        print(f"Wrote {cfg.OUTPUT_DIR}/scores.tsv (every image), selected.json (the selection), unreadable.tsv, "
              "score_histogram.png")
    return summary


def label(args):
    cfg = setup(args)
    diagnostics = pseudo_label(
        cfg, weights=args.weights, selection=args.selection, dataset=args.dataset, random=args.random, seed=args.seed,
        pu_weights=args.pu_weights, pu_thresh=args.pu_thresh, taus=args.taus, batch_size=args.batch_size,
        chunk_size=args.chunk_size, num_workers=args.num_workers, overwrite=args.overwrite,
        teacher_config=args.config_file or TEACHER_CONFIG)
    if diagnostics is None:
        return None
    print(f"Pseudo-labels of {diagnostics['info']['source']} ({diagnostics['unreadable']} unreadable images skipped)")
    print(label_table(diagnostics["taus"]))
    if "box purified" in diagnostics:
        print(f"With box-level purification (region PU score >= {args.pu_thresh}; "
              "DATASETS.PSEUDO_PU_SCORE_THRESH applies it in training):")
        print(label_table(diagnostics["box purified"]["taus"]))
    print(f"Wrote {cfg.OUTPUT_DIR}/pseudo_labels.json, diagnostics.json, class_counts.png, unreadable.tsv")
    return diagnostics


def _inference_options(parser, *, what, batch_size, chunk_size, workers):
    parser.add_argument("--weights", default="", help=f"{what} checkpoint (default: OUTPUT_DIR/model_final.pth)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="images per forward (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=chunk_size,
                        help="images per resumable chunk (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=None, help=f"loader workers (default: {workers})")
    parser.add_argument("--overwrite", action="store_true", help="start again in an output folder that holds "
                        "another job's chunks (without it, such a rerun is refused)")


def _launch_parent(command):
    """detectron2's ``default_argument_parser`` (config, overrides, launch flags); ``--resume`` and
    ``--eval-only`` only for train (select and label resume from their chunks; they are left out of their help
    and refused)."""
    base = default_argument_parser()
    if command != "train":
        for action in base._actions:
            if action.dest in ("resume", "eval_only"):
                action.help = argparse.SUPPRESS
    return base


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = {name: commands.add_parser(name, parents=[_launch_parent(name)], conflict_handler="resolve", help=text,
                                     description=text)
           for name, text in (("train", "trains the PU classifier on L and the pool"),
                              ("select", "scores every image of a pool and writes U^P"),
                              ("label", "the teacher pseudo-labels U^P, a pool, or a random U^R"))}
    for p in sub.values():
        p.add_argument("--pool", default="", help="a folder (images at any depth) or a list file of images: the "
                       "unlabeled pool, instead of PU.UNLABELED_DATASETS (sets PU.POOL)")
    s = sub["select"]
    _inference_options(s, what="PU classifier", batch_size=32, chunk_size=4096,
                       workers="DATALOADER.NUM_WORKERS; 0 for the image head on a CPU of <= 2 cores")
    s.add_argument("--dataset", default="", help="registered pool to score (default: PU.UNLABELED_DATASETS[0])")
    s.add_argument("--by", choices=("pu", "teacher-confidence"), default="pu",
                   help="pu: the PU classifier scores the pool (U^P); teacher-confidence: each image's best box in "
                        "--pseudo-labels (U^C) (default: %(default)s)")
    s.add_argument("--pseudo-labels", default="", help="with --by teacher-confidence: a pseudo-label file of the pool")
    s.add_argument("--output-dir", default="", help="where scores and the selection go (default: OUTPUT_DIR/select, "
                   "or OUTPUT_DIR/select_confidence with --by teacher-confidence)")
    rule = s.add_mutually_exclusive_group()
    rule.add_argument("--topk", type=int, default=None, help="keep the K best images (default: n_l, the size of L)")
    rule.add_argument("--threshold", type=float, default=None, help="keep every image scoring at least this")
    lab = sub["label"]
    _inference_options(lab, what="teacher", batch_size=8, chunk_size=1024, workers="DATALOADER.NUM_WORKERS")
    source = lab.add_mutually_exclusive_group()
    source.add_argument("--selection", default="", help="a selected.json written by 'select' (U^P, U^C)")
    source.add_argument("--dataset", default="", help="a registered unlabeled dataset (default: "
                        "PU.UNLABELED_DATASETS[0])")
    lab.add_argument("--random", type=int, default=0, help="label K random images of the dataset (U^R)")
    lab.add_argument("--seed", type=int, default=0, help="seed of --random (default: %(default)s)")
    lab.add_argument("--output-dir", default="", help="where the pseudo-labels go (default: OUTPUT_DIR/pseudo_labels)")
    lab.add_argument("--pu-weights", default="", help="a region PU head (PU.HEAD region, trained on this teacher): "
                     "each pseudo-box also gets its region PU score, for box-level purification")
    lab.add_argument("--pu-thresh", type=float, default=0.0, help="the region PU score the diagnostics report "
                     "box-level purification at (default: %(default)s, the classifier's boundary)")
    lab.add_argument("--min-score", type=float, default=0.05, help="score floor of kept detections "
                     "(default: %(default)s)")
    lab.add_argument("--taus", type=float, nargs="+", default=[0.5, 0.7, 0.9],
                     help="thresholds to report (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command != "train" and (args.resume or args.eval_only):
        sub[args.command].error(f"--resume and --eval-only are train's: {args.command} resumes from its finished "
                                "chunks by itself (rerun the same command), and evaluates nothing")
    if args.command == "label" and args.random and args.selection:
        lab.error("--random draws from a dataset, not from a --selection")
    if args.command == "select" and (args.by == "teacher-confidence") != bool(args.pseudo_labels):
        s.error("--by teacher-confidence and --pseudo-labels go together")
    return args


def main(args):
    return {"train": train, "select": select, "label": label}[args.command](args)


if __name__ == "__main__":
    args = parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
