// KvCache: keys and values of this rank's kv heads (TP-sharded like the attention) for every
// layer of its pipeline stage, for `slots` sequences of up to `capacity` positions:
// per layer [slots, capacity, kv_heads, head_dim] keys and the same for values. Allocated once
// per generation batch (prompt length + new tokens), written as tokens are processed. float32,
// or bf16 with mixed precision (half the memory: the layer's bf16 keys and values as computed,
// widened as read).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/tp_dims.h"

namespace spin::model {

class KvCache {
 public:
  KvCache(const TpDims& dims, std::int64_t layers, std::int64_t slots, std::int64_t capacity,
          Device device = Device::Cpu, DType dtype = DType::F32);

  // The layer's keys or values: float* or (bf16) std::uint16_t* behind the void*.
  void* keys(std::int64_t layer) const { return layer_view(keys_, layer); }
  void* values(std::int64_t layer) const { return layer_view(values_, layer); }
  bool bf16() const { return keys_.dtype() == DType::BF16; }
  std::int64_t slots() const { return slots_; }
  std::int64_t capacity() const { return capacity_; }
  std::size_t bytes() const { return keys_.nbytes() + values_.nbytes(); }

 private:
  void* layer_view(const Tensor& t, std::int64_t layer) const {
    return static_cast<char*>(t.raw()) +
           static_cast<std::size_t>(layer * slots_ * capacity_ * width_) * dtype_size(t.dtype());
  }

  std::int64_t slots_, capacity_, width_;
  Tensor keys_, values_;
};

}  // namespace spin::model
