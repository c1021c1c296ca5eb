#!/usr/bin/env bash
# Table 1, "+ Randomly selected", n_u 236k, thr 0.9. Paper: 38.2 AP, 182k boxes.
source "$(dirname "$0")/../common.sh"
label_random 236000 random_236k
student random_236k 0.9 236000
