#!/usr/bin/env python
"""Evaluation against a pool's hidden truth (the built-in benchmark's pool), measured after the fact: what no
purifier may read. pudet.evaluation.pool_truth is the only reader of the truth.

  tools/evaluate_pool_truth.py negative-scenes --pseudo-labels output/demo/labels/pool/pseudo_labels.json \
      --output-dir output/demo/pool_truth
      the teacher's boxes above --score-thresh on the pool's NEGATIVE scenes (per image, per class), from a
      pseudo-label file of the pool (purify_net.py label): how the teacher is fooled by the pool. Writes
      negative_scenes.json
  tools/evaluate_pool_truth.py oracle-labels --k 200 --seed 0 --output-dir output/demo/labels/oracle
      the oracle's pseudo-labels: K truly positive pool scenes drawn with --seed, with their TRUE boxes (what a
      perfect purifier and a perfect teacher would give), as pseudo_labels.json with the diagnostics that
      purify_net.py label writes; and the same scenes as a selection, selected.json, for purify_net.py label
      --selection (a perfect purifier with the teacher's labels)

The config (--config-file, default: the benchmark's teacher, and KEY VALUE overrides) says which benchmark to read;
each command writes into --output-dir (OUTPUT_DIR), with its config and log, as every pudet tool does.
"""
import argparse
import json
import os

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
from detectron2.engine import default_argument_parser

from pudet.engine import setup_cfg
from pudet.engine.pseudo_label import write_pseudo_labels
from pudet.evaluation import save_results
from pudet.evaluation.pool_truth import negative_scene_boxes, oracle_pseudo_labels, oracle_selection
from pudet.evaluation.pseudo_labels import label_diagnostics

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "WildDigits",
                              "faster_rcnn_R18_FPN_teacher.yaml")


def _setup(args):
    def output_dir(cfg):
        cfg.OUTPUT_DIR = args.output_dir

    return setup_cfg(args, DEFAULT_CONFIG, edit=output_dir)


def negative_scenes(args):
    cfg = _setup(args)
    with open(args.pseudo_labels) as f:
        counted = negative_scene_boxes(json.load(f), score_thresh=args.score_thresh)
    save_results(counted, os.path.join(cfg.OUTPUT_DIR, "negative_scenes.json"))
    print(f"the teacher on {counted['negative images']} negative scenes: {counted['boxes/img']:.2f} boxes/img above "
          f"{args.score_thresh:g}; {100 * counted['fired']:.1f}% of them hold at least one\n"
          f"Wrote {cfg.OUTPUT_DIR}/negative_scenes.json")


def oracle_labels(args):
    cfg = _setup(args)
    coco = oracle_pseudo_labels(args.dataset or cfg.PU.UNLABELED_DATASETS[0], args.k, args.seed)
    write_pseudo_labels(os.path.join(cfg.OUTPUT_DIR, "pseudo_labels.json"), coco)
    save_results(oracle_selection(coco), os.path.join(cfg.OUTPUT_DIR, "selected.json"))
    label_diagnostics(coco, cfg.OUTPUT_DIR, taus=args.taus, labeled_datasets=cfg.DATASETS.TRAIN)
    print(f"{coco['info']['source']}: {len(coco['annotations'])} boxes\n"
          f"Wrote {cfg.OUTPUT_DIR}/pseudo_labels.json, selected.json, diagnostics.json, class_counts.png")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    base = default_argument_parser()
    negative = commands.add_parser("negative-scenes", parents=[base], conflict_handler="resolve",
                                   help="the teacher's boxes on the pool's negative scenes")
    negative.add_argument("--pseudo-labels", required=True,
                          help="a pseudo-label file of the pool (purify_net.py label)")
    negative.add_argument("--score-thresh", type=float, default=0.5,
                          help="count boxes scoring above this (default: %(default)s)")
    negative.add_argument("--output-dir", required=True, help="where negative_scenes.json goes")
    oracle = commands.add_parser("oracle-labels", parents=[base], conflict_handler="resolve",
                                 help="K true-positive pool scenes with their true boxes, as a pseudo-label file")
    oracle.add_argument("--dataset", default="", help="the pool (default: PU.UNLABELED_DATASETS[0])")
    oracle.add_argument("--k", type=int, required=True, help="how many positive scenes (all where it has fewer)")
    oracle.add_argument("--seed", type=int, default=0, help="which scenes are drawn (default: %(default)s)")
    oracle.add_argument("--output-dir", required=True, help="where pseudo_labels.json and its diagnostics go")
    oracle.add_argument("--taus", type=float, nargs="+", default=[0.5, 0.7, 0.9],
                        help="thresholds the diagnostics report (default: %(default)s)")
    return parser.parse_args(argv)


def main(args):
    return {"negative-scenes": negative_scenes, "oracle-labels": oracle_labels}[args.command](args)


if __name__ == "__main__":
    main(parse_args())
