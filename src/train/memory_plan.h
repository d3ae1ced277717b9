// Per-rank memory of a SPIN run, from the model's shape and the layout alone (spin plan):
// policy weights, gradients, master weights, AdamW moments (plain or distributed), the
// reference (resident or offloaded to the host), the 1F1B activation ring, the reference
// scoring buffers, and the generation KV cache with its buffers -- for each pipeline stage.
//
// Two precision models:
//   cpu   what the CPU path allocates, exactly (float32 everywhere; the weights are the masters;
//         attention probabilities are kept for the backward). tests/mpi/train/memory_plan_test
//         checks these figures against the real buffers.
//   cuda  what the CUDA path allocates with --precision bf16: bf16 weights, float32 gradients,
//         masters and moments as in Megatron's bf16 training; the reference like the policy
//         (float32 values and their bf16 copy, 6 bytes a parameter); of the
//         activations, the products' inputs (both norms' outputs, SwiGLU's, a copy of the
//         attention output, the final norm's; the MLP's gate and up) and the KV cache in bf16,
//         the rest float32 (the residual stream, q/k/v, attention output, logits, norm
//         statistics); fused
//         attention keeps a float32 log-sum-exp per head and row instead of the probabilities.
//         Same buffers, other element sizes.
// Worst case throughout: every sequence has `seq` tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora.h"

