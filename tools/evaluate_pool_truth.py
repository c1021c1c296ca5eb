#!/usr/bin/env python
"""Evaluation against a pool's hidden truth (the built-in benchmark's pool), measured after the fact: what no
purifier may read. pudet.evaluation.pool_truth is the only reader of the truth.

  tools/evaluate_pool_truth.py selection --selection output/demo/pu_region/select \
      --output-dir output/demo/pool_truth/select_region --config-file configs/WildDigits/pu_R18_region.yaml \
      PU.INIT_FROM_DETECTOR output/demo/teacher/model_final.pth
      a selection of purify_net.py select (its folder) against the pool's truth: the AUC, precision@K and recall@K
      of its scores at K = its size and the pool's positive fraction; for a region head's selection (its config
      and detector given, as to select), also the head beside what the same region features allow (uPU, naive
      PN, the teacher's confidence, a true-label oracle, random). Writes selection.json, scores.tsv (with the
      truth) and score_histogram.png (coloured by the truth)
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
each command writes into --output-dir (OUTPUT_DIR), with its config and log, as every pudet tool does. Both read
files and run no model: one process, no launch flags.
"""
import argparse
import json
import os

import numpy as np

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
from pudet.data.datasets.wild_digits import TEACHER_CONFIG
from pudet.engine import config_argument_parser, setup_cfg
from pudet.engine.pseudo_label import write_pseudo_labels
from pudet.evaluation import save_results
from pudet.evaluation.plotting import plot_score_histogram
from pudet.evaluation.pool_truth import (
    load_pool_truth,
    negative_scene_boxes,
    oracle_pseudo_labels,
    oracle_selection,
    positive_images,
)
from pudet.evaluation.pseudo_labels import label_diagnostics
from pudet.evaluation.purifier import purifier_comparison, selection_metrics
from pudet.evaluation.results import selection_table
from pudet.purification.region_head import head_schedule, score_pool_regions
from pudet.purification.selection_files import read_scores, write_scores

# the datasets each sub-command reads, which must be registered (the config may name others, e.g. a PU config's
# DATASETS.TEST, which only its training registers)
DATASET_KEYS = {"selection": ("PU.LABELED_DATASETS", "PU.UNLABELED_DATASETS"), "negative-scenes": (),
                "oracle-labels": ("DATASETS.TRAIN", "PU.UNLABELED_DATASETS")}


def _setup(args):
    def output_dir(cfg):
        cfg.OUTPUT_DIR = args.output_dir

    return setup_cfg(args, TEACHER_CONFIG, edit=output_dir, dataset_keys=DATASET_KEYS[args.command])


def selection(args):
    cfg = _setup(args)
    with open(os.path.join(args.selection, "selected.json")) as f:
        summary = json.load(f)["summary"]
    dataset = summary["dataset"]
    truth = load_pool_truth(dataset)
    if truth is None:
        raise ValueError(f"{dataset} has no hidden truth (metadata.truth_json) to evaluate the selection against")
    truth = positive_images(truth)
    ids, scores, file_names = read_scores(os.path.join(args.selection, "scores.tsv"))
    k = summary["selected"]
    results = {"selection": args.selection, "dataset": dataset, **selection_metrics(ids, scores, k, truth)}
    if summary.get("head", "").startswith("region"):
        scored = score_pool_regions(cfg, summary["weights"], dataset)
        if not np.array_equal(scored["pool"].ids, ids):
            raise ValueError(f"{args.selection} was not scored on the bags this config reads")
        risk, classes = scored["info"]["risk"], scored["num_classes"]
        results["comparison"] = purifier_comparison(
            scored["positive"], scored["pool"], truth, head_scores=scores, head_name=f"region head, {risk} "
            "(this selection)", prior=scored["info"]["prior"], loss=cfg.PU.LOSS,
            schedule=head_schedule(cfg, classes), num_classes=classes, k=k)
    save_results(results, os.path.join(cfg.OUTPUT_DIR, "selection.json"))
    write_scores(os.path.join(cfg.OUTPUT_DIR, "scores.tsv"), ids, scores, file_names, truth)
    plot_score_histogram(os.path.join(cfg.OUTPUT_DIR, "score_histogram.png"), scores, [truth[i] for i in ids.tolist()],
                         title=f"scores of {args.selection} on {dataset}", xlabel="score")
    print(selection_table(results))
    print(f"Wrote {cfg.OUTPUT_DIR}/selection.json, scores.tsv, score_histogram.png")
    return results


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
    base = config_argument_parser()
    chosen = commands.add_parser("selection", parents=[base], conflict_handler="resolve",
                                 help="a selection of purify_net.py select against the pool's truth")
    chosen.add_argument("--selection", required=True, help="the folder purify_net.py select wrote (selected.json, "
                        "scores.tsv)")
    chosen.add_argument("--output-dir", required=True, help="where selection.json, scores.tsv and "
                        "score_histogram.png go")
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
    return {"selection": selection, "negative-scenes": negative_scenes,
            "oracle-labels": oracle_labels}[args.command](args)


if __name__ == "__main__":
    main(parse_args())
