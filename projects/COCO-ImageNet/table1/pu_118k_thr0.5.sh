#!/usr/bin/env bash
# Table 1, "+ PU selected", n_u 118k, thr 0.5. Paper: 39.4 AP, 444k boxes.
source "$(dirname "$0")/../common.sh"
label_pu 118287 pu_118k
student pu_118k 0.5 118287
