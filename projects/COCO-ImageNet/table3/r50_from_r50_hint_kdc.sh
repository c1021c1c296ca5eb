#!/usr/bin/env bash
# Table 3, Res50 FPN <- Res50 FPN, hint + kdc. Paper: 38.2 AP.
source "$(dirname "$0")/../common.sh"
teacher
train configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill.yaml "$OUTPUT_ROOT/table3/r50_hint_kdc" MODEL.PUDET.KDR_ON False
