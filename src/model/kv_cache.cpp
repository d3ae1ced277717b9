#include "model/kv_cache.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace spin::model {

std::int64_t windowed_prefill_chunk(const ModelConfig& c) {
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    if (c.windowed(l)) return *c.sliding_window;
  }
  return 0;
}

std::int64_t rows_per_call(const ModelConfig& c, std::int64_t longest, std::int64_t budget) {
  std::int64_t rows = budget > 0 ? std::min(longest, budget) : longest;
  const std::int64_t chunk = windowed_prefill_chunk(c);
  return chunk > 0 ? std::min(rows, chunk) : rows;
}

std::vector<std::int64_t> kv_capacities(const ModelConfig& c, const StageLayers& stage, std::int64_t positions,
                                        std::int64_t rows_per_call) {
  require(positions >= 1 && rows_per_call >= 1, "KV cache of ", positions, " positions fed ", rows_per_call,
          " rows a call");
  std::vector<std::int64_t> capacities;
  for (std::int64_t l = stage.begin; l < stage.end; ++l) {
    capacities.push_back(c.windowed(l) ? std::min(positions, *c.sliding_window + rows_per_call - 1) : positions);
  }
  return capacities;
}

KvCache::KvCache(const TpDims& dims, std::int64_t positions, std::vector<std::int64_t> capacities, std::int64_t slots,
                 Device device, DType dtype)
    : slots_(slots), width_(dims.cache_width()), positions_(positions), capacities_(std::move(capacities)) {
  require(!capacities_.empty() && slots >= 1, "KV cache of ", capacities_.size(), " layers and ", slots, " sequences");
  require(dtype == DType::F32 || dtype == DType::BF16, "KV cache of ", dtype_name(dtype), " values");
  std::int64_t total = 0;
  for (const std::int64_t capacity : capacities_) {
    require(capacity >= 1 && capacity <= positions, "KV cache layer of ", capacity, " rows for ", positions,
            " positions");
    offsets_.push_back(total);
    total += slots * capacity * width_;
  }
  distinct_ = capacities_;
  std::sort(distinct_.begin(), distinct_.end());
  distinct_.erase(std::unique(distinct_.begin(), distinct_.end()), distinct_.end());
  for (const std::int64_t capacity : capacities_) {
    index_.push_back(
        static_cast<std::size_t>(std::lower_bound(distinct_.begin(), distinct_.end(), capacity) - distinct_.begin()));
  }
  keys_ = Tensor::zeros({total}, dtype, device);
  if (dims.latent_cache == 0) values_ = Tensor::zeros({total}, dtype, device);  // (latent: the keys' rows)
}

KvCache::KvCache(const TpDims& dims, std::int64_t layers, std::int64_t slots, std::int64_t capacity, Device device,
                 DType dtype)
    : KvCache(dims, capacity,
              std::vector<std::int64_t>(static_cast<std::size_t>(std::max<std::int64_t>(layers, 0)), capacity), slots,
              device, dtype) {}

}  // namespace spin::model
