#!/usr/bin/env bash
# The checks run on a lent GPU, from the unpacked bundle (jobs/gpu/pack.sh, run.sh):
#   1. gpu_test: every CUDA kernel against the CPU kernels, the whole tiny model on the GPU
#      against the CPU path, NcclCommunicator on one GPU (the newest kernels' tests apart);
#   2. the whole program, one rank: spin score, spin generate (greedy; on the GPU also with
#      chunked prefill) and spin train (one SPIN
#      iteration) with --device cpu and --device cuda, compared (compare.py); score and train
#      again with bf16 products (--precision bf16) against the CPU's bf16 reference; train on
#      the GPU with spin.ref_offload, model.recompute_activations, model.logits_chunk_rows and
#      checkpoint.async_save against the CPU run; and with LoRA adapters against the CPU's; spin score
#      on a tiny Mixtral (its routing on the host between kernels) against the CPU's;
#   3. gpu_bench: measured ceilings and the kernels at Llama-7B shapes;
#   4. train_bench and generate_bench on a 1.1B-parameter Llama shape (TinyLlama's) and train_bench on a
#      small Mixtral shape, float32 and bf16 products: training tokens/s and model FLOP rate against the
#      measured matrix peak of the precision (MFU for bf16), prefill and decode tokens/s at batch 1, 8, 64
#      against the weight-bandwidth floor (bf16 again with top-p 0.95 at batch 1 and 64); bf16 training
#      again without tensor-core attention and with LoRA adapters of rank 16;
#   5. compute-sanitizer memcheck and racecheck over the hand-written kernels' tests.
# Usage: checks.sh BUNDLE_DIR LOG_DIR. Every step has a time limit; a failing step is reported
# and the next one still runs. The whole run keeps within SPIN_GPU_BUDGET_S seconds (default 500:
# a device call's 600 less the machine's start and the archive): each step's limit is cut to what
# is left, and a step that would start with under 20 seconds left is skipped, so that a hung step
# costs its own result, not the logs of the others. Exit status: the number of failed or skipped
# steps.
set -uo pipefail
bundle=$1
logs=$2
work=$bundle/work
mkdir -p "$logs"
failed=0
deadline=$((SECONDS + ${SPIN_GPU_BUDGET_S:-500}))
step() {  # step NAME LIMIT_S COMMAND...: runs it with its output in $logs/NAME.log
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if ((left < 20)); then
    echo "== $name: skipped (${left} s of the budget left)"
    failed=$((failed + 1))
    return 1
  fi
  ((limit <= left)) || limit=$left
  echo "== $name"
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  local status=$?
  tail -n 25 "$logs/$name.log"
  echo "== $name: exit $status"
  [[ $status == 0 ]] || failed=$((failed + 1))
  return "$status"
}
spin=$bundle/bin/spin
launch=(mpirun -np 1 --allow-run-as-root --oversubscribe)

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >"$logs/device.txt" 2>&1
cat "$logs/device.txt"

# The kernels new since the last GPU run in a process of their own: a crash there (a sticky
# CUDA error poisons the context) cannot take the other kernels' results with it.
newest='*Mixture*:*AddSumOfSquares*:*LayerNorm*:*Rope*:*FromSums*:*Olmo*:*Lora*:*Dropout*:*Bf16Gemms*'
newest+=':*Bf16Activations*:*TensorCore*:*Bf16Prefill*:*DecodeSteps*:*Bias*:*Qwen3*:*Bf16Input*:*Gemma*:*Glu*'
newest+=':*MassHistogram*:*LogitsAtIds*:*ScatterRows*'
step gpu_test 240 "$bundle/bin/gpu_test" --gtest_color=no --gtest_filter="-$newest"
step gpu_test_newest 120 "$bundle/bin/gpu_test" --gtest_color=no --gtest_filter="$newest"

