#!/usr/bin/env bash
# Table 1, "+ Randomly selected", n_u 236k, thr 0.5. Paper: 37.4 AP, 455k boxes.
source "$(dirname "$0")/../common.sh"
label_random 236000 random_236k
student random_236k 0.5 236000
