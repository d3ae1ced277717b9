#include "train/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <tuple>

#include "core/error.h"
#include "generate/generator.h"
#include "kernels/kernels.h"
#include "model/decoder_layer.h"
#include "model/flops.h"
#include "model/kv_cache.h"
#include "model/latent_attention.h"
#include "model/rope.h"
#include "model/stage.h"
#include "model/tp_dims.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "parallel/pipeline_schedule.h"
#include "train/pipeline_trainer.h"

namespace spin::train {

namespace {

// Buffers are carved in 64-byte-aligned views of 16 elements (core/workspace.cpp).
std::int64_t aligned(std::int64_t n) { return (n + 15) / 16 * 16; }

// The elements of tensors of these local shapes, each carved in an aligned view, the whole padded to
// a multiple of pad_multiple -- as ModelWeights carves a model's parameters or its adapters.
std::int64_t carved_elements(const std::vector<Shape>& shapes, std::int64_t pad_multiple) {
  std::int64_t n = 0;
  for (const Shape& s : shapes) n += aligned(shape_numel(s));
  return (n + pad_multiple - 1) / pad_multiple * pad_multiple;
}

// This rank's parameter elements on a stage, as ModelWeights lays them out.
std::int64_t stage_params(const model::ModelConfig& c, const model::TpDims& d, std::span<const model::StageLayers> s,
                          std::int64_t pad_multiple) {
  return carved_elements(model::parameter_local_shapes(c, d, s), pad_multiple);
}

// The elements a FrozenBf16 model of the stage keeps in float32 (model::read_in_float32), carved alone.
std::int64_t stage_float32_read_params(const model::ModelConfig& c, const model::TpDims& d,
                                       std::span<const model::StageLayers> s) {
  std::vector<Shape> kept;
  for (const auto& [tensor, local] : model::parameter_specs(c, d, s)) {
    if (model::read_in_float32(tensor)) kept.push_back(local);
  }
  return carved_elements(kept, 1);
}

// This rank's LoRA adapter elements on a stage, as ModelWeights::adapters lays them out (none
// without adapters).
std::int64_t stage_adapter_params(const model::ModelConfig& c, const model::LoraConfig& lora, const model::TpDims& d,
                                  std::span<const model::StageLayers> s, std::int64_t pad_multiple) {
  if (!lora.enabled()) return 0;
  std::vector<Shape> shapes;
  for (const ShardedTensor& t : model::adapter_layout(c, lora, d, s)) {  // (adapters have no padding rows)
    Shape local = t.global_shape;
    if (!t.replicated()) local[static_cast<std::size_t>(t.split_dim)] = t.length;
    shapes.push_back(local);
  }
  return carved_elements(shapes, pad_multiple);
}

// Element counts of a buffer set, split by element size: `act` elements at the precision's
// activation size, `f32` elements at 4 bytes.
struct Elements {
  std::int64_t act = 0, f32 = 0;
  std::int64_t bytes(const Precision& p) const { return act * p.activation + f32 * 4; }
  Elements operator+(const Elements& o) const { return {act + o.act, f32 + o.f32}; }
};

// A micro-batch's rows: `all` for the products and attention; the residual stream's and the
// norms' outputs' (model/context.h SequenceSplit): the same, or under sequence parallelism this
// rank's share, rounded up, and that times tp.
struct Rows {
  std::int64_t all = 0, residual = 0, gathered = 0;
  bool split = false;
  Rows(std::int64_t rows, int tp, bool sequence_parallel)
      : all(rows), residual(rows), gathered(rows), split(sequence_parallel && tp > 1) {
    if (!split) return;
    residual = (rows + tp - 1) / tp;
    gathered = residual * tp;
  }
};

// One layer's buffers (model/decoder_layer.h LayerActivations) for `rows` tokens in `seqs`
// sequences of `seq` tokens. With `attention_state` (a forward over whole sequences, not
// generation) attention keeps its probabilities (`keep_probs`) or a log-sum-exp per head and row.
// `output_in_place`: one set of buffers serves every layer (no backward); a parallel residual
// keeps x_mid only then, for its halves' sum.
// Everything but the residual stream and the norms' statistics -- both norms' outputs, q, k, v,
// the attention output, the MLP's gate, up and SwiGLU -- is at the activation size (bf16 with
// bf16 products), and so are Qwen3's q and k before its head norms; the rest is float32 (Gemma
// 2's o_proj and down_proj outputs before their norms too, with the norms' 1/rms, and OLMo 2's
// q and k before its norms); OLMo 1.7's q, k and v before their clamp are at the activation size.
// A mixture of experts' MLP buffers are its experts' over rows x experts_per_token grouped rows
// and its shared expert's over the rows, with the grouped rows themselves (at the activation size),
// and in float32 the outputs (the experts' and the shared expert's), the logits, the weights, and
// int64 indices: where each output sits and where each grouped row comes from (model/moe.h).
Elements layer_activations(const model::TpDims& d, const Rows& r, std::int64_t seqs, std::int64_t seq, bool keep_probs,
                           bool attention_state, bool output_in_place, const model::ModelConfig& c, bool mixed) {
  const std::int64_t rows = r.all;
  // The input norms' outputs; without those norms (OLMo 2) the stream's bf16 rounding, or in
  // float32 nothing: the products read the stream itself.
  const bool norm_outputs = c.pre_norms || mixed;
  const std::int64_t input_norms = c.mlp_input_norm() ? 2 : 1;  // Cohere's parallel residual: the MLP reads the first
  const std::int64_t mlp_buffers = c.mlp_projections();         // one a projection: gate, up, act (down's input)
  const std::int64_t grouped = d.grouped_rows(c, rows), outputs = rows * c.mlp_outputs();
  // q, k, v and the attention's output -- but generation's absorbed latent attention forms q alone (the latent's
  // own buffers below).
  const bool absorbed = !attention_state && c.latent_attention();
  Elements e;
  e.act = (norm_outputs ? input_norms * aligned(r.residual * d.hidden) : 0) +
          (absorbed ? 1 : 2) * aligned(rows * d.q_width()) + (absorbed ? 0 : 2) * aligned(rows * d.kv_width()) +
          mlp_buffers * aligned(d.mlp_values(c, rows));
  if (c.moe()) {
    e.act += aligned(grouped * d.hidden);
    e.f32 += aligned(outputs * d.hidden) + aligned(model::moe_logits(c, rows)) + aligned(outputs) +
             2 * (aligned(outputs) + aligned(grouped));
  }
  // Residual in and mid, the norms' 1/rms.
  const std::int64_t residuals = c.parallel_residual && !output_in_place ? 1 : 2;
  e.f32 += residuals * aligned(r.residual * d.hidden) + input_norms * aligned(r.residual);
  if (c.sandwich_norms) e.f32 += 2 * aligned(r.residual * d.hidden) + 2 * aligned(r.residual);
  if (c.qk_norm) {  // q and k before the head norms (at the activation size) and their statistics
    e.act += aligned(rows * d.q_width()) + aligned(rows * d.kv_width());
    e.f32 += aligned(rows * d.heads) + aligned(rows * d.kv_heads);
  }
  if (c.qk_norm_all_heads) {  // OLMo 2: q and k before its norms, float32 in either precision, 1/rms per row
    e.f32 += aligned(rows * d.q_width()) + aligned(rows * d.kv_width()) + aligned(2 * rows);
  }
  if (c.qk_head_layernorm) {  // Command R+: q and k before its norms, float32 in either precision, 1/std per head
    e.f32 += aligned(rows * d.q_width()) + aligned(rows * d.kv_width()) + aligned(rows * d.heads) +
             aligned(rows * d.kv_heads);
  }
  if (c.clip_qkv > 0) {  // OLMo 1.7: q, k and v before the clamp (at the activation size)
    e.act += aligned(rows * d.q_width()) + 2 * aligned(rows * d.kv_width());
  }
  if (c.latent_attention()) {  // DeepSeek-V3's latents, kv_b_proj's output, the values (model/latent_attention.h)
    const model::LatentShapes latent = model::latent_activation_shapes(d, c, rows, !attention_state);
    for (const Shape& s : latent.act) e.act += aligned(shape_numel(s));
    for (const Shape& s : latent.f32) e.f32 += aligned(shape_numel(s));
  }
  if (!attention_state) return e;
  e.f32 += keep_probs ? aligned(seqs * seq * seq * d.heads) : aligned(rows * d.heads);
  return e;
}

// The LM head's buffers (model/lm_head.h HeadActivations): the normed input at the activation
// size (with bf16 products also the logits' gradient), the rest float32; the logits for
// `chunk` rows at a time (0: all).
Elements head_activations(const model::TpDims& d, const Rows& r, bool bf16_products, std::int64_t chunk = 0) {
  const std::int64_t rows = r.all;
  const std::int64_t logits = chunk > 0 ? std::min(chunk, rows) : rows;
  return {aligned(r.residual * d.hidden) + (bf16_products ? aligned(logits * d.vocab_rows) : 0),
          aligned(r.residual * d.hidden) + aligned(r.gathered * d.hidden) + aligned(r.residual) + 3 * aligned(rows) +
              aligned(logits * d.vocab_rows) + aligned(2 * rows) + (r.split ? aligned(2 * d.hidden) : 0)};
}

// The backward's scratch (LayerGradScratch), shared by the layers of one micro-batch: float32,
// and with bf16 products the bf16 of one product's output gradient (the widest); with Qwen3's
// head norms the gradients of q and k before them and of their weights (OLMo 2's: and the
// per-row sums), with OLMo 1.7's clip_qkv (Command R+'s per-head LayerNorms) the gradients of q and k
// before the clamp (the norms); with Gemma 2's output
// norms the gradient before them, with Granite's residual multiplier the branch's gradient; with a
// mixture of experts the MLP's gradients over its grouped rows (and shared expert's), the outputs'
// and their inputs' gradients, the weights' and the logits' (float32).
Elements grad_scratch(const model::TpDims& d, const Rows& r, bool bf16_products, const model::ModelConfig& c) {
  const std::int64_t rows = r.all, outputs = rows * c.mlp_outputs();
  const std::int64_t dy = model::product_grad_values(d, c, rows);
  const std::int64_t moe =
      c.moe() ? 2 * aligned(outputs * d.hidden) + aligned(outputs) + aligned(model::moe_logits(c, rows)) : 0;
  const std::int64_t head_norms =
      (c.qk_norm ? aligned(rows * d.q_width()) + aligned(rows * d.kv_width()) + aligned(2 * d.head_dim) : 0) +
      (c.qk_norm_all_heads ? aligned(rows * d.q_width()) + aligned(rows * d.kv_width()) + aligned(2 * rows) : 0) +
      (c.clip_qkv > 0 || c.qk_head_layernorm ? aligned(rows * d.q_width()) + aligned(rows * d.kv_width()) : 0) +
      (c.transforms_branch_outputs() ? aligned(r.residual * d.hidden) : 0);
  std::int64_t latent = 0;  // DeepSeek-V3's latent attention's gradients
  if (c.latent_attention()) {
    for (const Shape& s : model::latent_grad_shapes(d, c, rows)) latent += aligned(shape_numel(s));
  }
  return {bf16_products ? aligned(dy) : 0, aligned(r.residual * d.hidden) + aligned(r.gathered * d.hidden) +
                                               2 * aligned(rows * d.q_width()) + 2 * aligned(rows * d.kv_width()) +
                                               c.mlp_projections() * aligned(d.mlp_values(c, rows)) +
                                               (r.split ? aligned(2 * d.hidden) : 0) + head_norms + moe + latent};
}

// LoRA's buffers of one layer (LayerActivations::lora_u: each adapted projection's u at the
// activation size -- a mixture's MLP targets' over its grouped rows and shared expert's rows --, with
// bf16 products the float32 scratch it is computed in, and under dropout of a mixture's experts'
// adapters the grouped rows' int64 keys) and of the backward's scratch (LayerGradScratch: d/d u in
// float32 and with bf16 products in bf16, the replicated factors' gradients [slots, rank x hidden]
// -- the layer's 7 (8), then a mixture's split experts' 3 each: model::lora_replicated_slots --, the
// frozen norms' unused gradient [hidden];
// with dropout the micro-batch's AdapterDropout scratch, [rows, widest adapted input] in float32 and
// with bf16 products in bf16).
Elements lora_layer(const model::ModelConfig& c, const model::LoraConfig& lora, const model::TpDims& d, const Rows& r,
                    bool bf16_products) {
  if (!lora.enabled()) return {};
  const std::int64_t u = aligned(r.all * lora.rank);
  std::int64_t saved = 0;
  for (int t = 0; t < model::kLoraTargets; ++t) {
    const auto target = static_cast<model::LoraTarget>(t);
    if (lora.targets_(target)) saved += aligned(model::lora_u_rows(d, c, target, r.all) * lora.rank);
  }
  return {saved, (bf16_products ? u : 0) + 2 * aligned(model::moe_dropout_keys(d, c, lora, r.all))};
}
Elements lora_grad_scratch(const model::ModelConfig& c, const model::LoraConfig& lora, const model::TpDims& d,
                           const Rows& r, bool bf16_products) {
  if (!lora.enabled()) return {};
  const std::int64_t u = aligned(r.all * lora.rank);
  const std::int64_t dropped = lora.dropout > 0.0 ? aligned(r.all * model::lora_widest_input(c, lora, d)) : 0;
  return {bf16_products ? u + dropped : 0,
          u + aligned(model::lora_replicated_slots(d, c, lora) * model::lora_replicated_slot(c, lora, d)) +
              aligned(d.hidden) + dropped};
}

// What a stage's forward keeps besides its layers: the head (last stage) or the output sent on,
// and under sequence parallelism the split's scratch: the full rows (float32) and the gathered
// products' input (at the activation size).
Elements stage_end(const model::TpDims& d, const Rows& r, bool last, bool bf16_products, std::int64_t chunk) {
  Elements e = last ? head_activations(d, r, bf16_products, chunk) : Elements{0, aligned(r.residual * d.hidden)};
  if (r.split) e = e + Elements{aligned(r.gathered * d.hidden), aligned(r.gathered * d.hidden)};
  return e;
}

}  // namespace

bool attention_keeps_probs(const Precision& p, std::int64_t head_dim) {
  return p.attention_probs || !kernels::fused_attention_head_dim(head_dim);
}

Precision Precision::cpu() { return {"cpu (float32)", 4, 4, 0, 8, 4, true}; }
Precision Precision::cuda() { return {"cuda (bf16 mixed precision)", 2, 4, 4, 8, 2, false, true}; }

std::int64_t StagePlan::peak() const {
  return weights + grads + masters + optimizer + reference + rope + activations +
         std::max(kv_cache + generation, scoring);
}

std::int64_t MemoryPlan::peak() const {
  std::int64_t p = 0;
  for (const StagePlan& s : stages) p = std::max(p, s.peak());
  return p;
}

namespace {
// The most micro-batches in flight at once on `stage` over a step of m that take their buffers from
// each pool of the trainer (PipelineTrainer::activation_pool): 1F1B's min(pp - stage, m) in one; under
// interleaving (vpp chunks) its order's live counts, the model's last chunk's apart.
std::vector<int> pool_micro_batches_in_flight(const std::vector<model::StageLayers>& chunks, int stage, int pp,
                                               int m) {
  const auto vpp = static_cast<int>(chunks.size());
  if (vpp == 1) return {std::min(pp - stage, m)};
  std::vector<int> live(2, 0), most(live);
  for (const parallel::PipelineAction& a : parallel::interleaved_order(stage, pp, vpp, m)) {
    const auto pool = static_cast<std::size_t>(
        PipelineTrainer::activation_pool(chunks[static_cast<std::size_t>(a.chunk)], vpp));
    live[pool] += a.kind == parallel::PipelineAction::Forward ? 1 : -1;
    most[pool] = std::max(most[pool], live[pool]);
  }
  return most;
}

// A stage's parameter elements on this rank (stage_params, stage_adapter_params,
// stage_float32_read_params), remembered for one model and LoRA configuration: a layout search plans
// the same stages under every option and recomputation it tries, and each count lists the stage's
// tensors by name -- tens of thousands in a large mixture of experts.
class StageParameters {
 public:
  struct Counts {
    std::int64_t params = 0, trained = 0, float32_read = 0;  // float32_read: with a frozen bf16 reference only
  };
  const Counts& of(const PlanRequest& r, const model::TpDims& d, const std::vector<model::StageLayers>& layers) {
    const bool frozen = r.frozen_bf16 && r.precision.bf16_products;
    const std::int64_t pad = r.distributed_optimizer ? r.dp : 1;
    Key key{r.tp, r.ep, pad, frozen, {}};
    for (const model::StageLayers& chunk : layers) {
      std::get<4>(key).push_back(chunk.begin);
      std::get<4>(key).push_back(chunk.end);
    }
    if (const auto known = known_.find(key); known != known_.end()) return known->second;
    Counts n;
    n.params = stage_params(r.config, d, layers, pad);
    n.trained = r.lora.enabled() ? stage_adapter_params(r.config, r.lora, d, layers, pad) : n.params;
    if (frozen) n.float32_read = stage_float32_read_params(r.config, d, layers);
    return known_.emplace(std::move(key), n).first->second;
  }

