// What the CUDA tests (gpu_test) share: fresh random inputs, device copies poisoned where a kernel
// overwrites them, the relative L2 error and its bounds (float32 1e-5; bf16 results 5e-3), and the
// fixture holding both kernel sets.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"

namespace spin::kernels::gpu_testing {


inline std::mt19937& rng() {
  static std::mt19937 g(std::random_device{}());  // fresh inputs on every run
  return g;
}
inline std::vector<float> random(std::size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng());
  return v;
}
inline std::vector<std::int32_t> random_ints(std::size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = d(rng());
  return v;
}

// A device copy of a host vector.
struct Dev {
  PooledBuffer buffer;
  std::size_t count = 0;
  template <class T>
  explicit Dev(const std::vector<T>& host) : buffer(cuda::upload(host)), count(host.size()) {}
  Dev(std::size_t n, bool poisoned) : buffer(cuda::device_allocator(), n * sizeof(float)), count(n) {
    cuda::fill_bytes(buffer.data(), poisoned ? 0xFF : 0, n * sizeof(float));
  }
  float* f() const { return buffer.as<float>(); }
  std::int32_t* i() const { return buffer.as<std::int32_t>(); }
  std::vector<float> get(const CudaKernels& k) const {
    k.synchronize();
    return cuda::download<float>(buffer, count);
  }
};
inline Dev poisoned(std::size_t n) { return Dev(n, true); }

inline double relative_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    num += (static_cast<double>(out[i]) - ref[i]) * (static_cast<double>(out[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}
#define EXPECT_CLOSE(out, ref) EXPECT_LT(relative_error(out, ref), 1e-5) << #out " vs " #ref

inline std::vector<float> widen(const std::vector<std::uint16_t>& x) {
  std::vector<float> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_f32(x[i]);
  return out;
}
inline std::vector<std::uint16_t> to_bf16_host(const std::vector<float>& x) {
  std::vector<std::uint16_t> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = f32_to_bf16(x[i]);
  return out;
}

// A bf16 output poisoned with NaNs, and a bf16 result widened on the host.
inline PooledBuffer poisoned_bf16(std::size_t n) {
  return cuda::upload(std::vector<std::uint16_t>(std::max<std::size_t>(n, 1), 0x7fc1));
}
inline std::vector<float> download_bf16(const CudaKernels& k, const PooledBuffer& b, std::size_t n) {
  k.synchronize();
  return widen(cuda::download<std::uint16_t>(b, n));
}
// A bf16 result against the CPU's: both round a float32 result computed in another order, so
// an element may differ by one bf16 ulp (at most 2^-7 relative, rarely).
#define EXPECT_BF16_CLOSE(out, ref) EXPECT_LT(relative_error(out, ref), 5e-3) << #out " vs " #ref

struct Fixture : ::testing::Test {
  CpuKernels cpu;
  CudaKernels gpu;
};

}  // namespace spin::kernels::gpu_testing
