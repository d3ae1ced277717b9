// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"; PEFT's LoraConfig):
// a projection y = x W^T of a frozen base model becomes y = x W^T + s (x A^T) B^T with a trained
// pair A [rank, in], B [out, rank] and s = alpha / rank (rsLoRA, Kalajdzievski 2023: alpha /
// sqrt(rank), PEFT's use_rslora). A starts as PEFT draws it (uniform in
// +-1/sqrt(in): kaiming_uniform_ with a = sqrt(5)), B at zero, so an adapted model starts as its
// base.
//
// Under tensor parallelism an adapter follows its projection's split. A column-parallel
// projection (q/k/v, gate/up: W's rows split) splits B's rows and keeps A whole on every rank;
// a row-parallel one (o_proj, down_proj: W's columns split) splits A's columns and keeps B whole.
// Either way x A^T B^T needs no communication of its own: a column-parallel region's input is
// every rank's, and a row-parallel product's partial sums join the projection's own all-reduce.
// The whole (replicated) factor's gradient is each rank's partial sum -- from its rows of B, or its
// columns of A -- and is all-reduced over TP (LayerGradScratch::lora_replicated). A replicated
// projection (latent attention's q_a_proj and kv_a_proj_with_mqa, computed whole on every rank) keeps
// both factors whole, their gradients whole and the same on every rank (model/latent_attention.h).
//
// The products run as the projection's do: float32, or with bf16 operands and float32
// accumulation (mixed precision; the scaled u = s x A^T is rounded to bf16 as the second product's
// input, and a bf16 output -- q/k/v, gate/up -- takes the adapter's term in one rounding of the sum,
// as PEFT under autocast adds the bf16 outputs of base and adapter).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "core/tensor.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/tp_dims.h"

namespace spin::model {

// The projections an adapter may target: the attention's and the MLP's in the layer's order, then
// latent attention's own (ModelConfig::latent_attention: q_a_proj, kv_a_proj_with_mqa, kv_b_proj; its
// q_b_proj is Q's projection, as spin holds it in q_proj).
enum class LoraTarget { Q, K, V, O, Gate, Up, Down, QA, KvA, KvB };
inline constexpr int kLoraTargets = 10;
// PEFT's target_modules name: "q_proj", ..., "down_proj", "q_a_proj", "kv_a_proj_with_mqa", "kv_b_proj".
const char* lora_target_name(LoraTarget t);
// Whether the target's projection is row-parallel (o_proj, down_proj).
inline bool lora_row_parallel(LoraTarget t) { return t == LoraTarget::O || t == LoraTarget::Down; }
// Whether it is replicated over TP, computed whole on every rank (latent attention's q_a_proj and
// kv_a_proj_with_mqa): its adapter's factors whole on every rank too.
inline bool lora_replicated(LoraTarget t) { return t == LoraTarget::QA || t == LoraTarget::KvA; }
// Whether the model has target t's projection: no gate in a plain MLP; latent attention has no k_proj
// or v_proj, q_a_proj only with a q_lora_rank, and only it has the latent projections.
bool lora_target_in_model(const ModelConfig& c, LoraTarget t);
// The MLP's targets (gate_proj, up_proj, down_proj): in a mixture of experts, every expert's.
inline bool lora_mlp_target(LoraTarget t) {
  return t == LoraTarget::Gate || t == LoraTarget::Up || t == LoraTarget::Down;
}
inline constexpr LoraTarget kLoraMlpTargets[] = {LoraTarget::Gate, LoraTarget::Up, LoraTarget::Down};
// An MLP target's index in an expert's adapters (LayerWeights::Expert::lora): gate 0, up 1, down 2.
inline std::size_t expert_lora(LoraTarget t) {
  return static_cast<std::size_t>(t) - static_cast<std::size_t>(LoraTarget::Gate);
}

struct LoraConfig {
  std::int64_t rank = 0;  // 0: no adapters, full fine-tuning
  double alpha = 16.0;
  bool rslora = false;    // scale alpha / sqrt(rank) instead of alpha / rank
  // PEFT's lora_dropout: in training, each adapter's input x becomes x keep / (1 - p), keep ~
  // Bernoulli(1 - p) per element (model/context.h's AdapterDropout); 0: none.
  double dropout = 0.0;
  std::array<bool, kLoraTargets> targets{};

