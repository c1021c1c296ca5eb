#!/usr/bin/env bash
# Table 3, Res18 FPN baseline on train2017. Paper: 33.4 AP, 53.6 AP50, 35.9 AP75. Needs R18_WEIGHTS.
source "$(dirname "$0")/../common.sh"
train configs/COCO/faster_rcnn_R_18_FPN_1x_baseline.yaml "$OUTPUT_ROOT/baseline_R18_FPN_1x" MODEL.WEIGHTS "${R18_WEIGHTS:?set R18_WEIGHTS to an ImageNet-pretrained R-18 in detectron2 format}"
