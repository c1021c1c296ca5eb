#!/usr/bin/env bash
# Table 3, Res50 FPN <- Res50 FPN, hint + kdc + kdr. Paper: 38.4 AP, 59.1 AP50, 41.9 AP75.
source "$(dirname "$0")/../common.sh"
teacher
train configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill.yaml "$OUTPUT_ROOT/table3/r50_hint_kdc_kdr"
