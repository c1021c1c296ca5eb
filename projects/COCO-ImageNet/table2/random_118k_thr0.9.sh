#!/usr/bin/env bash
# Table 2, randomly selected 118k, thr 0.9. Paper: 37.9 AP, 103k boxes.
source "$(dirname "$0")/../common.sh"
label_random 118287 random_118k
student random_118k 0.9 118287
