#!/usr/bin/env bash
# Table 2, all of ImageNet (1.28M), thr 0.9. Paper: 37.0 AP, 1117k boxes.
source "$(dirname "$0")/../common.sh"
label_random 1281167 random_all
student random_all 0.9 1281167
