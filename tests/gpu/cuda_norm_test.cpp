// The norms' kernels on the GPU against the CPU's (tests/gpu/cuda_kernels_test.cpp says how):
// RMSNorm (with Gemma's 1 + w, over bf16 inputs, across TP ranks' slices of a row) and LayerNorm
// (the first OLMo's without parameters, StableLM's with weight and bias).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/dtype.h"
#include "gpu/cuda_test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"

namespace spin::kernels {
namespace {

using namespace gpu_testing;  // the fixture and helpers the CUDA tests share
using cuda::device_allocator;

// w_offset 1: Gemma's norms, 1 + w.
TEST_F(Fixture, RmsNormForwardAndBackward) {
  for (const float w_offset : {0.0f, 1.0f})
  for (Index dim : {64, 1000, 4096}) {
    const Index n = 301;
    auto x = random(n * dim), w = random(dim, 0.5f - w_offset, 1.5f - w_offset), dout = random(n * dim);
    auto dx = random(n * dim), dw = random(dim);
    Dev gx(x), gw(w), gdout(dout), gout = poisoned(n * dim), grstd = poisoned(n), gdx(dx), gdw(dw);
    std::vector<float> out(n * dim), rstd(n);
    cpu.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, 1e-5f, w_offset);
    gpu.rmsnorm_forward(gout.f(), grstd.f(), gx.f(), gw.f(), n, dim, 1e-5f, w_offset);
    EXPECT_CLOSE(gout.get(gpu), out) << dim << " " << w_offset;
    EXPECT_CLOSE(grstd.get(gpu), rstd) << dim << " " << w_offset;
    // The bf16 output: the GPU's own float32 output, rounded.
    const std::vector<std::uint16_t> poison(static_cast<std::size_t>(n * dim), 0x7fc1);
    PooledBuffer out16 = cuda::upload(poison);
    gpu.rmsnorm_forward_bf16(out16.as<std::uint16_t>(), grstd.f(), gx.f(), gw.f(), n, dim, 1e-5f, w_offset);
    EXPECT_EQ(cuda::download<std::uint16_t>(out16, n * dim), to_bf16_host(gout.get(gpu))) << dim << " " << w_offset;
    cpu.rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), n, dim, w_offset);
    gpu.rmsnorm_backward(gdx.f(), gdw.f(), gdout.f(), gx.f(), gw.f(), grstd.f(), n, dim, w_offset);
    EXPECT_CLOSE(gdx.get(gpu), dx) << dim << " " << w_offset;
    EXPECT_CLOSE(gdw.get(gpu), dw) << dim << " " << w_offset;
  }
}

// Over a bf16 x (Qwen3's head norms, rows of head_dim): the CPU's widened-x reference.
TEST_F(Fixture, RmsNormOverBf16InputForwardAndBackward) {
  for (Index dim : {64, 128}) {
    const Index n = 1000;
    const auto x16 = to_bf16_host(random(n * dim));
    auto w = random(dim, 0.5f, 1.5f), dout = random(n * dim), dx = random(n * dim), dw = random(dim);
    std::vector<std::uint16_t> out16(n * dim);
    std::vector<float> rstd(n);
    cpu.rmsnorm_forward_bf16_in(out16.data(), rstd.data(), x16.data(), w.data(), n, dim, 1e-6f, 0.0f);
    PooledBuffer gx16 = cuda::upload(x16), gout16 = poisoned_bf16(static_cast<std::size_t>(n * dim));
    Dev gw(w), grstd = poisoned(n), gdout(dout), gdx(dx), gdw(dw);
    gpu.rmsnorm_forward_bf16_in(gout16.as<std::uint16_t>(), grstd.f(), gx16.as<std::uint16_t>(), gw.f(), n, dim, 1e-6f, 0.0f);
    EXPECT_BF16_CLOSE(download_bf16(gpu, gout16, static_cast<std::size_t>(n * dim)), widen(out16)) << dim;
    EXPECT_CLOSE(grstd.get(gpu), rstd) << dim;
    cpu.rmsnorm_backward_bf16_in(dx.data(), dw.data(), dout.data(), x16.data(), w.data(), rstd.data(), n, dim, 0.0f);
    gpu.rmsnorm_backward_bf16_in(gdx.f(), gdw.f(), gdout.f(), gx16.as<std::uint16_t>(), gw.f(), grstd.f(), n, dim, 0.0f);
    EXPECT_CLOSE(gdx.get(gpu), dx) << dim;
    EXPECT_CLOSE(gdw.get(gpu), dw) << dim;
  }
}