for device in cpu cuda; do
  step "score_$device" 120 "${launch[@]}" "$spin" score --model "$work/score-model" --input "$work/score.jsonl" \
    --output "$logs/score_$device.jsonl" --device "$device"
  step "generate_$device" 120 "${launch[@]}" "$spin" generate --model "$work/score-model" \
    --input "$work/prompts.jsonl" --output "$logs/generate_$device.jsonl" --greedy --max-new-tokens 12 --batch-size 3 \
    --device "$device"
  step "train_$device" 300 "${launch[@]}" "$spin" train --config "$work/spin_check.ini" \
    --model.path "$work/model" --data.train "$work/data/train.jsonl" \
    --data.validation "$work/data/validation.jsonl" --checkpoint.save_dir "$logs/train_$device" \
    --parallel.device "$device"
  step "score_${device}_bf16" 120 "${launch[@]}" "$spin" score --model "$work/score-model" --input "$work/score.jsonl" \
    --output "$logs/score_${device}_bf16.jsonl" --device "$device" --precision bf16
  step "score_moe_$device" 120 "${launch[@]}" "$spin" score --model "$work/score-moe" --input "$work/score.jsonl" \
    --output "$logs/score_moe_$device.jsonl" --device "$device"
  step "train_${device}_bf16" 300 "${launch[@]}" "$spin" train --config "$work/spin_check.ini" \
    --model.path "$work/model" --data.train "$work/data/train.jsonl" \
    --data.validation "$work/data/validation.jsonl" --checkpoint.save_dir "$logs/train_${device}_bf16" \
    --parallel.device "$device" --model.precision bf16
done
step compare_score 60 python3 "$work/compare.py" score "$logs/score_cpu.jsonl" "$logs/score_cuda.jsonl" 1e-5
step compare_score_moe 60 python3 "$work/compare.py" score "$logs/score_moe_cpu.jsonl" "$logs/score_moe_cuda.jsonl" 1e-5
step compare_generate 60 cmp "$logs/generate_cpu.jsonl" "$logs/generate_cuda.jsonl"
# Chunked prefill: prompts fed 4 tokens a call beside the decoding rows (the fused cached kernel
# takes the continuing chunks) -- the CPU's responses.
step generate_cuda_chunked 120 "${launch[@]}" "$spin" generate --model "$work/score-model" \
  --input "$work/prompts.jsonl" --output "$logs/generate_cuda_chunked.jsonl" --greedy --max-new-tokens 12 \
  --batch-size 3 --max-step-tokens 4 --device cuda
step compare_generate_chunked 60 python3 "$work/compare.py" generate "$logs/generate_cpu.jsonl" \
  "$logs/generate_cuda_chunked.jsonl" 1e-5
step compare_metrics 60 python3 "$work/compare.py" metrics "$logs/train_cpu/metrics.jsonl" \
  "$logs/train_cuda/metrics.jsonl" 1e-3
step compare_weights 60 python3 "$work/compare.py" weights "$logs/train_cpu/iteration_1" \
  "$logs/train_cuda/iteration_1" 1e-4
# bf16 products: the same rounded operands, float32 sums in another order (METHOD.md: 1e-2).
step compare_score_bf16 60 python3 "$work/compare.py" score "$logs/score_cpu_bf16.jsonl" \
  "$logs/score_cuda_bf16.jsonl" 1e-2
step compare_metrics_bf16 60 python3 "$work/compare.py" metrics "$logs/train_cpu_bf16/metrics.jsonl" \
  "$logs/train_cuda_bf16/metrics.jsonl" 2e-2

# The memory options on the GPU -- the reference in host memory swapped through the policy's
# buffers, activations recomputed in the backward, logits in chunks of 7 rows -- and checkpoints
# written in the background: the same run as without (CPU, float32). Steps 2-3 profiled: the
# NVTX ranges and cudaProfilerStart/Stop run (no profiler attached) and change nothing.
step train_cuda_offload_recompute 300 "${launch[@]}" "$spin" train --config "$work/spin_check.ini" \
  --model.path "$work/model" --data.train "$work/data/train.jsonl" \
  --data.validation "$work/data/validation.jsonl" --checkpoint.save_dir "$logs/train_cuda_options" \
  --parallel.device cuda --spin.ref_offload true --model.recompute_activations true \
  --model.logits_chunk_rows 7 --checkpoint.async_save true \
  --logging.profile_step_start 2 --logging.profile_step_end 3
step compare_metrics_options 60 python3 "$work/compare.py" metrics "$logs/train_cpu/metrics.jsonl" \
  "$logs/train_cuda_options/metrics.jsonl" 1e-3
