#!/usr/bin/env bash
# Table 3, Res50 FPN <- Res50 FPN, hint + kdc. Paper: 38.2 AP.
source "$(dirname "$0")/../common.sh"
teacher
"$PYTHON" tools/train_net.py "${LAUNCH[@]}" --resume --config-file configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill.yaml MODEL.PUDET.KDR_ON False OUTPUT_DIR output/coco/table3/r50_hint_kdc
