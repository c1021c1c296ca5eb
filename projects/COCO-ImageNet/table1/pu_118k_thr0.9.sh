#!/usr/bin/env bash
# Table 1, "+ PU selected", n_u 118k, thr 0.9. Paper: 39.0 AP, 175k boxes.
source "$(dirname "$0")/../common.sh"
label_pu 118287 pu_118k
student pu_118k 0.9 118287
