#!/usr/bin/env bash
# Table 1, "+ PU selected", n_u 118k, thr 0.7. Paper: 39.3 AP, 296k boxes.
source "$(dirname "$0")/../common.sh"
label_pu 118287 pu_118k
student pu_118k 0.7 118287
