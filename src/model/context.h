// What every layer of the model needs besides its weights and activations: the architecture,
// this rank's share of it, the TP communicator, the kernels and the RoPE tables.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/rope.h"
#include "model/tp_dims.h"
#include "parallel/communicator.h"

namespace spin::model {

struct ModelContext {
  const ModelConfig& config;
  const TpDims& dims;
  parallel::Communicator& tp;
  const kernels::Kernels& k;
  const RopeTable& rope;
  // Gemma 3: the windowed layers' table (ModelConfig::rope_local_theta); null otherwise.
  const RopeTable* local_rope = nullptr;

  // The table layer `layer` rotates by; null for a layer without RoPE (SmolLM3's NoPE layers).
  const RopeTable* rope_for(std::int64_t layer) const {
    if (!config.rotates(layer)) return nullptr;
    return local_rope != nullptr && config.windowed(layer) ? local_rope : &rope;
  }
};

// Sequence parallelism (Megatron's --sequence-parallel), how a batch's rows are split: outside
// the tensor-parallel regions -- the residual stream, the norms and their statistics -- TP rank
// r holds rows [first, first + local) of the batch padded to `padded` = local x tp rows (the
// pad rows, at the end, are zeros and never reach a product). Entering a column-parallel region
// all-gathers the rows, leaving a row-parallel one reduce-scatters them: the all-reduce's bytes
// on the wire, 1/tp of the stream's activations.
struct SequenceSplit {
  std::int64_t padded = 0;
  std::int64_t local = 0;
  std::int64_t first = 0;
  // Scratch on the kernels' device, shared by the layers: [padded, hidden] floats (a row-parallel
  // product's partial sums, a gathered gradient), and the products' input gathered from every
  // rank's norm output ([padded, hidden], float32 or with bf16 products bf16).
  Tensor full, gathered;

  // The split of `rows` over a TP group of `size` at `rank`, without its scratch.
  static SequenceSplit of(std::int64_t rows, int size, int rank) {
    SequenceSplit s;
    s.local = (rows + size - 1) / size;
    s.padded = s.local * size;
    s.first = s.local * rank;
    return s;
  }
};

// LoRA's dropout (PEFT's lora_dropout) in a training forward and its backward: each adapter's input
// x becomes x keep / (1 - p) (Kernels::dropout), the mask keyed by the step's seed, the row's key
// (TokenBatch::row_keys), the layer and target, and the global column -- the same under any layout,
// and again when the backward (or a recomputed forward) needs it, so no mask is stored.
struct AdapterDropout {
  float p = 0.0f;
  std::uint64_t seed = 0;
  const std::int64_t* row_keys = nullptr;  // [rows], on the kernels' device
  std::vector<std::int64_t> host_row_keys;  // the same on the host (a mixture's experts gather theirs)
  // Scratch shared by the layers, [rows, the widest adapted input]: float32 (the dropped input, or
  // in the backward the input gradient before its mask) and, in mixed precision, bf16 (the dropped
  // input).
  Tensor x, x16;

  // The mask of adapter `target` of layer `layer` (global indices) over columns from `col_offset`: the
  // dense projections' streams layer * 8 + target, latent attention's (LoraTarget::QA and after: 7, 8, 9)
  // streams of their own, so that adding them moved no earlier target's mask.
  kernels::Kernels::DropoutMask mask(std::int64_t layer, int target, std::int64_t col_offset) const {
    constexpr int kDenseTargets = 7;
    const std::int64_t stream =
        target < kDenseTargets ? layer * 8 + target : 0x40000000 + layer * 4 + (target - kDenseTargets);
    return {row_keys, seed, static_cast<std::uint32_t>(stream), p, col_offset};
  }
  // The mask of expert `expert`'s adapter `target` in a mixture of experts (the shared expert's:
  // expert = num_experts) over the grouped rows whose keys `keys` holds -- a stream of its own, apart
  // from every dense projection's.
  kernels::Kernels::DropoutMask expert_mask(std::int64_t layer, std::int64_t expert, int target,
                                            std::int64_t col_offset, const std::int64_t* keys) const {
    const auto stream =
        static_cast<std::uint32_t>(0x80000000u | static_cast<std::uint32_t>((layer * 4096 + expert) * 8 + target));
    return {keys, seed, stream, p, col_offset};
  }
};

// The packed-batch geometry the layers need (see batch.h).
struct BatchGeometry {
  std::int64_t rows = 0;
  std::int64_t num_seqs = 0;
  const std::int64_t* cu_seqlens = nullptr;
  const std::int32_t* positions = nullptr;
  // Each row's row of the global RoPE table, ModelContext::rope (BatchArrays::rope_rows): its
  // position but for LongRoPE's long sequences. The windowed layers' local table reads positions.
  const std::int32_t* rope_rows = nullptr;
  const SequenceSplit* split = nullptr;  // sequence parallelism; nullptr: every rank all rows
  const AdapterDropout* dropout = nullptr;  // LoRA's dropout; nullptr: none
  // A mixture of experts' backward: d loss / d each layer's router losses (model/moe.h's
  // MoeRouting::balance_loss and z_loss); 0: not trained.
  float router_balance_weight = 0.0f;
  float router_z_weight = 0.0f;

  // Rows of the residual stream on this rank.
  std::int64_t residual_rows() const { return split ? split->local : rows; }
  // Rows of a norm's output, the input of the products: all of them, padded under a split.
  std::int64_t gathered_rows() const { return split ? split->padded : rows; }
};

// The table rows `rope` reads for b's rows: the global table's (LongRoPE's long rows for long
// sequences), or a windowed layer's local table's, the positions.
inline const std::int32_t* rope_rows(const ModelContext& ctx, const BatchGeometry& b, const RopeTable* rope) {
  return rope == &ctx.rope ? b.rope_rows : b.positions;
}

}  // namespace spin::model
