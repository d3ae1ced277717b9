// KvCache: keys and values of this rank's kv heads (TP-sharded like the attention) for every
// layer of its pipeline stage, for `slots` sequences: per layer [slots, capacity, kv_heads,
// head_dim] keys and the same for values, position p of a sequence at its slot's row p mod
// capacity (Kernels::cached_attention_forward). A layer's capacity is every position a sequence
// reaches, or, in a layer with a sliding window of W keys, a ring of the window and one model
// call's rows: W + rows_per_call - 1 rows, which a call of at most rows_per_call rows a
// sequence never overwrites before it reads them (kv_capacities). Allocated once per generation
// (prompt length + new tokens), written as tokens are processed. float32, or bf16 with mixed
// precision (half the memory: the layer's bf16 keys and values as computed, widened as read). Latent attention
// (DeepSeek-V3's) caches its latent instead: [slots, capacity, kv_lora_rank + rotary_dim] a layer, the keys'
// and the values' one buffer (model/latent_attention.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/stage.h"
#include "model/tp_dims.h"

namespace spin::model {

// The most tokens a generation call feeds one sequence in a model with sliding windows: the
// window (0 without windowed layers). Prompts longer than that are prefilled in chunks of it,
// so that a windowed layer's ring holds at most 2 x window - 1 rows a sequence.
std::int64_t windowed_prefill_chunk(const ModelConfig& c);

// The most tokens a generation call feeds one sequence: `longest` (a whole prompt, or what is
// fed again at once), at most `budget` (tokens a call, 0: no limit) and the windowed prefill chunk.
std::int64_t rows_per_call(const ModelConfig& c, std::int64_t longest, std::int64_t budget);

// The rows each layer of `stage` keeps a sequence: `positions` (the most any sequence reaches),
// or in a windowed layer (ModelConfig::windowed) at most sliding_window + rows_per_call - 1,
// rows_per_call being the most rows a model call feeds one sequence (rows_per_call()).
std::vector<std::int64_t> kv_capacities(const ModelConfig& c, const StageLayers& stage, std::int64_t positions,
                                        std::int64_t rows_per_call);

class KvCache {
 public:
  // Sequences of up to `positions` positions, one capacity a layer (kv_capacities).
  KvCache(const TpDims& dims, std::int64_t positions, std::vector<std::int64_t> capacities, std::int64_t slots,
          Device device = Device::Cpu, DType dtype = DType::F32);
  // `layers` layers of `capacity` rows each.
  KvCache(const TpDims& dims, std::int64_t layers, std::int64_t slots, std::int64_t capacity,
          Device device = Device::Cpu, DType dtype = DType::F32);

  // The layer's keys or values: float* or (bf16) std::uint16_t* behind the void*. Latent attention's
  // cache (TpDims::latent_cache) holds one row a token, its keys and its values both.
  void* keys(std::int64_t layer) const { return layer_view(keys_, layer); }
  void* values(std::int64_t layer) const { return layer_view(values_.defined() ? values_ : keys_, layer); }
  bool bf16() const { return keys_.dtype() == DType::BF16; }
  std::int64_t slots() const { return slots_; }
  // The layer's rows a slot.
  std::int64_t capacity(std::int64_t layer) const { return capacities_.at(static_cast<std::size_t>(layer)); }
  // The positions a sequence may reach.
  std::int64_t positions() const { return positions_; }
  // The layers' distinct capacities, ascending, and which one a layer has (an index into them):
  // the cache rows of a batch are computed once for each.
  const std::vector<std::int64_t>& distinct_capacities() const { return distinct_; }
  std::size_t capacity_index(std::int64_t layer) const { return index_.at(static_cast<std::size_t>(layer)); }
  std::size_t bytes() const { return keys_.nbytes() + (values_.defined() ? values_.nbytes() : 0); }

 private:
  void* layer_view(const Tensor& t, std::int64_t layer) const {
    return static_cast<char*>(t.raw()) +
           static_cast<std::size_t>(offsets_.at(static_cast<std::size_t>(layer))) * dtype_size(t.dtype());
  }

  std::int64_t slots_, width_, positions_;
  std::vector<std::int64_t> capacities_, offsets_, distinct_;
  std::vector<std::size_t> index_;
  Tensor keys_, values_;
};

}  // namespace spin::model
