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
  tools/purify_net.py label --selection output/wild_digits/pu_nnpu/select/selected.json
  tools/purify_net.py label --random 400 --seed 0 --output-dir output/wild_digits/teacher/pseudo_random
  tools/purify_net.py gallery output/wild_digits/teacher/pseudo_random/pseudo_labels.json \
      output/wild_digits/teacher/pseudo_labels/pseudo_labels.json --titles random PU-selected
  tools/purify_net.py select --num-gpus 8 --config-file configs/PU/pu_R50_coco_imagenet.yaml
"""
import json
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pudet  # noqa: E402  (applies pudet.compat before detectron2 is used)
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from tabulate import tabulate  # noqa: E402

from pudet.data import register_datasets  # noqa: E402
from pudet.data.build import register_pu_splits  # noqa: E402
from pudet.data.chunked import write_unreadable  # noqa: E402
from pudet.data.mappers import InferenceMapper, PUDatasetMapper  # noqa: E402
from pudet.engine import PUTrainer  # noqa: E402
from pudet.engine.pseudo_label import (  # noqa: E402
    label_images,
    merge_pseudo_labels,
    random_subset,
    selection_dicts,
    teacher_categories,
    write_pseudo_labels,
)
from pudet.engine.purification import estimate_prior_from_splits  # noqa: E402
from pudet.evaluation import results_table, save_results  # noqa: E402
from pudet.evaluation.pseudo_labels import (  # noqa: E402
    box_precision_recall,
    plot_class_counts,
    plot_gallery,
    pseudo_label_stats,
)
from pudet.pu import select as sel  # noqa: E402

DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "configs", "WildDigits", "pu_R18_nnpu.yaml"
)
DEFAULT_TEACHER_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "configs", "WildDigits", "faster_rcnn_R18_FPN_teacher.yaml"
)
logger = logging.getLogger("pudet.purify_net")


def setup(args):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(args.config_file or (DEFAULT_TEACHER_CONFIG if args.command == "label" else DEFAULT_CONFIG))
    cfg.merge_from_list(args.opts)
    if args.command in ("select", "label"):
        args.weights = args.weights or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        cfg.OUTPUT_DIR = args.output_dir or os.path.join(cfg.OUTPUT_DIR, "select" if args.command == "select" else "pseudo_labels")
    if args.command == "label":
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.min_score
    cfg.freeze()
    default_setup(cfg, args)
    register_datasets(cfg)
    if args.command == "train":
        register_pu_splits(cfg)
    return cfg


def resolve_prior(cfg):
    """PU.PRIOR, or when it is -1 the estimate (computed once on rank 0, kept in OUTPUT_DIR/prior.json so
    that --resume and the other ranks use the same value)."""
    if cfg.PU.PRIOR > 0:
        return cfg
    path = os.path.join(cfg.OUTPUT_DIR, "prior.json")
    if comm.is_main_process() and not os.path.isfile(path):
        estimate = estimate_prior_from_splits(cfg, PUTrainer.build_model(cfg))
        save_results(estimate, path)
    comm.synchronize()
    with open(path) as f:
        estimate = json.load(f)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.PU.PRIOR = estimate["prior"]
    cfg.freeze()
    return cfg


def train(args):
    cfg = resolve_prior(setup(args))
    if args.eval_only:
        model = PUTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = PUTrainer.test(cfg, model)
    else:
        trainer = PUTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        results = getattr(trainer, "_last_eval_results", {})
    if comm.is_main_process():
        results = {"prior": {"pi_p": {"used": cfg.PU.PRIOR}}, **results}
        save_results(results, os.path.join(cfg.OUTPUT_DIR, "eval_results.json"))
        print(results_table(results))
    return results


def select(args):
    cfg = setup(args)
    model = build_model(cfg)  # not PUTrainer's: its PU.INIT_FROM_DETECTOR is overwritten by the weights anyway
    if not os.path.isfile(args.weights):
        raise FileNotFoundError(f"PU classifier weights {args.weights} not found: train it first or pass --weights")
    DetectionCheckpointer(model).load(args.weights)
    dataset = args.dataset or cfg.PU.UNLABELED_DATASETS[0]
    dicts = DatasetCatalog.get(dataset)
    out = cfg.OUTPUT_DIR
    sel.score_pool(
        model, dicts, out, mapper=PUDatasetMapper(cfg, False), batch_size=args.batch_size,
        num_workers=cfg.DATALOADER.NUM_WORKERS if args.num_workers is None else args.num_workers,
        chunk_size=args.chunk_size, rank=comm.get_rank(), world_size=comm.get_world_size(),
        progress=comm.is_main_process(),
    )
    comm.synchronize()
    if not comm.is_main_process():
        return None
    return finish_selection(cfg, args, dataset, dicts, out)


def finish_selection(cfg, args, dataset, dicts, out):
    ids, scores, bad = sel.merge_chunks(out, len(dicts), args.chunk_size)
    file_names = {d["image_id"]: d["file_name"] for d in dicts}
    truth = None
    truth_json = MetadataCatalog.get(dataset).get("truth_json", None)
    if truth_json:
        with open(truth_json) as f:
            truth = {im["id"]: bool(im["positive"]) for im in json.load(f)["images"]}
    topk = None
    if args.threshold is None:
        topk = args.topk if args.topk is not None else sum(len(DatasetCatalog.get(n)) for n in cfg.PU.LABELED_DATASETS)
    chosen = sel.select_top(ids, scores, topk=topk, threshold=args.threshold)
    summary = {
        "dataset": dataset, "weights": args.weights, "pool images": len(dicts), "scored": len(ids),
        "unreadable": len(bad), "rule": f"top-{topk}" if topk is not None else f"score >= {args.threshold}",
        "selected": len(chosen), "lowest selected score": float(scores[chosen[-1]]) if len(chosen) else None,
    }
    if truth is not None:
        positive = [truth[i] for i in ids.tolist()]
        summary.update({k: v for k, v in sel.ranking_metrics(scores, positive, len(chosen)).items() if k != "K"})
        summary["pool positive fraction"] = sum(positive) / len(positive)
    sel.write_scores(os.path.join(out, "scores.tsv"), ids, scores, file_names, truth)
    sel.write_selection(os.path.join(out, "selected.json"), ids, scores, chosen, file_names, summary)
    write_unreadable(os.path.join(out, "unreadable.tsv"), bad)
    sel.plot_score_histogram(
        os.path.join(out, "score_histogram.png"), scores,
        None if truth is None else [truth[i] for i in ids.tolist()], title=f"PU scores on {dataset}",
    )
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in summary.items()]
    print(tabulate(rows, tablefmt="github", headers=["selection", ""]))
    print(f"Wrote {out}/scores.tsv (every image), selected.json (U^P), unreadable.tsv, score_histogram.png")
    return summary


def label(args):
    cfg = setup(args)
    if not os.path.isfile(args.weights):
        raise FileNotFoundError(f"teacher weights {args.weights} not found: train it with tools/train_net.py or pass --weights")
    if args.selection:
        dicts = selection_dicts(args.selection)
        with open(args.selection) as f:
            dataset = json.load(f)["summary"]["dataset"]
        source = f"selection {args.selection}"
    else:
        dataset = args.dataset or cfg.PU.UNLABELED_DATASETS[0]
        dicts = DatasetCatalog.get(dataset)
        source = f"dataset {dataset}"
        if args.random:
            dicts = random_subset(dicts, args.random, args.seed)
            source = f"{args.random} random images of {dataset} (seed {args.seed})"
    model = build_model(cfg)
    DetectionCheckpointer(model).load(args.weights)
    categories = teacher_categories(cfg.DATASETS.TRAIN[0])
    out = cfg.OUTPUT_DIR
    label_images(
        model, dicts, out, mapper=InferenceMapper(cfg), category_ids=[c["id"] for c in categories],
        batch_size=args.batch_size, chunk_size=args.chunk_size,
        num_workers=cfg.DATALOADER.NUM_WORKERS if args.num_workers is None else args.num_workers,
        rank=comm.get_rank(), world_size=comm.get_world_size(), progress=comm.is_main_process(),
    )
    comm.synchronize()
    if not comm.is_main_process():
        return None
    info = {"teacher_config": args.config_file or DEFAULT_TEACHER_CONFIG, "teacher_weights": args.weights,
            "source": source, "dataset": dataset, "min_score": args.min_score}
    coco, bad = merge_pseudo_labels(out, len(dicts), args.chunk_size, categories, info)
    write_pseudo_labels(os.path.join(out, "pseudo_labels.json"), coco)
    write_unreadable(os.path.join(out, "unreadable.tsv"), bad)
    return finish_labels(cfg, args, coco, dataset, len(bad), out)


def finish_labels(cfg, args, coco, dataset, n_bad, out):
    """Diagnostics of a pseudo-label file: per tau, boxes kept (per class beside L's), and against the hidden
    truth where the source pool has one, the boxes' precision/recall. Prints the table, writes json + PNG."""
    from collections import Counter

    labeled = [a for n in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(n) for a in d.get("annotations", [])]
    names = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).thing_classes
    labeled_counts = dict(Counter(names[a["category_id"]] for a in labeled))
    rows = pseudo_label_stats(coco, args.taus)
    truth_json = MetadataCatalog.get(dataset).get("truth_json", None)
    if truth_json:
        with open(truth_json) as f:
            truth = json.load(f)
        for row in rows:
            row.update({k: v for k, v in box_precision_recall(coco, truth, row["tau"]).items()
                        if k in ("precision", "recall", "hidden boxes")})
    diagnostics = {"info": coco["info"], "unreadable": n_bad, "labeled boxes per class": labeled_counts, "taus": rows}
    save_results(diagnostics, os.path.join(out, "diagnostics.json"))
    plot_class_counts(os.path.join(out, "class_counts.png"), rows, labeled_counts,
                      title=f"pseudo-boxes per class: {coco['info']['source']}")
    headers = ["tau", "images", "images with boxes", "boxes", "boxes/img"] + (
        ["box precision", "box recall"] if truth_json else [])
    table = [[r["tau"], r["images"], r["images with boxes"], r["boxes"], f"{r['boxes/img']:.2f}"]
             + ([f"{r['precision']:.3f}", f"{r['recall']:.3f}"] if truth_json else []) for r in rows]
    print(f"Pseudo-labels of {coco['info']['source']} ({n_bad} unreadable images skipped)")
    print(tabulate(table, headers=headers, tablefmt="github"))
    print(f"Wrote {out}/pseudo_labels.json, diagnostics.json, class_counts.png, unreadable.tsv")
    return diagnostics


