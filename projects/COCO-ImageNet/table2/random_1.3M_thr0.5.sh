#!/usr/bin/env bash
# Table 2, all of ImageNet (1.28M), thr 0.5. Paper: 36.6 AP, 3287k boxes.
source "$(dirname "$0")/../common.sh"
label_random 1281167 random_all
student random_all 0.5 1281167
