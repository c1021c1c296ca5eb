# Shared by the row scripts: run them from anywhere; commands run in the repository root.
#
#   ROW.sh [KEY VALUE ...]     the pairs are config overrides given to every step, after the script's own
#                              (so they win), e.g. MODEL.DEVICE cpu SOLVER.IMS_PER_BATCH 16
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
OPTS=("$@")

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

(( ${#OPTS[@]} % 2 == 0 )) || die "overrides are KEY VALUE pairs, got an odd number of words: ${OPTS[*]}"
DEVICE=cuda
for (( i = 0; i < ${#OPTS[@]}; i += 2 )); do
    [ "${OPTS[i]}" = MODEL.DEVICE ] && DEVICE=${OPTS[i+1]}
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

# train CONFIG OUTPUT_DIR [KEY VALUE ...]: tools/train_net.py (resumed), distilling from $TEACHER where the
# config distils; the user's overrides come last
train() {
    local config=$1 out=$2
    shift 2
    "$PYTHON" tools/train_net.py "${LAUNCH[@]}" --resume --config-file "$config" \
        MODEL.PUDET.TEACHER_WEIGHTS "$TEACHER" "$@" OUTPUT_DIR "$out" "${OPTS[@]}"
}

# step 1: the teacher D_t on COCO train2017 (skipped when done)
teacher() {
    [ -f "$TEACHER" ] || train "$TEACHER_CFG" "$TEACHER_DIR"
}

# step 2: the PU classifier N_pu on COCO train2017 (positive) + ImageNet train (unlabeled)
pu_classifier() {
    teacher
    [ -f "$PU" ] || "$PYTHON" tools/purify_net.py train "${LAUNCH[@]}" --resume --config-file "$PU_CFG" \
        PU.INIT_FROM_DETECTOR "$TEACHER" OUTPUT_DIR "$PU_DIR" "${OPTS[@]}"
}

# step 3: score ImageNet (once: a second K reuses the scored chunks), keep the top K (U^P):
# select_pu K -> $PU_DIR/select/selected_K.json
select_pu() {
    pu_classifier
    local out=$PU_DIR/select
    if [ ! -f "$out/selected_$1.json" ]; then
        "$PYTHON" tools/purify_net.py select "${LAUNCH[@]}" --config-file "$PU_CFG" --weights "$PU" --topk "$1" \
            --output-dir "$out" "${OPTS[@]}"
        cp "$out/selected.json" "$out/selected_$1.json"
    fi
}

# step 4: pseudo-labels by the teacher: label_pu K NAME, label_random K NAME -> $OUTPUT_ROOT/labels/NAME
label_pu() {
    select_pu "$1"
    local out=$OUTPUT_ROOT/labels/$2
    [ -f "$out/pseudo_labels.json" ] || "$PYTHON" tools/purify_net.py label "${LAUNCH[@]}" --config-file "$TEACHER_CFG" \
        --weights "$TEACHER" --selection "$PU_DIR/select/selected_$1.json" --output-dir "$out" "${OPTS[@]}"
}
label_random() {
    teacher
    local out=$OUTPUT_ROOT/labels/$2
    [ -f "$out/pseudo_labels.json" ] || "$PYTHON" tools/purify_net.py label "${LAUNCH[@]}" --config-file "$TEACHER_CFG" \
        --weights "$TEACHER" --dataset imagenet_2012_train_unlabeled --random "$1" --seed 0 --output-dir "$out" "${OPTS[@]}"
}

# step 5: the student on L + pseudo-labelled U^x at tau, 1x = the teacher's 12 epochs (steps at 8 and 11) of
# epochs of 2 * max(|L|, N_U) images (pudet.data.schedule, the authors' rule):
# student NAME TAU N_U -> $OUTPUT_ROOT/students/NAME_thrTAU
student() {
    local name=$1 tau=$2 n_u=$3
    local schedule
    schedule=$("$PYTHON" -m pudet.data.schedule --num-labeled "$N_L" --num-pool "$n_u" --ims-per-batch 32) \
        || die "cannot compute the schedule with $PYTHON"
    # shellcheck disable=SC2086  # the schedule is KEY VALUE words without spaces
    train configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill_pseudo.yaml "$OUTPUT_ROOT/students/${name}_thr${tau}" \
        DATASETS.TRAIN_PSEUDO "('$OUTPUT_ROOT/labels/$name/pseudo_labels.json',)" DATASETS.PSEUDO_SCORE_THRESH "$tau" \
        $schedule
}
