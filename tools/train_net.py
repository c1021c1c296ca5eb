#!/usr/bin/env python
"""Trains or evaluates a detector with pudet's datasets and evaluators, in detectron2's style.

With no --config-file it trains the teacher of the built-in wild-digits benchmark (CPU, minutes).

  tools/train_net.py                                          # benchmark teacher, then evaluation
  tools/train_net.py --eval-only MODEL.WEIGHTS output/wild_digits/teacher/model_final.pth
  tools/train_net.py --num-gpus 8 --config-file configs/COCO/faster_rcnn_R_50_FPN_1x_teacher.yaml

The final evaluation is printed as a table and saved to OUTPUT_DIR/eval_results.json.
"""
import os

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm

from pudet.data.datasets import resolve_pretrained_weights
from pudet.data.datasets.wild_digits import TEACHER_CONFIG
from pudet.engine import DetectionTrainer, setup_cfg
from pudet.evaluation import results_table, save_results


def setup(args):
    # the benchmark's glyph-pretrained backbone, when WILD_DIGITS.PRETRAIN.ENABLED and MODEL.WEIGHTS is empty
    return setup_cfg(args, TEACHER_CONFIG, edit=resolve_pretrained_weights)


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = DetectionTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = DetectionTrainer.test(cfg, model)
    else:
        trainer = DetectionTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()
    if comm.is_main_process() and results:
        save_results(results, os.path.join(cfg.OUTPUT_DIR, "eval_results.json"))
        print(results_table(results))
    return results


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
