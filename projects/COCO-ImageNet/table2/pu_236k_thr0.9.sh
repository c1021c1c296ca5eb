#!/usr/bin/env bash
# Table 2, PU selected 236k, thr 0.9. Paper: 39.3 AP, 299k boxes.
source "$(dirname "$0")/../common.sh"
label_pu 236000 pu_236k
student pu_236k 0.9 236000
