// LoRA adapters (model/lora.h) as the layers apply them: one adapter at one site -- a dense
// projection of the decoder layer, or one expert's projection over its block of a mixture's grouped
// rows (model/moe.cpp) -- with LoRA's dropout of its input and the saved u its backward reads.
#pragma once

#include <cstdint>
#include <utility>

#include "core/tensor.h"
#include "model/context.h"
#include "model/lora.h"
#include "model/tp_regions.h"

namespace spin::model {

// One adapter over n rows: its factors (and their bf16 views in mixed precision), its scale, the
// rows of the saved u ([n, rank]: float32, or bf16 in mixed precision) and, under LoRA's dropout,
// its mask over these rows (`dropout` null: none).
struct AdapterSite {
  const LoraFactors& w;
  const LoraFactors& w16;
  float scale = 0.0f;
  Tensor u;
  const AdapterDropout* dropout = nullptr;
  kernels::Kernels::DropoutMask mask;
};

// The adapter's input: x (or x16) itself, or under dropout x keep / (1 - p) in the dropout's
// scratch -- the same mask in the forward and the backward, drawn twice.
ColumnInput adapter_site_input(const ModelContext& ctx, const AdapterSite& site, const Tensor& x, const Tensor& x16,
                               std::int64_t n, std::int64_t in);

// Adds the adapter's term to its projection's output: float32 y, or in mixed precision bf16 y16 in
// place (one rounding of the sum) when y16 is not null. u32: mixed precision's float32 scratch for
// u ([n, rank] at least).
void adapter_site_forward(const ModelContext& ctx, const AdapterSite& site, const Tensor& u32, const Tensor& x,
                          const Tensor& x16, float* y, std::uint16_t* y16, std::int64_t n, std::int64_t in,
                          std::int64_t out);

// Its backward from dy (float32; dy16 its bf16 as the projection's own backward left it): da +=
// and db += the factors' gradients, dx += the input's (under dropout through the mask: the
// dropout's float32 scratch holds it first; dx may be null). du, du16: [n, rank] scratch.
void adapter_site_backward(const ModelContext& ctx, const AdapterSite& site, float* da, float* db, const float* dy,
                           const Tensor& dy16, const Tensor& x, const Tensor& x16, const Tensor& du, const Tensor& du16,
                           float* dx, std::int64_t n, std::int64_t in, std::int64_t out);

// A replicated projection's adapter's part of its input gradient over rows [first, first + count) of the
// site's alone (model/latent_attention.h: each TP rank forms its share of the rows'): dx += (scale dy B) A
// through the dropout's mask of those rows. dy, dx: those rows'; dy16 their bf16 as the projection's
// backward left it (mixed precision). du, du16: [count, rank] scratch.
void adapter_site_input_backward(const ModelContext& ctx, const AdapterSite& site, const float* dy, const Tensor& dy16,
                                 const Tensor& du, const Tensor& du16, float* dx, std::int64_t first,
                                 std::int64_t count, std::int64_t in, std::int64_t out);

// Where an adapter's factors' gradients go (da, db): the split factor's into its gradient `grad`;
// the replicated one's (a column-parallel adapter's A, a row-parallel one's B) -- where its projection is
// split over several ranks (`partial`: each rank's partial sum) -- into slot `slot` of `replicated`
// ([slots, rank x hidden], all-reduced once a layer before it is added), else into its gradient too.
std::pair<float*, float*> adapter_grads(const LoraFactors& grad, LoraTarget t, const Tensor& replicated,
                                        std::int64_t slot, bool partial);
// The slots of LayerGradScratch::lora_replicated: a layer's own targets' first -- the dense projections' 0 to 6
// by LoraTarget, latent attention's kv_b_proj's 7 (its q_b_proj is Q's; its replicated projections' adapters
// need none) --, then a mixture's shared expert's three (expert = num_experts), then its experts' three each
// where an expert is split over several ranks (TpDims::expert_tp > 1; whole on its rank under expert
// parallelism at ep = tp, its factors' gradients are whole there: no slot, no reduction).
inline std::int64_t lora_layer_slots(const ModelConfig& c) { return c.latent_attention() ? 8 : 7; }
inline std::int64_t adapter_slot(LoraTarget t) { return t == LoraTarget::KvB ? 7 : static_cast<std::int64_t>(t); }
inline std::int64_t expert_adapter_slot(const ModelConfig& c, std::int64_t expert, LoraTarget t) {
  const std::int64_t block = expert == c.num_experts ? 0 : expert + (c.shared_expert() ? 1 : 0);
  return lora_layer_slots(c) + 3 * block + static_cast<std::int64_t>(expert_lora(t));
}

}  // namespace spin::model
