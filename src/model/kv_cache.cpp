#include "model/kv_cache.h"

#include "core/error.h"

namespace spin::model {

KvCache::KvCache(const TpDims& dims, std::int64_t layers, std::int64_t slots,
                 std::int64_t capacity, Device device, DType dtype)
    : slots_(slots), capacity_(capacity), width_(dims.kv_width()) {
  require(layers >= 1 && slots >= 1 && capacity >= 1, "KV cache of ", layers, " layers, ", slots,
          " sequences and ", capacity, " positions");
  require(dtype == DType::F32 || dtype == DType::BF16, "KV cache of ", dtype_name(dtype), " values");
  keys_ = Tensor::zeros({layers, slots, capacity, width_}, dtype, device);
  values_ = Tensor::zeros({layers, slots, capacity, width_}, dtype, device);
}

}  // namespace spin::model
