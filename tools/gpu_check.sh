#!/usr/bin/env bash
# What pudet does on a GPU, measured in one run of at most 10 minutes on one GPU, into one report:
#
#   tools/gpu_check.sh [REPORT]        (default output/gpu_check/report.md; its other files beside it)
#
#   1. the demo at toy sizes on CUDA (make demo DEMO_ARGS=--quick's command, without make's install step): exit
#      status and wall time;
#   2. tools/benchmark.py select, label and distill on CUDA: their speed ratios;
#   3. tools/benchmark.py gpu-memory: peak GPU memory of a teacher step, a distilled step, select and label at the
#      COCO recipe's per-GPU batch and image size (random weights);
#   4. with 2 GPUs or more: tools/train_net.py --num-gpus 2 on the benchmark (NCCL), a few iterations.
#
# Each part has its own time limit (in all 9 minutes) and its status in the report; a part that fails does not
# stop the others. Without a CUDA device it writes a report saying so and exits 0. PYTHON: the interpreter
# (default .venv's, as make install makes it).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
REPORT=${1:-output/gpu_check/report.md}
WORK=$(dirname "$REPORT")
mkdir -p "$WORK"

gpus=$("$PYTHON" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)") || {
    echo "gpu_check: cannot run $PYTHON (set PYTHON to an interpreter with torch)" >&2
    exit 2
}
if [ "$gpus" = 0 ]; then
    printf '# GPU check\n\nno CUDA device: torch sees no GPU on %s, so nothing was measured.\n' "$(hostname)" > "$REPORT"
    echo "gpu_check: no CUDA device on $(hostname): nothing measured; wrote $REPORT"
    exit 0
fi

{
    echo "# GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $gpus GPU(s):"
    echo
    echo '```'
    "$PYTHON" -m pudet.compat
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    echo '```'
} > "$REPORT"

# part TITLE LIMIT_S COMMAND...: runs COMMAND (its output in WORK/<n>.log) within LIMIT_S seconds and appends its
# status, wall time and the output's last lines (its table) to the report
n=0
part() {
    local title=$1 limit=$2
    shift 2
    n=$((n + 1))
    local log="$WORK/$n.log" start=$SECONDS status
    echo "gpu_check: $title ..."
    timeout "$limit" "$@" > "$log" 2>&1
    status=$?
    {
        echo
        echo "## $n. $title"
        echo
        echo "\`$*\`: exit $status$( ((status == 124)) && echo " (stopped at its limit of $limit s)"), $((SECONDS - start)) s"
        echo
        echo '```'
        grep -v -i "warning\|warn(" "$log" | tail -n 14
        echo '```'
    } >> "$REPORT"
}

part "the demo at toy sizes on CUDA (make demo DEMO_ARGS=--quick)" 200 "$PYTHON" projects/WildDigits/run_demo.py \
    --output-dir "$WORK/demo_quick" --quick --device cuda
# the first benchmark part also builds the benchmark's files (once, under $DETECTRON2_DATASETS)
part "select on CUDA: scoring vs the raw backbone forward" 100 \
    "$PYTHON" tools/benchmark.py select --device cuda --images 1024 --num-workers 4 --rounds 2
part "label on CUDA: batched vs DefaultPredictor" 50 \
    "$PYTHON" tools/benchmark.py label --device cuda --images 400 --num-workers 4 --rounds 2
part "distill on CUDA: a distilled step vs a plain step" 50 \
    "$PYTHON" tools/benchmark.py distill --device cuda --steps 10
part "peak GPU memory at the COCO recipe's per-GPU sizes" 80 "$PYTHON" tools/benchmark.py gpu-memory
if ((gpus >= 2)); then
    part "2 processes, NCCL: the benchmark teacher, 20 iterations" 60 "$PYTHON" tools/train_net.py --num-gpus 2 \
        MODEL.DEVICE cuda WILD_DIGITS.PRETRAIN.ENABLED False SOLVER.MAX_ITER 20 SOLVER.STEPS "()" DATASETS.TEST "()" \
        OUTPUT_DIR "$WORK/nccl"
else
    printf '\n## %d. 2 processes, NCCL\n\nnot run: one GPU\n' $((n + 1)) >> "$REPORT"
fi
echo "gpu_check: wrote $REPORT"
