# Shared by the row scripts: run them from anywhere; commands run in the repository root.
#
#   ROW.sh [KEY VALUE ...] [--teacher KEY VALUE ...] [--pu KEY VALUE ...] [--label KEY VALUE ...]
#          [--student KEY VALUE ...]
#
# Config overrides, after the script's own (so they win): the pairs before any section go to every step (e.g.
# MODEL.DEVICE cpu, or an architecture change); those after --teacher to the teacher's training only, --pu to
# the PU classifier's training and select, --label to label, --student to every other training (the students
# and Table 3's R18 baseline), e.g. --student SOLVER.IMS_PER_BATCH 16 SOLVER.BASE_LR 0.02.
#
# A step's folder records its command (launch flags aside) in recipe_step*.txt: a step whose folder was made
# with other settings stops with both commands instead of reusing or resuming it.
#
# Environment:
#   NUM_GPUS      processes (GPUs) per machine (default 8; 1 with MODEL.DEVICE cpu, the only value it allows)
#   NUM_MACHINES, MACHINE_RANK, DIST_URL   several machines: the same script on each, DIST_URL=tcp://HOST0:PORT
#   OUTPUT_ROOT   where every step writes (default output/coco)
#   PYTHON        the interpreter (default: the repository's .venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/coco}

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

OPTS=() TEACHER_OPTS=() PU_OPTS=() LABEL_OPTS=() STUDENT_OPTS=()
section=OPTS
for word in "$@"; do
    case $word in
        --teacher) section=TEACHER_OPTS ;;
        --pu) section=PU_OPTS ;;
        --label) section=LABEL_OPTS ;;
        --student) section=STUDENT_OPTS ;;
        --*) die "unknown section $word: the sections are --teacher, --pu, --label and --student" ;;
        *) eval "$section+=(\"\$word\")" ;;
    esac
