# Shared by the row scripts: run them from anywhere; commands run in the repository root.
# Environment: NUM_GPUS (default 8); for several machines NUM_MACHINES, MACHINE_RANK, DIST_URL
# (run the same script on every machine); PYTHON (default: the repository's .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
NUM_GPUS=${NUM_GPUS:-8}
LAUNCH=(--num-gpus "$NUM_GPUS" --num-machines "${NUM_MACHINES:-1}" --machine-rank "${MACHINE_RANK:-0}")
[ -n "${DIST_URL:-}" ] && LAUNCH+=(--dist-url "$DIST_URL")

TEACHER_CFG=configs/COCO/faster_rcnn_R_50_FPN_1x_teacher.yaml
TEACHER=output/coco/teacher_R50_FPN_1x/model_final.pth
PU_CFG=configs/PU/pu_R50_coco_imagenet.yaml
PU=output/coco/pu_R50_nnpu/model_final.pth
N_L=118287

# step 1: the teacher D_t on COCO train2017 (skipped when done)
teacher() {
    [ -f "$TEACHER" ] || "$PYTHON" tools/train_net.py "${LAUNCH[@]}" --resume --config-file "$TEACHER_CFG"
}

# step 2: the PU classifier N_pu on COCO train2017 (positive) + ImageNet train (unlabeled)
pu_classifier() {
    teacher
    [ -f "$PU" ] || "$PYTHON" tools/purify_net.py train "${LAUNCH[@]}" --resume --config-file "$PU_CFG"
}

# step 3: score ImageNet (once: a second K reuses the scored chunks), keep the top K (U^P):
# select_pu K -> output/coco/pu_R50_nnpu/select/selected_K.json
select_pu() {
    pu_classifier
    local out=output/coco/pu_R50_nnpu/select
    if [ ! -f "$out/selected_$1.json" ]; then
        "$PYTHON" tools/purify_net.py select "${LAUNCH[@]}" --config-file "$PU_CFG" --topk "$1" --output-dir "$out"
        cp "$out/selected.json" "$out/selected_$1.json"
    fi
}

# step 4: pseudo-labels by the teacher: label_pu K NAME, label_random K NAME -> output/coco/labels/NAME
label_pu() {
    select_pu "$1"
    local out=output/coco/labels/$2
    [ -f "$out/pseudo_labels.json" ] || "$PYTHON" tools/purify_net.py label "${LAUNCH[@]}" --config-file "$TEACHER_CFG" \
        --weights "$TEACHER" --selection "output/coco/pu_R50_nnpu/select/selected_$1.json" --output-dir "$out"
}
label_random() {
    teacher
    local out=output/coco/labels/$2
    [ -f "$out/pseudo_labels.json" ] || "$PYTHON" tools/purify_net.py label "${LAUNCH[@]}" --config-file "$TEACHER_CFG" \
        --weights "$TEACHER" --dataset imagenet_2012_train_unlabeled --random "$1" --seed 0 --output-dir "$out"
}

# step 5: the student on L + pseudo-labelled U^x at tau, 1x = 12 epochs of L + U^x:
# student NAME TAU N_U -> output/coco/students/NAME_thrTAU
student() {
    local name=$1 tau=$2 n_u=$3
    local per_epoch=$(( (N_L + n_u + 31) / 32 ))
    "$PYTHON" tools/train_net.py "${LAUNCH[@]}" --resume \
        --config-file configs/COCO/faster_rcnn_R_50_FPN_1x_self_distill_pseudo.yaml \
        DATASETS.TRAIN_PSEUDO "('output/coco/labels/$name/pseudo_labels.json',)" MODEL.PUDET.PSEUDO_SCORE_THRESH "$tau" \
        SOLVER.MAX_ITER $(( 12 * per_epoch )) SOLVER.STEPS "($(( 8 * per_epoch )), $(( 11 * per_epoch )))" \
        SOLVER.CHECKPOINT_PERIOD "$per_epoch" OUTPUT_DIR "output/coco/students/${name}_thr${tau}"
}
