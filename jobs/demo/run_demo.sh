#!/usr/bin/env bash
# SPIN making a weak model stronger, in miniature (a few minutes on 2 cores):
#   1. a synthetic task with exact answers (addition, string reversal, digit sorting);
#   2. a tiny byte-level Llama trained from scratch by `spin sft` just long enough to be weak;
#   3. `spin train`: 3 SPIN iterations at TP 2 x PP 2 on 4 ranks (jobs/configs/demo.ini);
#   4. `spin eval` on the test split: exact match of greedy answers and ground-truth NLL for the
#      SFT model, each SPIN iteration, and, as a control, the SFT model trained on for the same
#      number of steps with plain SFT;
#   5. jobs/plot_metrics.py: the SPIN run's metrics as a picture ($out/metrics.png).
#   jobs/demo/run_demo.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=$build/demo
spin=$build/src/app/spin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi4() { OPENBLAS_NUM_THREADS=1 mpirun -np 4 --oversubscribe -x OPENBLAS_NUM_THREADS "$@"; }
start=$(date +%s)

rm -rf "$out"
python3 jobs/demo/make_task.py "$out/data"
python3 tests/data/make_tiny_model.py "$out/init" --vocab 259 --hidden 128 --intermediate 384 \
    --layers 4 --heads 4 --kv-heads 2 --max-positions 64 --byte-tokenizer --std 0.02

echo "== SFT from scratch (8 epochs)"
OPENBLAS_NUM_THREADS=2 "$spin" sft --model "$out/init" --train "$out/data/train.jsonl" \
    --output "$out/sft" --template plain --global-batch-size 64 --micro-batch-size 32 --epochs 8 \
    --lr 3e-3 --lr-schedule cosine --warmup-steps 20 --min-lr 3e-4 --weight-decay 0.01 --log-interval 62

echo "== SPIN: 3 iterations at TP 2 x PP 2"
mpi4 "$spin" train --config jobs/configs/demo.ini --model.path "$out/sft" \
    --data.train "$out/data/train.jsonl" --data.validation "$out/data/validation.jsonl" \
    --checkpoint.save_dir "$out/spin" | grep -v -E '^[a-z_0-9]+ = |^\[[a-z]+\]$|^$'

echo "== Control: the SFT model trained on with SFT for the same 186 steps"
OPENBLAS_NUM_THREADS=2 "$spin" sft --model "$out/sft" --train "$out/data/train.jsonl" \
    --output "$out/sft_control" --template plain --global-batch-size 64 --micro-batch-size 32 \
    --epochs 3 --lr 1e-4 --log-interval 186

echo "== Test split (500 problems)"
evaluate() { mpi4 "$spin" eval --model "$1" --data "$out/data/test.jsonl" --template plain \
    --tp 2 --pp 2 --output "$out/eval.json" > /dev/null
  python3 -c "import json; r = json.load(open('$out/eval.json')); print('| $2 | %.1f%% | %.3f |' % (100 * r['exact_match'], r['nll']))"; }
{
  echo "| model | exact match | NLL per response token |"
  echo "|---|---|---|"
  evaluate "$out/sft" "SFT (8 epochs from scratch)"
  for i in 1 2 3; do evaluate "$out/spin/iteration_$i" "SPIN iteration $i"; done
  evaluate "$out/sft_control" "control: SFT for the same 186 more steps"
} | tee "$out/table.md"
# The SPIN run's metrics as a picture (Debian's python3-matplotlib).
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 jobs/plot_metrics.py "$out/spin/metrics.jsonl" -o "$out/metrics.png" --smooth 5 \
      --title "demo: 3 SPIN iterations at TP 2 x PP 2"
fi
echo "demo finished in $(( $(date +%s) - start )) s; table in $out/table.md"
