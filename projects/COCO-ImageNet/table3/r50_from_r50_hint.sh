#!/usr/bin/env bash
# Table 3, Res50 FPN <- Res50 FPN, hint only. Paper: 37.8 AP.
source "$(dirname "$0")/../common.sh"
teacher
train configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill.yaml "$OUTPUT_ROOT/table3/r50_hint" MODEL.PUDET.KDC_ON False MODEL.PUDET.KDR_ON False
