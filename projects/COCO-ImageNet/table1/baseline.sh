#!/usr/bin/env bash
# Table 1, "Positive (baseline)": R50-FPN on COCO train2017. Paper: 37.4 AP, 58.3 AP50, 40.5 AP75.
source "$(dirname "$0")/../common.sh"
teacher
