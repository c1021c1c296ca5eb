#!/usr/bin/env bash
# Table 3, Res18 FPN <- Res50 FPN, hint + kdc. Paper: 35.3 AP.
source "$(dirname "$0")/../common.sh"
teacher
train configs/COCO/faster_rcnn_R_18_FPN_1x_self_distill_R50.yaml "$OUTPUT_ROOT/table3/r18_hint_kdc" MODEL.WEIGHTS "${R18_WEIGHTS:?set R18_WEIGHTS to an ImageNet-pretrained R-18 in detectron2 format}" MODEL.PUDET.KDR_ON False
