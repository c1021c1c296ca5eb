#!/usr/bin/env python
"""Jobs that the distributed tests start as a tool would (detectron2's ``launch``, ``--num-gpus N`` or
``--num-machines M``); each process writes what it saw under ``--out``.

* ``ddp``: the process group (backend, ranks) and a ``DistributedDataParallel`` made by the function
  ``DefaultTrainer`` calls, after one backward of a rank-dependent input (``rank<r>.json``);
* ``evaluate``: detectron2's ``inference_on_dataset`` with the evaluators pudet's trainers build (COCO on
  val, the pool's hidden-truth evaluator, the PU evaluator on the PU holdout), on predictions made from the
  ground truth with seeded noise (a stand-in model: the numbers are far from 0 and 100); rank 0 writes
  ``results.json``;
* ``fail``: the last rank opens a file that does not exist while the others wait for it in a barrier.

  python tests/dist_jobs.py --job ddp --out DIR --num-gpus 2 --dist-url auto
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pudet  # noqa: E402,F401  (pudet.compat first)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.engine import default_argument_parser, launch  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from torch import nn  # noqa: E402


def ddp(args):
    import torch.distributed as dist
    from detectron2.engine import defaults

    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)
    wrapped = defaults.create_ddp_model(model, broadcast_buffers=False)  # the name DefaultTrainer.__init__ calls
    rank = comm.get_rank()
    wrapped(torch.full((1, 3), float(rank + 1))).sum().backward()
    seen = {"backend": str(dist.get_backend()), "rank": rank, "world": comm.get_world_size(),
            "local rank": comm.get_local_rank(), "local size": comm.get_local_size(), "ddp": type(wrapped).__name__,
            "device_ids": wrapped.device_ids, "grad": model.weight.grad.tolist()}
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)


class TruthWithNoise(nn.Module):
    """Detections made from a COCO-format truth: each true box shifted by seeded noise, its class right 4 times
    in 5, with a score, plus one false box per image; the noise depends on the image id only."""

    def __init__(self, truth: dict):
        super().__init__()
        self.classes = {c: i for i, c in enumerate(sorted(c["id"] for c in truth["categories"]))}
        self.boxes = {}
        for a in truth["annotations"]:
            self.boxes.setdefault(a["image_id"], []).append(a)

    def forward(self, inputs):
        outputs = []
        for x in inputs:
            rng = np.random.default_rng(x["image_id"])
            h, w = x["height"], x["width"]
            truth = self.boxes.get(x["image_id"], [])
            boxes = [[bx, by, bx + bw, by + bh] for bx, by, bw, bh in (a["bbox"] for a in truth)]
            classes = [self.classes[a["category_id"]] if rng.random() < 0.8 else int(rng.integers(len(self.classes)))
                       for a in truth]
            fx, fy = rng.uniform(0, 0.7 * w), rng.uniform(0, 0.7 * h)
            boxes.append([fx, fy, fx + 0.2 * w, fy + 0.2 * h])
            classes.append(int(rng.integers(len(self.classes))))
            boxes = np.asarray(boxes, np.float32) + rng.normal(0, 2.0, (len(boxes), 4)).astype(np.float32)
            instances = Instances((h, w))
            instances.pred_boxes = Boxes(torch.as_tensor(boxes))
            instances.scores = torch.as_tensor(rng.uniform(0.2, 1.0, len(boxes)), dtype=torch.float32)
            instances.pred_classes = torch.as_tensor(classes, dtype=torch.int64)
            outputs.append({"instances": instances})
        return outputs


class NoisyPUScores(nn.Module):
    """PU scores: the truth (1 for a labeled or a positive pool image, else 0) plus seeded noise."""

    def __init__(self, positive: dict):
        super().__init__()
        self.positive = positive

    def forward(self, inputs):
        return [{"pu_score": torch.tensor(float(x["pu_label"] == 1 or self.positive.get(x["image_id"], False))
                                          + np.random.default_rng(x["image_id"]).normal(0, 0.8))} for x in inputs]


def evaluate(args):
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog, build_detection_test_loader
    from detectron2.evaluation import inference_on_dataset

    from pudet.data import register_datasets
    from pudet.data.build import register_pu_splits
    from pudet.engine import DetectionTrainer, PUTrainer
    from pudet.evaluation.pool_truth import load_pool_truth, positive_images
    from tests.helpers import WD_CONFIGS, tiny_opts

    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(os.path.join(WD_CONFIGS, "pu_R18_nnpu.yaml"))
    cfg.merge_from_list([*tiny_opts(args.tiny_root), "PU.PRIOR", "0.3", "PU.INPUT_SIZE", "32", "PU.HOLDOUT_FRACTION",
                         "0.5", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", args.out])
    register_datasets(cfg)
    register_pu_splits(cfg)
    results = {}
    for name in ("wild_digits_val", "wild_digits_pool"):
        meta = MetadataCatalog.get(name)
        with open(meta.get("truth_json", None) or meta.json_file) as f:
            model = TruthWithNoise(json.load(f))
        evaluator = DetectionTrainer.build_evaluator(cfg, name, os.path.join(args.out, "inference", name))
        results[name] = inference_on_dataset(model, build_detection_test_loader(cfg, name), evaluator)
    model = NoisyPUScores(positive_images(load_pool_truth("wild_digits_pool")))
    results["pu_holdout"] = inference_on_dataset(model, PUTrainer.build_test_loader(cfg, "pu_holdout"),
                                                 PUTrainer.build_evaluator(cfg, "pu_holdout"))
    if comm.is_main_process():
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f)


def fail(args):
    if comm.get_rank() == comm.get_world_size() - 1:
        with open(os.path.join(args.out, "missing.json")) as f:
            json.load(f)
    comm.synchronize()


def main(args):
    {"ddp": ddp, "evaluate": evaluate, "fail": fail}[args.job](args)


if __name__ == "__main__":
    parser = default_argument_parser()
    parser.add_argument("--job", choices=("ddp", "evaluate", "fail"), required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny-root", default="")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
