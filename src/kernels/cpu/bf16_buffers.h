// The CPU reference of the kernels that read or write bf16: widen the operands (exact) into
// float32 copies, run the float32 kernel, round its output (to nearest, ties to even) -- or, in
// kernels templated on their element types, the same per element (load, store). The CUDA
// kernels do the same arithmetic in registers.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace spin::kernels::cpu {

inline std::vector<float> widen(const std::uint16_t* x, Index n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = bf16_to_f32(x[i]);
  return out;
}

inline void round_into(std::uint16_t* out, const std::vector<float>& x) {
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = f32_to_bf16(x[i]);
}

// One element of a kernel templated on its element types: float32 as is, bf16 widened as read
// and rounded as written.
inline float load(const float* x) { return *x; }
inline float load(const std::uint16_t* x) { return bf16_to_f32(*x); }
inline void store(float* out, float value) { *out = value; }
inline void store(std::uint16_t* out, float value) { *out = f32_to_bf16(value); }

}  // namespace spin::kernels::cpu
