#!/usr/bin/env bash
# Table 3, Res50 FPN <- Res50 FPN, hint + kdc + kdr. Paper: 38.4 AP, 59.1 AP50, 41.9 AP75.
# The same run as Table 1's self-distillation row (table1/self_distillation.sh): trained once, in
# $OUTPUT_ROOT/student_R50_FPN_1x_self_distill, by whichever of the two scripts runs first.
source "$(dirname "$0")/../common.sh"
self_distillation