// The norm over rows spread across TP ranks (OLMo 2's q and k norms; the sums as if two more ranks
// held as much): the row sums, the norm from them (float32; bf16 the GPU's float32 rounded; rstd
// written over the sums), the input and weight gradients from the sums of the backward.
TEST_F(Fixture, RmsNormFromSumsAndDotsAcrossRanks) {
  for (Index dim : {128, 1024, 4096}) {
    const Index n = 301, total = 3 * dim;
    auto x = random(n * dim), w = random(dim, 0.5f, 1.5f), dout = random(n * dim), dx = random(n * dim),
         dw = random(dim);
    std::vector<float> sums(n), dots(n), out(n * dim), rstd(n);
    cpu.row_dot(sums.data(), x.data(), x.data(), nullptr, n, dim);
    cpu.row_dot(dots.data(), dout.data(), x.data(), w.data(), n, dim);
    Dev gx(x), gw(w), gdout(dout), gsums = poisoned(n), gdots = poisoned(n), gout = poisoned(n * dim), gdx(dx), gdw(dw);
    gpu.row_dot(gsums.f(), gx.f(), gx.f(), nullptr, n, dim);
    gpu.row_dot(gdots.f(), gdout.f(), gx.f(), gw.f(), n, dim);
    EXPECT_CLOSE(gsums.get(gpu), sums) << dim;
    EXPECT_CLOSE(gdots.get(gpu), dots) << dim;
    for (float& s : sums) s *= 3.0f;
    for (float& d : dots) d *= 2.0f;
    Dev gs(sums), gd(dots);
    cpu.rmsnorm_forward_from_sums(out.data(), rstd.data(), x.data(), w.data(), sums.data(), n, dim, total, 1e-6f);
    gpu.rmsnorm_forward_from_sums(gout.f(), gs.f(), gx.f(), gw.f(), gs.f(), n, dim, total, 1e-6f);
    EXPECT_CLOSE(gout.get(gpu), out) << dim;
    EXPECT_CLOSE(gs.get(gpu), rstd) << dim << ": rstd written over the sums";
    const std::vector<std::uint16_t> poison(static_cast<std::size_t>(n * dim), 0x7fc1);
    PooledBuffer out16 = cuda::upload(poison);
    Dev gs2(sums), grstd = poisoned(n);
    gpu.rmsnorm_forward_from_sums_bf16(out16.as<std::uint16_t>(), grstd.f(), gx.f(), gw.f(), gs2.f(), n, dim, total,
                                       1e-6f);
    EXPECT_EQ(cuda::download<std::uint16_t>(out16, n * dim), to_bf16_host(gout.get(gpu))) << dim;
    cpu.rmsnorm_backward_from_dots(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), dots.data(), n,
                                   dim, total);
    gpu.rmsnorm_backward_from_dots(gdx.f(), gdw.f(), gdout.f(), gx.f(), gw.f(), grstd.f(), gd.f(), n, dim, total);
    EXPECT_CLOSE(gdx.get(gpu), dx) << dim;
    EXPECT_CLOSE(gdw.get(gpu), dw) << dim;
  }
}