done
DEVICE=cuda
for section in OPTS TEACHER_OPTS PU_OPTS LABEL_OPTS STUDENT_OPTS; do
    eval 'words=("${'"$section"'[@]}")'
    (( ${#words[@]} % 2 == 0 )) || die "overrides are KEY VALUE pairs, got an odd number of words: ${words[*]}"
    for (( i = 0; i < ${#words[@]}; i += 2 )); do
        [ "${words[i]}" = MODEL.DEVICE ] && DEVICE=${words[i+1]}
    done
done
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
(( NUM_MACHINES == 1 )) || [ -n "${DIST_URL:-}" ] || die "NUM_MACHINES=$NUM_MACHINES needs DIST_URL=tcp://HOST0:PORT \
(the same on every machine; HOST0 runs MACHINE_RANK=0)"
if [[ $DEVICE == cpu* ]]; then
    NUM_GPUS=${NUM_GPUS:-1}
    (( NUM_GPUS == 1 && NUM_MACHINES == 1 )) || die "MODEL.DEVICE $DEVICE runs one process on one machine: \
NUM_GPUS=1 and NUM_MACHINES=1 (got NUM_GPUS=$NUM_GPUS, NUM_MACHINES=$NUM_MACHINES)"
else
    NUM_GPUS=${NUM_GPUS:-8}
    # detectron2's launch would spawn NUM_GPUS processes that each fail on their own: check first
    found=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())") || die "cannot run $PYTHON"
    (( found >= NUM_GPUS )) || die "NUM_GPUS=$NUM_GPUS but torch sees $found CUDA GPU(s) on $(hostname). \
Set NUM_GPUS to at most $found, or run on the CPU (one process): $0 ${OPTS[*]} MODEL.DEVICE cpu"
fi
LAUNCH=(--num-gpus "$NUM_GPUS" --num-machines "$NUM_MACHINES" --machine-rank "$MACHINE_RANK")
[ -n "${DIST_URL:-}" ] && LAUNCH+=(--dist-url "$DIST_URL")

TEACHER_CFG=configs/COCO/faster_rcnn_R_50_FPN_1x_teacher.yaml
TEACHER_DIR=$OUTPUT_ROOT/teacher_R50_FPN_1x
TEACHER=$TEACHER_DIR/model_final.pth
PU_CFG=configs/PU/pu_R50_coco_imagenet.yaml
PU_DIR=$OUTPUT_ROOT/pu_R50_nnpu
PU=$PU_DIR/model_final.pth
N_L=118287

# guard FILE TOOL_ARGS...: FILE (in a step's output folder) records the step's command; a folder made with
# another command is refused, finished (it would be reused) or not (it would be resumed)
guard() {
    local file=$1
    shift
    local now
    now=$(printf '%q ' "$@")
    if [ -f "$file" ]; then
        [ "$(cat "$file")" = "$now" ] || die "$(dirname "$file") was made with other settings:
  then: $(cat "$file")
  now:  $now
Remove that folder, or set OUTPUT_ROOT to another one"
    else
        mkdir -p "$(dirname "$file")"
        printf '%s' "$now" > "$file"
    fi
}

# train CONFIG OUTPUT_DIR [KEY VALUE ...]: tools/train_net.py (resumed), distilling from $TEACHER where the
# config distils, with the common then the --student overrides; skipped when it has written model_final.pth
train() {
    local config=$1 out=$2
    shift 2
    train_step "$config" "$out" "$@" "${OPTS[@]}" "${STUDENT_OPTS[@]}"
}
train_step() {
    local config=$1 out=$2
    shift 2
    local args=(tools/train_net.py --config-file "$config" MODEL.PUDET.TEACHER_WEIGHTS "$TEACHER" "$@"
                OUTPUT_DIR "$out")
    guard "$out/recipe_step.txt" "${args[@]}"
    [ -f "$out/model_final.pth" ] || "$PYTHON" "${args[0]}" "${LAUNCH[@]}" --resume "${args[@]:1}"
}

# step 1: the teacher D_t on COCO train2017 (skipped when done)
teacher() {
    train_step "$TEACHER_CFG" "$TEACHER_DIR" "${OPTS[@]}" "${TEACHER_OPTS[@]}"
}

# step 2: the PU classifier N_pu on COCO train2017 (positive) + ImageNet train (unlabeled)
pu_classifier() {
    teacher
    local args=(tools/purify_net.py train --config-file "$PU_CFG" PU.INIT_FROM_DETECTOR "$TEACHER"
                OUTPUT_DIR "$PU_DIR" "${OPTS[@]}" "${PU_OPTS[@]}")
    guard "$PU_DIR/recipe_step.txt" "${args[@]}"
    [ -f "$PU" ] || "$PYTHON" "${args[@]:0:2}" "${LAUNCH[@]}" --resume "${args[@]:2}"
}

# step 3: score ImageNet (once: a second K reuses the scored chunks), keep the top K (U^P):
# select_pu K -> $PU_DIR/select/selected_K.json
select_pu() {
    pu_classifier
    local out=$PU_DIR/select
    local args=(tools/purify_net.py select --config-file "$PU_CFG" --weights "$PU" --topk "$1" --output-dir "$out"
                "${OPTS[@]}" "${PU_OPTS[@]}")
    guard "$out/recipe_step_$1.txt" "${args[@]}"
    if [ ! -f "$out/selected_$1.json" ]; then
        "$PYTHON" "${args[@]:0:2}" "${LAUNCH[@]}" "${args[@]:2}"
        cp "$out/selected.json" "$out/selected_$1.json"
    fi
}

# step 4: pseudo-labels by the teacher: label_pu K NAME, label_random K NAME -> $OUTPUT_ROOT/labels/NAME
label_pu() {
    select_pu "$1"
    label "$2" --selection "$PU_DIR/select/selected_$1.json"
}
label_random() {
    teacher
    label "$2" --dataset imagenet_2012_train_unlabeled --random "$1" --seed 0
}
label() {
    local out=$OUTPUT_ROOT/labels/$1
    shift
    local args=(tools/purify_net.py label --config-file "$TEACHER_CFG" --weights "$TEACHER" "$@" --output-dir "$out"
                "${OPTS[@]}" "${LABEL_OPTS[@]}")
    guard "$out/recipe_step.txt" "${args[@]}"
    [ -f "$out/pseudo_labels.json" ] || "$PYTHON" "${args[@]:0:2}" "${LAUNCH[@]}" "${args[@]:2}"
}

# Table 1's self-distillation on COCO train2017 alone, which is also Table 3's R50 <- R50 hint + kdc + kdr row
self_distillation() {
    teacher
    train configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill.yaml "$OUTPUT_ROOT/student_R50_FPN_1x_self_distill"
}

# step 5: the student on L + pseudo-labelled U^x at tau, 1x = the teacher's 12 epochs (steps at 8 and 11) of
# epochs of 2 * max(|L|, N_U) images (pudet.data.schedule, the authors' rule) at the student's batch (its config's
# SOLVER.IMS_PER_BATCH, or the overrides'): student NAME TAU N_U -> $OUTPUT_ROOT/students/NAME_thrTAU
student() {
    local name=$1 tau=$2 n_u=$3
    local config=configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill_pseudo.yaml
    local batch schedule
    batch=$("$PYTHON" -c 'import sys; from pudet.config import get_pudet_cfg
print(get_pudet_cfg(sys.argv[1], sys.argv[2:]).SOLVER.IMS_PER_BATCH)' "$config" "${OPTS[@]}" "${STUDENT_OPTS[@]}") \
        || die "cannot read SOLVER.IMS_PER_BATCH of $config with the overrides"
    schedule=$("$PYTHON" -m pudet.data.schedule --num-labeled "$N_L" --num-pool "$n_u" --ims-per-batch "$batch") \
        || die "cannot compute the schedule with $PYTHON"
    # shellcheck disable=SC2086  # the schedule is KEY VALUE words without spaces
    train "$config" "$OUTPUT_ROOT/students/${name}_thr${tau}" \
        DATASETS.TRAIN_PSEUDO "('$OUTPUT_ROOT/labels/$name/pseudo_labels.json',)" DATASETS.PSEUDO_SCORE_THRESH "$tau" \
        $schedule
}
