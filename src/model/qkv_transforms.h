// What happens to the q, k and v products before attention, by family: Qwen3's RMSNorm of every
// query and key head (its weights' gradients all-reduced over TP), OLMo 2's norms of q and k across
// every head of the TP group (their statistics all-reduced over TP), Command R+'s LayerNorm of each
// head with its own weight (split with the heads: no communication), OLMo 1.7's clamp of q, k and v
// (clip_qkv). Where a model has one, the products write LayerActivations' q_raw / k_raw (v_raw for
// the clamp), kept for the backward, and the forward here writes q, k and v from them.
#pragma once

#include <cstdint>

#include "model/context.h"
#include "model/decoder_layer.h"
#include "model/weights.h"

namespace spin::model {

// Whether the q and k products go to q_raw / k_raw (a transform follows); v's to v_raw.
bool transforms_qk(const ModelContext& ctx, const LayerWeights& w);
bool transforms_v(const ModelContext& ctx);

// q, k and v of `rows` rows from the products' raw outputs, where the model transforms them.
void qkv_transforms_forward(const ModelContext& ctx, const LayerWeights& w, LayerActivations& a, std::int64_t rows);

// Its backward: s.dq_raw / s.dk_raw from s.dq / s.dk (the norms' weight gradients into g's, none
// for a frozen weight), s.dv in place through the clamp.
void qkv_transforms_backward(const ModelContext& ctx, const BatchGeometry& b, const LayerWeights& w, LayerWeights& g,
                             const LayerActivations& a, LayerGradScratch& s);

}  // namespace spin::model
