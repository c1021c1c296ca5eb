#!/usr/bin/env python
"""PU purification (paper Section 3.1, Algorithm 1 steps 1-2).

  purify_net.py train  [detectron2 options] : trains the PU classifier N_pu on L (positive) and U (unlabeled)
  purify_net.py select [options]            : scores every image of a pool and writes U^P

With no --config-file both use the built-in benchmark's classifier (configs/WildDigits/pu_R18_nnpu.yaml).

  tools/purify_net.py train
  tools/purify_net.py train PU.RISK upu OUTPUT_DIR output/wild_digits/pu_upu
  tools/purify_net.py select --topk 400
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
from detectron2.utils import comm  # noqa: E402
from tabulate import tabulate  # noqa: E402

from pudet.data import register_datasets  # noqa: E402
from pudet.data.build import register_pu_splits  # noqa: E402
from pudet.data.mappers import PUDatasetMapper  # noqa: E402
from pudet.engine import PUTrainer  # noqa: E402
from pudet.engine.purification import estimate_prior_from_splits  # noqa: E402
from pudet.evaluation import results_table, save_results  # noqa: E402
from pudet.pu import select as sel  # noqa: E402
from pudet.utils import atomic_write  # noqa: E402

DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "configs", "WildDigits", "pu_R18_nnpu.yaml"
)
logger = logging.getLogger("pudet.purify_net")


def setup(args):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(args.config_file or DEFAULT_CONFIG)
    cfg.merge_from_list(args.opts)
    if args.command == "select":
        args.weights = args.weights or os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        cfg.OUTPUT_DIR = args.output_dir or os.path.join(cfg.OUTPUT_DIR, "select")
    cfg.freeze()
    default_setup(cfg, args)
    register_datasets(cfg)
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
    model = PUTrainer.build_model(cfg)
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
    atomic_write(os.path.join(out, "unreadable.tsv"),
                     lambda f: f.writelines(["image_id\tfile_name\treason\n"] + [f"{i}\t{r}\n" for i, r in bad]))
    sel.plot_score_histogram(
        os.path.join(out, "score_histogram.png"), scores,
        None if truth is None else [truth[i] for i in ids.tolist()], title=f"PU scores on {dataset}",
    )
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in summary.items()]
    print(tabulate(rows, tablefmt="github", headers=["selection", ""]))
    print(f"Wrote {out}/scores.tsv (every image), selected.json (U^P), unreadable.tsv, score_histogram.png")
    return summary


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("train", "select"):
        raise SystemExit(__doc__ + "\nerror: the first argument must be 'train' or 'select'")
    command, rest = argv[0], argv[1:]
    parser = default_argument_parser()
    parser.prog = f"purify_net.py {command}"
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
    args.command = command
    return args


def main(args):
    return train(args) if args.command == "train" else select(args)


if __name__ == "__main__":
    args = parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