  bool enabled() const { return rank > 0; }
  bool targets_(LoraTarget t) const { return targets[static_cast<std::size_t>(t)]; }
  bool targets_mlp() const {
    return targets_(LoraTarget::Gate) || targets_(LoraTarget::Up) || targets_(LoraTarget::Down);
  }
  float scale() const {
    return static_cast<float>(alpha / (rslora ? std::sqrt(static_cast<double>(rank)) : static_cast<double>(rank)));
  }
  // "q_proj,k_proj,..." in the layer's order (the form parse_lora_targets reads).
  std::string targets_text() const;
  // "rank 16, alpha 32, targets q_proj,..." (", rsLoRA" with it) -- what checkpoints record to
  // refuse another run's (the adapters' shapes and the model they make; not the dropout, a
  // training setting a resumed run may change) -- or "" without adapters.
  std::string summary() const;
  // Throws naming `setting_prefix` ("lora.") for a negative rank, a non-positive alpha, a dropout
  // outside [0, 1), or a rank without targets.
  void validate(const char* setting_prefix) const;
};

// "all-linear" (PEFT's name for every projection; NeMo's "all": every target, which
// lora_targets_of_model narrows to a model's) or a comma-separated list of
// target names -- PEFT's (q_proj, ..., down_proj; DeepSeek's q_b_proj: q; Phi-3's qkv_proj: q, k and v, gate_up_proj:
// gate and up; Phi-2's dense, fc1, fc2; Mixtral's experts' w1: gate, w3: up, w2: down; GPT-NeoX's
// query_key_value: q, k and v, dense_h_to_4h: up, dense_4h_to_h: down) or NeMo's
// (attention_qkv: q, k and v; attention_dense: o; mlp_fc1: gate and up; mlp_fc2: down); throws
// naming `setting` for another word or an empty list.
std::array<bool, kLoraTargets> parse_lora_targets(const std::string& text, const char* setting);
// `targets` as parsed from `text` (parse_lora_targets) for model `c`: "all-linear" (or "all") keeps the
// projections the model has (lora_target_in_model); a list naming one it lacks is refused by name
// (`setting`), with the model's projections.
std::array<bool, kLoraTargets> lora_targets_of_model(const ModelConfig& c, std::array<bool, kLoraTargets> targets,
                                                     const std::string& text, const char* setting);

// The widest input of an adapted projection on this rank ([rows, it] is LoRA dropout's scratch):
// the hidden size for q/k/v, gate/up and the latent projections, q_lora_rank for latent attention's
// q_b_proj, kv_lora_rank for its kv_b_proj, this rank's attention columns for o_proj, its MLP columns
// for down_proj (the widest of a mixture's experts' and its shared expert's).
std::int64_t lora_widest_input(const ModelConfig& c, const LoraConfig& lora, const TpDims& dims);
// Target t's projection's input and output widths on this rank (a dense MLP's: an expert's take their
// widths; a replicated projection's whole).
std::pair<std::int64_t, std::int64_t> lora_projection_extents(const ModelConfig& c, const TpDims& d, LoraTarget t);

// One adapter's factors (float32, or their bf16 copies).
struct LoraFactors {
  Tensor a, b;  // [rank, in], [out, rank] (this rank's shards)
};

// The adapted projection's term, for n rows: u = scale * x A^T (saved: float32 u, or in mixed
// precision u16 = bf16 of u computed into the float32 scratch u), then y += u B^T into the float32
// output y or, when y16 is given, into the bf16 output y16 (one rounding of the sum). x: x or x16.
void lora_forward(const kernels::Kernels& k, const LoraFactors& w, const LoraFactors& w16, float scale,
                  const Tensor& x, const Tensor& x16, const Tensor& u, const Tensor& u16, float* y,
                  std::uint16_t* y16, std::int64_t n, std::int64_t in, std::int64_t out);

// Its backward from dy ([n, out] float32; in mixed precision dy16 holds bf16(dy), as the
// projection's own backward leaves it): dB += dy^T u, du = scale dy B (scratch, and du16 its bf16
// in mixed precision), dA += du^T x, dx += du A (dx = du A without accumulate_dx; dx may be null,
// and may be x's buffer: x is read before dx is written).
void lora_backward(const kernels::Kernels& k, const LoraFactors& w, const LoraFactors& w16, float scale, float* da,
                   float* db, const float* dy, const Tensor& dy16, const Tensor& x, const Tensor& x16, const Tensor& u,
                   const Tensor& u16, const Tensor& du, const Tensor& du16, float* dx, std::int64_t n, std::int64_t in,
                   std::int64_t out, bool accumulate_dx = true);

// W += scale B A: the adapter merged into its projection's shard (the same split), float32.
void lora_merge(const kernels::Kernels& k, const Tensor& w, const LoraFactors& f, float scale, std::int64_t in,
                std::int64_t out);

}  // namespace spin::model
