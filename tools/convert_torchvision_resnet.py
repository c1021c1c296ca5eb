#!/usr/bin/env python
"""Converts a torchvision ResNet checkpoint (e.g. ImageNet-pretrained ResNet-18, which detectron2's model zoo does
not have) into a detectron2 weights file for MODEL.WEIGHTS: the bottom-up of configs/COCO/faster_rcnn_R_18_FPN_*.yaml,
which read images as torchvision does (RGB, torchvision's mean and std). detectron2's own
tools/convert-torchvision-to-d2.py (in its repository, not installed with it) writes the same names.

  python -c "import torch, torchvision as tv; torch.save(tv.models.resnet18(weights='DEFAULT').state_dict(), 'r18.pth')"
  tools/convert_torchvision_resnet.py r18.pth R-18.pkl
  tools/train_net.py --num-gpus 8 --config-file configs/COCO/faster_rcnn_R_18_FPN_1x_baseline.yaml \\
      MODEL.WEIGHTS R-18.pkl

The input is a state_dict (or a checkpoint holding one under "state_dict" or "model"), such as the file torchvision
downloads into ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth.
"""
import argparse

import torch

from pudet.modeling.checkpoint import save_torchvision_resnet


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a torchvision ResNet state_dict (.pth)")
    p.add_argument("output", help="the detectron2 weights file to write (.pkl)")
    args = p.parse_args(argv)
    state = torch.load(args.input, map_location="cpu")
    for key in ("state_dict", "model"):
        state = state.get(key, state)
    n = save_torchvision_resnet(state, args.output)
    print(f"Wrote {args.output}: {n} tensors of the ResNet bottom-up (fc dropped); use it as MODEL.WEIGHTS with "
          "INPUT.FORMAT RGB and torchvision's PIXEL_MEAN / PIXEL_STD")


if __name__ == "__main__":
    main()