 private:
  using Key = std::tuple<int, int, std::int64_t, bool, std::vector<std::int64_t>>;  // tp, ep, pad, frozen, chunks
  std::map<Key, Counts> known_;
};

MemoryPlan plan_memory(const PlanRequest& r, StageParameters& parameters) {
  const model::ModelConfig& c = r.config;
  require(r.tp >= 1 && r.pp >= 1 && r.dp >= 1, "tp, pp and dp must be at least 1");
  require(r.micro_batch >= 1, "micro-batch ", r.micro_batch, " must be at least 1");
  require(r.micro_batch_tokens >= 0, "micro-batch tokens ", r.micro_batch_tokens, " must not be negative");
  require(r.seq >= 2, "sequence length ", r.seq, " must be at least 2");
  require(r.seq <= c.max_sequence_length(), "sequence length ", r.seq, " is beyond the model's ",
          c.max_sequence_length(), " positions");
  const model::TpDims d = model::tp_dims(c, 0, r.tp, r.ep);  // throws naming what tp (or ep) does not divide
  require(r.vpp >= 1 && (r.vpp == 1 || r.pp >= 2), "vpp ", r.vpp,
          ": model chunks a stage of a pipeline of 2 stages or more");
  require(r.vpp == 1 || r.pp * r.vpp <= c.num_layers, "vpp ", r.vpp, " at pp ", r.pp, ": ", r.pp * r.vpp,
          " model chunks, but the model has ", c.num_layers, " layers");
  const std::vector<std::int64_t> counts = stage_layers(r);

  MemoryPlan plan;
  if (r.global_batch > 0) {
    require(r.global_batch % (r.micro_batch * r.dp) == 0, "global batch ", r.global_batch,
            " is not a multiple of micro-batch ", r.micro_batch, " x dp ", r.dp);
    plan.micro_batches = r.global_batch / (r.micro_batch * r.dp);
    const std::int64_t grouped = r.micro_batch_tokens > 0 ? r.global_batch / r.dp : plan.micro_batches;
    require(r.vpp == 1 || grouped >= r.pp, "vpp ", r.vpp, ": ", grouped,
            r.micro_batch_tokens > 0 ? " prompts a step and rank" : " micro-batches a step", " are fewer than the ",
            r.pp, " stages, which the interleaved schedule needs at least");
  } else {
    plan.micro_batches = r.pp;
  }
  const std::int64_t prompts_per_rank = r.global_batch > 0 ? r.global_batch / r.dp : r.micro_batch * plan.micro_batches;
  const std::int64_t rollout = std::min(r.rollout_batch > 0 ? r.rollout_batch : r.micro_batch, prompts_per_rank);
  const Precision& p = r.precision;
  // A training micro-batch's rows at most: micro_batch pairs of seq tokens a sequence or, with micro_batch_tokens,
  // that many tokens (a longer pair alone: 2 seq) -- in as many sequences of seq tokens as fill them, the most
  // attention probabilities those rows can hold (each sequence's len^2, len <= seq).
  const std::int64_t all_rows = 2 * r.micro_batch * r.seq;
  const std::int64_t rows =
      r.micro_batch_tokens > 0 ? std::min(all_rows, std::max(r.micro_batch_tokens, 2 * r.seq)) : all_rows;
  const std::int64_t seqs = std::min(2 * r.micro_batch, (rows + r.seq - 1) / r.seq);
  // By tokens a step may hold up to a micro-batch a pair: the most in flight.
  const std::int64_t most_micro_batches = r.micro_batch_tokens > 0 ? prompts_per_rank : plan.micro_batches;

  for (int stage = 0; stage < r.pp; ++stage) {
    const std::vector<model::StageLayers> layers = model::stage_chunks(counts, stage, r.pp);  // one range a chunk
    const bool last = layers.back().last;
    StagePlan s;
    s.stage = stage;
    s.layers = model::layer_count(layers);
    const StageParameters::Counts& counted = parameters.of(r, d, layers);
    s.params = counted.params;
    // The trained parameters: the model's, or with LoRA the adapters' (the policy is then the
    // reference + the adapters: no second copy of the model).
    s.trained = counted.trained;
    const std::int64_t owned = r.distributed_optimizer ? s.trained / r.dp : s.trained;
    s.weights = s.trained * p.weight;
    s.grads = s.trained * p.grad;
    // The distributed optimizer shards the AdamW moments but not the float32 masters (unlike
    // Megatron's): every rank keeps all of them -- the embedding and the norms read them in the
    // forward -- and the all-gather moves float32 parameters.
    s.masters = s.trained * p.master;
    s.optimizer = owned * p.moments;
    // The Transformer's cos and sin tables, [positions, rotary_dim / 2] each, float32 on every path,
    // grown to cover the longest sequence (LongRoPE: its short table, and past its switch the long
    // one); Gemma 3 has a second pair for its windowed layers.
    const std::int64_t rope_rows =
        model::RopeTable::rows_held(r.seq, c.max_sequence_length(), c.rope_scaling) +
        (c.rope_local_theta ? model::RopeTable::rows_for(r.seq, c.max_sequence_length()) : 0);
    s.rope = 2 * rope_rows * (c.rotary_dim / 2) * 4;
    const bool offload = r.ref_offload && p.master > 0;  // the CPU path has no host/device split
    // The reference is a model like the policy: its values (the masters' precision) and, with
    // bf16 products, the bf16 copy they read; offloaded, its float32 values alone (the policy's
    // buffers hold it while it works: train/spin_trainer.h). FrozenBf16: the bf16 values and the
    // float32-read tensors, wherever it is.
    const bool frozen = r.frozen_bf16 && p.bf16_products;
    const std::int64_t held =
        frozen ? s.params * 2 + counted.float32_read * 4 : s.params * (offload ? 4 : p.weight + p.master);
    (offload ? s.reference_host : s.reference) = held;

    // Training: every layer's activations, the head (last stage) or the output sent on, and the
    // backward's scratch, for each micro-batch in flight.
    const bool mixed = p.bf16_products;
    const Rows split(rows, r.tp, r.sequence_parallel);
    const bool keep_probs = attention_keeps_probs(p, d.head_dim);
    const Elements layer = layer_activations(d, split, seqs, r.seq, keep_probs, true, false, c, mixed);
    const Elements end = stage_end(d, split, last, mixed, r.logits_chunk_rows);  // the stage's last chunk's
    const Elements scratch = grad_scratch(d, split, mixed, c) + lora_grad_scratch(c, r.lora, d, split, mixed);
    // With recomputation a micro-batch keeps each recomputed layer's input and one set of layer
    // buffers for them all (plus the recomputed forward's output), and every other layer's set
    // (model::Transformer::recomputed_layers).
    // A set of buffers for each micro-batch in flight that takes one from a pool of the trainer's
    // (PipelineTrainer::activation_pool): its chunk's layers -- recomputation counted per chunk, as
    // each chunk's Transformer does it -- and the head's or the output sent on. A set of the shared
    // pool serves every chunk but the model's last in turn: the largest of them (exact for chunks
    // of as many layers, as an even split makes them; an upper bound otherwise).
    const Elements trained_layer = layer + lora_layer(c, r.lora, d, split, mixed);
    const auto m = static_cast<int>(most_micro_batches);
    const std::vector<int> in_flight = pool_micro_batches_in_flight(layers, stage, r.pp, m);
    std::vector<std::int64_t> set(in_flight.size(), 0);
    for (const model::StageLayers& chunk : layers) {
      const std::int64_t recomputed =
          model::recomputed_layers(r.recompute_activations, r.recompute_num_layers, chunk.count());
      const std::int64_t sets = chunk.count() - recomputed + (recomputed > 0 ? 1 : 0);
      const Elements kept = Elements{0, recomputed > 0 ? (recomputed + 1) * aligned(split.residual * d.hidden) : 0} +
                            Elements{trained_layer.act * sets, trained_layer.f32 * sets};
      const auto pool = static_cast<std::size_t>(PipelineTrainer::activation_pool(chunk, r.vpp));
      const Elements end_of_chunk = stage_end(d, split, chunk.last, mixed, r.logits_chunk_rows);
      set[pool] = std::max(set[pool], kept.bytes(p) + end_of_chunk.bytes(p) + scratch.bytes(p));
    }
    s.micro_batches_in_flight = 0;
    for (std::size_t pool = 0; pool < set.size(); ++pool) {
      s.activations_per_micro_batch = std::max(s.activations_per_micro_batch, set[pool]);
      s.activations += set[pool] * in_flight[pool];
      s.micro_batches_in_flight += in_flight[pool];
    }
    // Reference scoring: one set of layer buffers reused layer after layer.
    s.scoring = layer_activations(d, split, seqs, r.seq, keep_probs, true, true, c, mixed).bytes(p) + end.bytes(p);
    // Generation: keys and values of every layer of the stage for the rollout -- a windowed
    // layer's ring of its window and a call's tokens a sequence (model::kv_capacities) --, and one
    // set of buffers for the largest call (every sequence's prompt, or chunk of one, at most, or
    // the step's tokens).
    const std::int64_t prompt = r.prompt > 0 ? std::min(r.prompt, r.seq) : r.seq;
    const std::int64_t call_rows = model::rows_per_call(c, prompt, r.rollout_step_tokens);
    std::int64_t cached_rows = 0;
    for (const model::StageLayers& chunk : layers) {  // each chunk's cache
      const std::vector<std::int64_t> capacities = model::kv_capacities(c, chunk, r.seq, call_rows);
      cached_rows += std::accumulate(capacities.begin(), capacities.end(), std::int64_t{0});
    }
    s.kv_cache = cached_rows * rollout * d.cache_values() * p.activation;
    // A call feeds each sequence in flight at most call_rows tokens (a prompt, or a chunk of one).
    const std::int64_t prefill =
        r.rollout_step_tokens > 0 ? std::min(rollout * call_rows, r.rollout_step_tokens) : rollout * call_rows;
    s.generation =
        layer_activations(d, Rows(prefill, r.tp, false), rollout, r.seq, false, false, true, c, mixed).bytes(p) +
        Elements{0, aligned(prefill * d.hidden)}.bytes(p) +
        (last ? head_activations(d, Rows(rollout, r.tp, false), mixed).bytes(p) : 0);
    plan.stages.push_back(s);
  }
  return plan;
}
}  // namespace

MemoryPlan plan_memory(const PlanRequest& r) {
  StageParameters parameters;
  return plan_memory(r, parameters);
}

std::vector<std::int64_t> stage_layers(const PlanRequest& r) {
  if (r.pp_layers.empty() && r.balanced_layers) return model::balanced_layers(r.config, r.pp * r.vpp, r.seq);
  return model::split_layers(r.config.num_layers, r.pp * r.vpp, r.pp_layers);
}

std::int64_t chunked_prefill_tokens(const PlanRequest& request) {
  const std::int64_t rollout = request.rollout_batch > 0 ? request.rollout_batch : request.micro_batch;
  const std::int64_t wanted =
      request.rollout_step_tokens > 0 ? request.rollout_step_tokens : 2 * request.micro_batch * request.seq;
  return std::max(wanted, generate::min_step_tokens(rollout, request.pp));
}

namespace {
// The fewest of each stage's first layers whose recomputation makes `request` (which fits
// recomputing every layer, and not without recomputation) fit `capacity`, 0 when it takes them
// all: the peak falls as more are recomputed (each one past the first saves a layer's buffers
// for its input; one saves nothing), so by bisection.
std::int64_t fewest_recomputed_layers(PlanRequest request, std::int64_t capacity, StageParameters& parameters) {
  // The largest (virtual) stage's layers: recomputation counts a chunk's first layers
  // (model::recomputed_layers), so as many recompute every layer of every chunk.
  const std::vector<std::int64_t> counts = stage_layers(request);
  const std::int64_t most = *std::max_element(counts.begin(), counts.end());
  std::int64_t fits = most, short_of = 1;  // one recomputed layer saves nothing
  while (fits - short_of > 1) {
    request.recompute_num_layers = (fits + short_of) / 2;
    (plan_memory(request, parameters).peak() <= capacity ? fits : short_of) = request.recompute_num_layers;
  }
  return fits == most ? 0 : fits;
}
}  // namespace

std::vector<LayoutFit> fitting_layouts(PlanRequest request, int gpus, int gpus_per_node, std::int64_t capacity) {
  std::vector<LayoutFit> out;
  StageParameters parameters;  // the request's model and LoRA throughout
  const int asked_ep = request.ep;
  for (int tp = 1; tp <= std::min(gpus, gpus_per_node); ++tp) {
    if (gpus % tp != 0 || tp % asked_ep != 0) continue;  // the expert-parallel groups within TP
    for (int pp = 1; pp <= gpus / tp; ++pp) {
      if ((gpus / tp) % pp != 0 || pp > request.config.num_layers) continue;
      request.tp = tp;
      request.pp = pp;
      request.dp = gpus / (tp * pp);
      request.pp_layers.clear();
      // The cheapest way to fit first: as asked; the distributed optimizer (no extra work);
      // sequence parallelism (no extra compute, the same TP bytes but for the backward's
      // all-gathers of the norms' outputs); chunked prefill (more generation calls while
      // prompts are prefilled); activation recomputation (a third more compute).
      const bool asked_split = request.sequence_parallel, asked_recompute = request.recompute_activations;
      const bool asked_frozen = request.frozen_bf16;
      const std::int64_t asked_chunk = request.rollout_step_tokens;
      // LoRA's base in bf16 alone changes its merges (rounded to bf16): offered after what changes no
      // result, before recomputation's compute.
      const bool can_freeze = request.lora.enabled() && request.precision.bf16_products;
      // LoRA of a mixture's experts: the experts spread over the TP ranks (ep = tp) keep each expert's
      // adapters on one rank (no copies of their replicated factors): the same results to rounding, the
      // step at the mercy of the routing's balance -- offered after chunked prefill.
      const bool can_spread = asked_ep == 1 && tp > 1 && request.config.moe() && request.lora.targets_mlp() &&
                              request.config.num_experts % tp == 0;
      struct Option {
        bool distributed, split;
        std::int64_t chunk;
        int ep;
        bool frozen, recompute;
        bool operator==(const Option&) const = default;
      };
      std::vector<Option> options;
      const std::int64_t budget = chunked_prefill_tokens(request);  // at least what this pp needs
      for (bool recompute : {asked_recompute, true}) {
        for (bool frozen : {asked_frozen, asked_frozen || can_freeze}) {
          for (int ep : {asked_ep, can_spread ? tp : asked_ep}) {
            for (std::int64_t chunk : {asked_chunk > 0 ? budget : 0, budget}) {
              for (bool split : {asked_split, tp > 1}) {
                for (bool distributed : {false, request.dp > 1}) {
                  const Option o{distributed, split, chunk, ep, frozen, recompute};
                  if (std::find(options.begin(), options.end(), o) == options.end()) options.push_back(o);
                }
              }
            }
          }
        }
      }
      for (const Option& o : options) {
        request.distributed_optimizer = o.distributed;
        request.sequence_parallel = o.split;
        request.rollout_step_tokens = o.chunk;
        request.ep = o.ep;
        request.frozen_bf16 = o.frozen;
        request.recompute_activations = o.recompute;
        try {
          std::int64_t peak = plan_memory(request, parameters).peak();
          if (peak <= capacity) {
            // Recomputation added here (nothing cheaper fits, so neither does one layer's):
            // only as many layers as it takes.
            const std::int64_t layers = o.recompute && !asked_recompute
                                            ? fewest_recomputed_layers(request, capacity, parameters)
                                            : request.recompute_num_layers;
            if (layers != request.recompute_num_layers) {
              PlanRequest fewer = request;
              fewer.recompute_num_layers = layers;
              peak = plan_memory(fewer, parameters).peak();
            }
            out.push_back({tp, pp, request.dp, o.distributed, o.split && tp > 1, o.chunk, o.ep,
                           o.frozen && !asked_frozen, o.recompute, o.recompute ? layers : 0, peak});
            break;  // fits: nothing more is needed
          }
        } catch (const Error&) {
          break;  // this (tp, pp) is impossible for the model or the batch
        }
      }
      request.sequence_parallel = asked_split;
      request.rollout_step_tokens = asked_chunk;
      request.ep = asked_ep;
      request.frozen_bf16 = asked_frozen;
      request.recompute_activations = asked_recompute;
    }
  }
  std::sort(out.begin(), out.end(), [](const LayoutFit& a, const LayoutFit& b) {
    if (a.tp * a.pp != b.tp * b.pp) return a.tp * a.pp < b.tp * b.pp;
    if (a.pp != b.pp) return a.pp < b.pp;
    return a.peak < b.peak;
  });
  return out;
}

std::int64_t parse_bytes(const std::string& text) {
  std::size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit;
  for (std::size_t i = used; i < text.size(); ++i) {
    if (!std::isspace(static_cast<unsigned char>(text[i]))) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  }
  // k, m, g, t and KiB ... TiB are binary; KB ... TB decimal.
  double scale = unit.empty() || unit == "b" ? 1.0 : -1.0;
  const std::string prefixes = "kmgt";
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    const std::string u(1, prefixes[i]);
    if (unit == u || unit == u + "ib") scale = std::pow(1024.0, static_cast<double>(i + 1));
    if (unit == u + "b") scale = std::pow(1000.0, static_cast<double>(i + 1));
  }
  // (Finite and below 2^63 bytes: "inf" reads as a double, and converting it would be undefined.)
  require(used > 0 && scale > 0 && value >= 0 && value * scale < 9.2e18, "\"", text,
          "\" is not a size (e.g. 80GiB, 40GB, 512MiB)");
  return static_cast<std::int64_t>(value * scale);
}

std::string format_bytes(std::int64_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (bytes >= (std::int64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1 << 30));
  } else if (bytes >= (1 << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  }
  return buf;
}

}  // namespace spin::train