def gallery(args):
    panels = []
    for path, title in zip(args.files, args.titles or [os.path.basename(os.path.dirname(p)) for p in args.files]):
        with open(path) as f:
            panels.append((title, json.load(f)))
    plot_gallery(args.output, panels, tau=args.tau, num_images=args.num_images, seed=args.seed)
    print(f"Wrote {args.output}")


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("train", "select", "label", "gallery"):
        raise SystemExit(__doc__ + "\nerror: the first argument must be 'train', 'select', 'label' or 'gallery'")
    command, rest = argv[0], argv[1:]
    if command == "gallery":
        import argparse

        parser = argparse.ArgumentParser(prog="purify_net.py gallery", description="Figure 3: pseudo-labels side by side")
        parser.add_argument("files", nargs="+", help="pseudo-label files (one column each)")
        parser.add_argument("--titles", nargs="+", default=None, help="column titles (default: the files' folders)")
        parser.add_argument("--output", default="gallery.png", help="PNG to write (default: %(default)s)")
        parser.add_argument("--tau", type=float, default=0.5, help="draw boxes scoring at least this (default: %(default)s)")
        parser.add_argument("--num-images", type=int, default=6, help="images per column (default: %(default)s)")
        parser.add_argument("--seed", type=int, default=0, help="which images are drawn (default: %(default)s)")
        args = parser.parse_args(rest)
        if args.titles and len(args.titles) != len(args.files):
            parser.error("give one title per file")
        args.command = command
        return args
    parser = default_argument_parser()
    parser.prog = f"purify_net.py {command}"
    if command == "label":
        parser.add_argument("--weights", default="", help="teacher checkpoint (default: the teacher config's OUTPUT_DIR/model_final.pth)")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--selection", default="", help="a selected.json written by 'select' (U^P)")
        source.add_argument("--dataset", default="", help="a registered unlabeled dataset (default: PU.UNLABELED_DATASETS[0])")
        parser.add_argument("--random", type=int, default=0, help="label K random images of the dataset (U^R)")
        parser.add_argument("--seed", type=int, default=0, help="seed of --random (default: %(default)s)")
        parser.add_argument("--output-dir", default="", help="where the pseudo-labels go (default: OUTPUT_DIR/pseudo_labels)")
        parser.add_argument("--min-score", type=float, default=0.05, help="score floor of kept detections (default: %(default)s)")
        parser.add_argument("--taus", type=float, nargs="+", default=[0.5, 0.7, 0.9], help="thresholds to report (default: %(default)s)")
        parser.add_argument("--batch-size", type=int, default=8, help="images per forward (default: %(default)s)")
        parser.add_argument("--chunk-size", type=int, default=1024, help="images per resumable chunk (default: %(default)s)")
        parser.add_argument("--num-workers", type=int, default=None, help="loader workers (default: DATALOADER.NUM_WORKERS)")
    if command == "select":
        parser.add_argument("--weights", default="", help="PU classifier checkpoint (default: OUTPUT_DIR/model_final.pth)")
        parser.add_argument("--dataset", default="", help="registered pool to score (default: PU.UNLABELED_DATASETS[0])")
        parser.add_argument("--output-dir", default="", help="where scores and U^P go (default: OUTPUT_DIR/select)")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--topk", type=int, default=None, help="keep the K best images (default: n_l, the labeled set's size)")
        group.add_argument("--threshold", type=float, default=None, help="keep every image scoring at least this")
        parser.add_argument("--batch-size", type=int, default=32, help="images per forward (default: %(default)s)")
        parser.add_argument("--chunk-size", type=int, default=4096, help="images per resumable chunk (default: %(default)s)")
        parser.add_argument("--num-workers", type=int, default=None, help="loader workers (default: DATALOADER.NUM_WORKERS)")
    args = parser.parse_args(rest)
    if command == "label" and args.random and args.selection:
        parser.error("--random draws from a dataset, not from a --selection")
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
