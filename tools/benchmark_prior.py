#!/usr/bin/env python
"""The class prior's estimate against the truth on the built-in benchmark, at several true priors (a measurement,
never a timed test).

  tools/benchmark_prior.py --teacher output/demo_s{seed}/teacher/model_final.pth [--seeds 0 1 2]
      [--pos-fractions 0.02 0.05 0.1 0.25 0.5] [--output-dir output/benchmark_prior]

For each benchmark seed and pool share of positives pi_p (the benchmark's ``--pos-fraction``; L, and so the
teacher, is the same at every pi_p), a cell runs ``purify_net.py train`` with the region head's config
(``PU.PRIOR -1``) into ``<output-dir>/s<seed>_p<pi_p>`` (skipped when it has finished there), then reads its
``prior.json`` (the estimate, its interval, Elkan-Noto) and measures against the pool's hidden truth the head
trained with the estimate (the run's ``model_final.pth``) and one trained on the same bags with the true prior:
the pool AUC and precision@K (K = n_l) of each; and the image head's estimates (BBE, Elkan-Noto on its pooled
features). Each cell is kept in ``cell.json`` beside the run; the tables are
over seeds: the estimate's mean and standard deviation, its mean error and mean absolute error, how often the
interval holds the truth, and the AUC and precision@K with the true and the estimated prior.

The teacher of each seed (``--teacher``, with ``{seed}``) is made by ``projects/WildDigits/run_demo.py --seed S
--stage teacher`` (``<its output>/teacher/model_final.pth``).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
import numpy as np
from tabulate import tabulate

from pudet.config import get_pudet_cfg
from pudet.data import register_datasets
from pudet.data.build import register_pu_splits
from pudet.engine.trainers import PUTrainer
from pudet.evaluation.pool_truth import load_pool_truth, positive_images
from pudet.evaluation.ranking import ranking_metrics
from pudet.modeling.region_pu import load_region_head, score_bags, train_region_head
from pudet.purification.bags import dataset_bags, positive_bags
from pudet.purification.prior import estimate_prior_from_splits
from pudet.purification.region_head import build_region_extractor, head_schedule, split_bags

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIG = os.path.join(REPO, "configs", "WildDigits", "pu_R18_region.yaml")
IMAGE_CONFIG = os.path.join(REPO, "configs", "WildDigits", "pu_R18_nnpu.yaml")


def benchmark_opts(seed: int, pos_fraction: float, args) -> list:
    return ["WILD_DIGITS.SEED", str(seed), "SEED", str(seed), "WILD_DIGITS.NUM_LABELED", str(args.num_labeled),
            "WILD_DIGITS.NUM_POOL", str(args.num_pool), "WILD_DIGITS.NUM_VAL", "300",
            "WILD_DIGITS.POS_FRACTION", f"{pos_fraction:g}", "WILD_DIGITS.KNOWN_CLASSES", "[0,1,2,3,4]",
            "MODEL.ROI_HEADS.NUM_CLASSES", "5", "MODEL.DEVICE", args.device]


def run_cell(seed: int, pos_fraction: float, args) -> dict:
    """One cell: the PU stage's region head with the estimated prior, then both heads against the truth."""
    out = os.path.join(args.output_dir, f"s{seed}_p{pos_fraction:g}")
    cell_file = os.path.join(out, "cell.json")
    if os.path.isfile(cell_file):
        with open(cell_file) as f:
            return json.load(f)
    start = time.perf_counter()
    opts = [*benchmark_opts(seed, pos_fraction, args), "PU.INIT_FROM_DETECTOR", args.teacher.format(seed=seed),
            "OUTPUT_DIR", out]
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "purify_net.py"), "train", "--config-file", CONFIG,
                    *opts], check=True)
    train_s = time.perf_counter() - start
    with open(os.path.join(out, "prior.json")) as f:
        prior = json.load(f)
    cfg = get_pudet_cfg(CONFIG, opts)
    register_datasets(cfg)
    extractor = build_region_extractor(cfg)  # the bags are read from the run's cache
    pool_name = cfg.PU.UNLABELED_DATASETS[0]
    pool, _ = dataset_bags(cfg, extractor, pool_name)
    train_p, _, train_u, _ = split_bags(cfg, positive_bags(cfg, extractor), pool)
    truth = positive_images(load_pool_truth(pool_name))
    positive = np.asarray([truth[int(i)] for i in pool.ids])
    true_prior = float(positive.mean())
    estimated_head, _ = load_region_head(os.path.join(out, "model_final.pth"))
    true_head = train_region_head(train_p, train_u, risk=cfg.PU.RISK, prior=true_prior, loss=cfg.PU.LOSS,
                                  schedule=head_schedule(cfg, extractor.detector.roi_heads.num_classes, seed),
                                  beta=cfg.PU.BETA, gamma=cfg.PU.GAMMA)
    k = args.num_labeled
    ranks = {name: ranking_metrics(score_bags(head, pool)[0], positive, k)
             for name, head in (("true", true_head), ("estimated", estimated_head))}
    image_cfg = get_pudet_cfg(IMAGE_CONFIG, opts[:-2])
    register_pu_splits(image_cfg)
    image = estimate_prior_from_splits(image_cfg, PUTrainer.build_model(image_cfg))
    low, high = prior["interval"]
    cell = {"seed": seed, "pos_fraction": pos_fraction, "true": true_prior, "estimate": prior["prior"],
            "estimator": prior["estimator"], "interval": [low, high], "interval_level": prior["interval_level"],
            "covered": bool(low <= true_prior <= high), "elkan-noto": prior["elkan-noto"],
            "image head bbe": image["bbe"], "image head elkan-noto": image["elkan-noto"],
            "AUC true prior": 100 * ranks["true"]["AUC"], "AUC estimated prior": 100 * ranks["estimated"]["AUC"],
            "P@K true prior": 100 * ranks["true"]["precision@K"],
            "P@K estimated prior": 100 * ranks["estimated"]["precision@K"],
            "seconds": time.perf_counter() - start, "train seconds": train_s}
    with open(cell_file, "w") as f:
        json.dump(cell, f, indent=1)
    return cell