namespace spin::train {

struct Precision {
  std::string name;
  int weight = 4;      // bytes per parameter: policy (and reference) weights
  int grad = 4;        // gradient accumulation buffer
  int master = 0;      // float32 master copy (0: the weights are the masters)
  int moments = 8;     // AdamW m and v (RMSprop: v alone, 4)
  int activation = 4;  // saved activations and the KV cache
  // Probabilities kept (cpu) or a log-sum-exp per head and row (the fused CUDA kernels, for the
  // head sizes they take: attention_keeps_probs).
  bool attention_probs = true;
  bool bf16_products = false;   // mixed precision: the products' inputs kept in bf16 alone
  static Precision cpu();
  static Precision cuda();
};

// Whether attention keeps heads x len^2 probabilities for the backward: always on the CPU; on a
// GPU where the fused kernels do not take the head size (32, 64, 96, 128, 192 or 256:
// kernels::fused_attention_head_dim) and the cuBLAS path runs instead.
bool attention_keeps_probs(const Precision& p, std::int64_t head_dim);

struct PlanRequest {
  model::ModelConfig config;
  int tp = 1, pp = 1, dp = 1;
  // A mixture's expert-parallel size, folded onto the TP group (model::TpDims): each rank holds
  // num_experts / ep experts, and buffers for every row's chosen experts among them at most.
  int ep = 1;
  int vpp = 1;  // model chunks a stage (interleaved 1F1B); the micro-batches a step then in whole groups of pp
  std::vector<std::int64_t> pp_layers;  // layers per stage, or with vpp per virtual stage (empty: even split)
  std::int64_t micro_batch = 1;         // prompts per micro-batch (2 sequences each: real, generated)
  std::int64_t micro_batch_tokens = 0;  // and tokens at most, a longer pair alone (0: micro_batch pairs alone)
  std::int64_t seq = 0;                 // tokens per sequence (prompt + response)
  std::int64_t prompt = 0;              // tokens of the longest prompt (0: seq, the worst case): a windowed layer's
                                        // KV ring holds a prompt chunk beside its window (model/kv_cache.h)
  std::int64_t global_batch = 0;        // prompts per step (0: enough micro-batches to fill the pipeline)
  std::int64_t rollout_batch = 0;       // sequences generated at once per replica (0: micro_batch)
  std::int64_t rollout_step_tokens = 0; // tokens per generation model call (0: no limit)
  bool distributed_optimizer = false;
  bool ref_offload = false;             // reference kept in host memory (cuda only)
  bool recompute_activations = false;   // layers keep their input only (model::Transformer)
  std::int64_t recompute_num_layers = 0;  // with it: only each stage's first this many (0: every layer)
  bool sequence_parallel = false;       // rows split between the TP regions (model::Transformer)
  std::int64_t logits_chunk_rows = 0;   // the LM head's logits that many rows at a time (0: all)
  model::LoraConfig lora{};             // rank > 0: LoRA adapters trained on the frozen reference
  // With bf16 products: the reference held in bf16 alone, its float32-read tensors in float32
  // (model::WeightStorage::FrozenBf16; spin train's model.frozen_dtype).
  bool frozen_bf16 = false;
  Precision precision = Precision::cuda();
  // Without pp_layers: the (virtual) stages' layers balanced by training FLOPs at seq tokens
  // (model::balanced_layers, --pp-layers balanced) instead of split evenly; fitting_layouts keeps
  // it for every pp it tries.
  bool balanced_layers = false;
};

struct StagePlan {
  int stage = 0;
  std::int64_t layers = 0;
  std::int64_t params = 0;  // this rank's parameter elements (alignment and DP padding included)
  std::int64_t trained = 0;  // of which trained: all of them, or with LoRA the adapters' elements
  // Bytes per rank of this stage. weights, grads, masters and optimizer are the trained
  // parameters' (the policy's; with LoRA the adapters', the policy being the reference + them).
  std::int64_t weights = 0, grads = 0, masters = 0, optimizer = 0;
  std::int64_t reference = 0;       // on the device
  std::int64_t reference_host = 0;  // offloaded
  std::int64_t rope = 0;            // the RoPE tables, float32 cos and sin (Gemma 3: local and global)
  // Sets of activation buffers the stage keeps, one a micro-batch in flight: 1F1B's min(pp - stage,
  // micro-batches per step) of the stage's; interleaved, the most micro-batch-chunks in flight at
  // once, the model's last chunk's (the head's) counted apart (PipelineTrainer::activation_pool).
  int micro_batches_in_flight = 0;
  std::int64_t activations_per_micro_batch = 0;  // a set (interleaved: the largest)
  std::int64_t activations = 0;                  // every set
  std::int64_t scoring = 0;         // reference log-probabilities (forward only, transient)
  std::int64_t kv_cache = 0;        // generation (transient)
  std::int64_t generation = 0;      // generation buffers, an upper bound: a whole rollout's prefill
                                    // (each sequence's prompt, or windowed prefill chunk),
                                    // or rollout_step_tokens rows
  // Peak: the persistent state plus the largest transient phase (generation or scoring).
  std::int64_t peak() const;
};

struct MemoryPlan {
  std::vector<StagePlan> stages;
  std::int64_t micro_batches = 0;  // per step per DP rank (with micro_batch_tokens, at least)
  std::int64_t peak() const;       // the largest stage's
};

// Layers each (virtual) stage of `request` holds, in model order: pp_layers, or the balanced or
// even split of the pp x vpp stages.
std::vector<std::int64_t> stage_layers(const PlanRequest& request);

// Throws spin::Error for an impossible layout (tp not dividing heads, pp > layers, a batch
// that does not split over dp x micro_batch, seq beyond the model).
MemoryPlan plan_memory(const PlanRequest& request);

// Layouts (tp, pp, dp) of `gpus` ranks that fit in `capacity` bytes, best first: tp within a
// node (<= gpus_per_node) and a multiple of the request's ep, fewest model-parallel ranks, then the
// smallest peak. Each layout as
// asked, else with the cheapest additions that make it fit: the distributed optimizer, then
// sequence parallelism (tp > 1), then chunked prefill (generation calls of at most
// chunked_prefill_tokens(request): a few more of them while prompts are prefilled), then -- LoRA of
// a mixture's experts, where the request has ep 1 -- the experts spread over the TP ranks (ep = tp:
// each expert's adapters on one rank), then -- LoRA with bf16 products -- the base in bf16 alone
// (frozen_bf16: its merges rounded to bf16), then
// activation recomputation (a third more compute) of as few of each stage's first layers as fit
// (recompute_num_layers; 0: every layer) where the request did not ask for recomputation.
struct LayoutFit {
  int tp = 1, pp = 1, dp = 1;
  bool distributed_optimizer = false;
  bool sequence_parallel = false;
  std::int64_t rollout_step_tokens = 0;
  int ep = 1;  // the request's, or ep = tp offered
  bool frozen_bf16 = false;
  bool recompute_activations = false;
  std::int64_t recompute_num_layers = 0;
  std::int64_t peak = 0;
};
// The budget fitting_layouts offers for chunked prefill: a training micro-batch's rows (2 x
// micro_batch x seq), so that no generation call holds more rows than the policy's forward of
// a micro-batch -- or the request's own budget where it gives one --, at least what the
// pipeline's groups need (generate::min_step_tokens).
std::int64_t chunked_prefill_tokens(const PlanRequest& request);
std::vector<LayoutFit> fitting_layouts(PlanRequest request, int gpus, int gpus_per_node,
                                       std::int64_t capacity);

// "80GiB", "40 GB", "512MiB", "1.5TiB", or a number of bytes.
std::int64_t parse_bytes(const std::string& text);
std::string format_bytes(std::int64_t bytes);

}  // namespace spin::train
