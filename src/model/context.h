// What every layer of the model needs besides its weights and activations: the architecture,
// this rank's share of it, the TP communicator, the kernels and the RoPE tables.
#pragma once

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
};

// The packed-batch geometry the layers need (see batch.h).
struct BatchGeometry {
  std::int64_t rows = 0;
  std::int64_t num_seqs = 0;
  const std::int64_t* cu_seqlens = nullptr;
  const std::int32_t* positions = nullptr;
};

}  // namespace spin::model