def _mean_std(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def tables(cells) -> str:
    by_fraction = {}
    for c in cells:
        by_fraction.setdefault(c["pos_fraction"], []).append(c)
    rows, ranking = [], []
    for fraction, group in sorted(by_fraction.items()):
        error = [c["estimate"] - c["true"] for c in group]
        width = np.mean([c["interval"][1] - c["interval"][0] for c in group])
        image = [_mean_std([c[f"image head {k}"] for c in group]) for k in ("bbe", "elkan-noto")]
        rows.append([fraction, len(group), _mean_std([c["true"] for c in group]),
                     _mean_std([c["estimate"] for c in group]), f"{np.mean(error):+.3f}",
                     f"{np.mean(np.abs(error)):.3f}", f"{width:.3f}",
                     f"{sum(c['covered'] for c in group)} / {len(group)}",
                     _mean_std([c["elkan-noto"] for c in group]), *image])
        ranking.append([fraction] + [f"{np.mean([c[k] for c in group]):.1f}" for k in (
            "AUC true prior", "AUC estimated prior", "P@K true prior", "P@K estimated prior")])
    level = cells[0]["interval_level"]
    return "\n\n".join([
        tabulate(rows, headers=["pi_p (pos-fraction)", "seeds", "true pi_p", f"{cells[0]['estimator']} estimate",
                                "error", "abs error", f"{100 * level:g}% interval width", "interval holds truth",
                                "Elkan-Noto", "image head: BBE", "image head: Elkan-Noto"], tablefmt="github"),
        tabulate(ranking, headers=["pi_p", "AUC, true prior", "AUC, estimated", "precision@K, true prior",
                                   "precision@K, estimated"], tablefmt="github"),
        tabulate([[c["seed"], c["pos_fraction"], f"{c['true']:.3f}", f"{c['estimate']:.3f}",
                   f"[{c['interval'][0]:.3f}, {c['interval'][1]:.3f}]", f"{c['elkan-noto']:.3f}",
                   f"{c['seconds']:.0f}"] for c in cells],
                 headers=["seed", "pi_p", "true", "estimate", "interval", "Elkan-Noto", "cell s"], tablefmt="github"),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="the teacher of each seed, with {seed}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pos-fractions", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.25, 0.5])
    parser.add_argument("--num-labeled", type=int, default=200)
    parser.add_argument("--num-pool", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output-dir", default="output/benchmark_prior")
    args = parser.parse_args(argv)
    if len(args.seeds) == 1 and len(args.pos_fractions) == 1:
        cells = [run_cell(args.seeds[0], args.pos_fractions[0], args)]
    else:  # a process per cell: detectron2's catalog holds one benchmark spec per name
        cells = []
        for seed in args.seeds:
            for fraction in args.pos_fractions:
                cell_file = os.path.join(args.output_dir, f"s{seed}_p{fraction:g}", "cell.json")
                if not os.path.isfile(cell_file):
                    subprocess.run([sys.executable, __file__, "--teacher", args.teacher, "--seeds", str(seed),
                                    "--pos-fractions", f"{fraction:g}", "--num-labeled", str(args.num_labeled),
                                    "--num-pool", str(args.num_pool), "--device", args.device,
                                    "--output-dir", args.output_dir], check=True)
                with open(cell_file) as f:
                    cells.append(json.load(f))
    print(tables(cells))


if __name__ == "__main__":
    main()