step profile_summary 30 python3 "$work/profile_summary.py" "$logs/train_cuda_options/profile"
# LoRA (lora.rank 8 on every projection, dropout 0.1: the masks drawn on the device; the base
# frozen, generation and scoring without the adapters, the policy's validation answers with
# them): the CUDA run against the CPU's, float32.
for device in cpu cuda; do
  step "train_${device}_lora" 300 "${launch[@]}" "$spin" train --config "$work/spin_check.ini" \
    --model.path "$work/model" --data.train "$work/data/train.jsonl" \
    --data.validation "$work/data/validation.jsonl" --checkpoint.save_dir "$logs/train_${device}_lora" \
    --parallel.device "$device" --lora.rank 8 --lora.dropout 0.1
done
step compare_metrics_lora 60 python3 "$work/compare.py" metrics "$logs/train_cpu_lora/metrics.jsonl" \
  "$logs/train_cuda_lora/metrics.jsonl" 1e-3

step gpu_bench 240 "$bundle/bin/gpu_bench"
llama_1b=(--hidden 2048 --layers 22 --heads 32 --kv-heads 4 --intermediate 5632 --vocab 32000)
for precision in bf16 fp32; do
  step "train_bench_$precision" 300 "${launch[@]}" "$bundle/bin/train_bench" --device cuda --precision "$precision" \
    "${llama_1b[@]}" --seq 1024 --global-batch 8 --micro-batch 2 --steps 3 --warmup 1
  step "generate_bench_$precision" 240 "${launch[@]}" "$bundle/bin/generate_bench" --device cuda \
    --precision "$precision" "${llama_1b[@]}" --prompt 128 --new-tokens 64 --batches 1,8,64
done
# Top-p 0.95 (the radix search's 4 host round trips a step) against the plain sampling above.
step generate_bench_bf16_top_p 120 "${launch[@]}" "$bundle/bin/generate_bench" --device cuda --precision bf16 \
  "${llama_1b[@]}" --prompt 128 --new-tokens 64 --batches 1,64 --refill-prompts 0 --top-p 0.95
# LoRA rank 16 on every projection of the same model, bf16: the step without the frozen weights'
# gradients, and the optimizer state of 0.9% of the parameters; the frozen model in bf16 alone.
step train_bench_bf16_lora 300 "${launch[@]}" "$bundle/bin/train_bench" --device cuda --precision bf16 \
  "${llama_1b[@]}" --seq 1024 --global-batch 8 --micro-batch 2 --steps 3 --warmup 1 --lora-rank 16 --frozen-dtype bf16
# A mixture of experts (Mixtral's layout, 8 experts of 5632, 2 a token, 6 layers: 1.9B parameters, 0.5B a
# token): the step against a dense model's MFU, with the routing's host round trips and per-expert GEMMs.
step train_bench_bf16_mixtral 300 "${launch[@]}" "$bundle/bin/train_bench" --device cuda --precision bf16 \
  --family mixtral --hidden 2048 --layers 6 --heads 32 --kv-heads 8 --intermediate 5632 --vocab 32000 --seq 1024 \
  --global-batch 8 --micro-batch 2 --steps 3 --warmup 1
# The same bf16 training without tensor-core attention: what those kernels are worth.
step train_bench_bf16_simt 300 "${launch[@]}" "$bundle/bin/train_bench" --device cuda --precision bf16 \
  --attention-backend simt "${llama_1b[@]}" --seq 1024 --global-batch 8 --micro-batch 2 --steps 3 --warmup 1
# 5. compute-sanitizer (last: slow, and it needs a runtime that supports it): out-of-bounds
#    and uninitialised accesses in the hand-written kernels' tests, and shared-memory races in
#    the fused attention kernels (tiles staged in shared memory by whole blocks).
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [[ -n $sanitizer ]]; then
  kernels_filter='*Attention*:*Cache*:*RowTopK*:*Gumbel*:*Sampler*:*MassHistogram*:*LogitsAtIds*:*Logprob*'
  kernels_filter+=':*Rows*:*AdamW*:*Rope*'
  step memcheck 150 "$sanitizer" --tool memcheck --error-exitcode 1 "$bundle/bin/gpu_test" --gtest_color=no \
    --gtest_filter="$kernels_filter"
  step racecheck 150 "$sanitizer" --tool racecheck --error-exitcode 1 "$bundle/bin/gpu_test" --gtest_color=no \
    --gtest_filter='*Attention*:*Cache*'
else
  echo "== compute-sanitizer: not on this machine, skipped"
fi
echo "checks: $failed step(s) failed"
exit "$failed"