// LayerNorm, OLMo's without weight or bias and StableLM's with both, rows off zero mean: forward
// (float32, and bf16 the GPU's float32 rounded), backward accumulating into dx, dw and db.
TEST_F(Fixture, LayerNormForwardAndBackward) {
  for (const bool affine : {false, true}) {
    for (Index dim : {128, 2048, 4096}) {
      const Index n = 301;
      auto x = random(n * dim), dout = random(n * dim), dx = random(n * dim);
      auto w = random(dim), b = random(dim), dw = random(dim), db = random(dim);
      for (float& v : x) v += 2.0f;
      std::vector<float> out(n * dim), rstd(n);
      Dev gx(x), gdout(dout), gdx(dx), gw(w), gb(b), gdw(dw), gdb(db), gout = poisoned(n * dim), grstd = poisoned(n);
      const float* wp = affine ? w.data() : nullptr;
      const float* bp = affine ? b.data() : nullptr;
      const float* gwp = affine ? gw.f() : nullptr;
      const float* gbp = affine ? gb.f() : nullptr;
      cpu.layernorm_forward(out.data(), rstd.data(), x.data(), wp, bp, n, dim, 1e-5f);
      gpu.layernorm_forward(gout.f(), grstd.f(), gx.f(), gwp, gbp, n, dim, 1e-5f);
      EXPECT_CLOSE(gout.get(gpu), out) << dim << affine;
      EXPECT_CLOSE(grstd.get(gpu), rstd) << dim << affine;
      const std::vector<std::uint16_t> poison(static_cast<std::size_t>(n * dim), 0x7fc1);
      PooledBuffer out16 = cuda::upload(poison);
      Dev grstd16 = poisoned(n);
      gpu.layernorm_forward_bf16(out16.as<std::uint16_t>(), grstd16.f(), gx.f(), gwp, gbp, n, dim, 1e-5f);
      EXPECT_EQ(cuda::download<std::uint16_t>(out16, n * dim), to_bf16_host(gout.get(gpu))) << dim << affine;
      cpu.layernorm_backward(dx.data(), affine ? dw.data() : nullptr, affine ? db.data() : nullptr, dout.data(),
                             x.data(), wp, rstd.data(), n, dim);
      gpu.layernorm_backward(gdx.f(), affine ? gdw.f() : nullptr, affine ? gdb.f() : nullptr, gdout.f(), gx.f(), gwp,
                             grstd.f(), n, dim);
      EXPECT_CLOSE(gdx.get(gpu), dx) << dim << affine;
      EXPECT_CLOSE(gdw.get(gpu), dw) << dim << affine;  // unchanged without a weight
      EXPECT_CLOSE(gdb.get(gpu), db) << dim << affine;
    }
  }
}

// The per-head LayerNorm (Command R+'s q / k norms: a weight row a head, no bias) at head_dim 128
// over 12 heads (Command R+'s at TP 8) and 1 (its k at TP 8): forward in float32 and bf16, backward
// into dx and the [heads, head_dim] weight gradient.
TEST_F(Fixture, HeadLayerNormForwardAndBackward) {
  for (Index heads : {1, 12}) {
    const Index n = 301, dim = 128, values = n * heads * dim;
    auto x = random(values), dout = random(values), dx = random(values), w = random(heads * dim),
         dw = random(heads * dim);
    for (float& v : x) v += 2.0f;
    std::vector<float> out(values), rstd(n * heads);
    Dev gx(x), gdout(dout), gdx(dx), gw(w), gdw(dw), gout = poisoned(values), grstd = poisoned(n * heads);
    cpu.head_layernorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, heads, dim, 1e-5f);
    gpu.head_layernorm_forward(gout.f(), grstd.f(), gx.f(), gw.f(), n, heads, dim, 1e-5f);
    EXPECT_CLOSE(gout.get(gpu), out) << heads;
    EXPECT_CLOSE(grstd.get(gpu), rstd) << heads;
    const std::vector<std::uint16_t> poison(static_cast<std::size_t>(values), 0x7fc1);
    PooledBuffer out16 = cuda::upload(poison);
    Dev grstd16 = poisoned(n * heads);
    gpu.head_layernorm_forward_bf16(out16.as<std::uint16_t>(), grstd16.f(), gx.f(), gw.f(), n, heads, dim, 1e-5f);
    EXPECT_EQ(cuda::download<std::uint16_t>(out16, values), to_bf16_host(gout.get(gpu))) << heads;
    cpu.head_layernorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), n, heads, dim);
    gpu.head_layernorm_backward(gdx.f(), gdw.f(), gdout.f(), gx.f(), gw.f(), grstd.f(), n, heads, dim);
    EXPECT_CLOSE(gdx.get(gpu), dx) << heads;
    EXPECT_CLOSE(gdw.get(gpu), dw) << heads;
  }
}

}  // namespace
}  // namespace spin::kernels
