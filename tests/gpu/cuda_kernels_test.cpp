// Every CUDA kernel against its CPU twin (CpuKernels, itself tested against float64 and finite
// differences) on fresh random inputs: relative L2 error ||gpu - cpu|| / ||cpu|| under 1e-5
// (float32 on both sides), NaN never passes. Outputs that a kernel overwrites are poisoned (all
// bits set: NaN) before the run, so an element it fails to write fails the test; outputs it
// accumulates into start from the same random values on both sides.
// Needs a CUDA device; without one the binary prints SKIP and exits 77 (CTest: skipped). It
// links the CUDA runtime statically and needs only the driver, cuBLAS and OpenBLAS at run time.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/fused_attention.h"
#include "gpu/cuda_test_util.h"

namespace spin::kernels {
namespace {

using namespace gpu_testing;  // the fixture and helpers the CUDA tests share
using cuda::device_allocator;

TEST_F(Fixture, GemmEveryTransposeWithLeadingDimensionsAndBeta) {
  const Index m = 67, n = 45, k = 83;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Index lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
      auto a = random(static_cast<std::size_t>((ta ? k : m) * lda)), b = random(static_cast<std::size_t>((tb ? n : k) * ldb));
      auto c = random(static_cast<std::size_t>(m * ldc));
      Dev da(a), db(b), dc(c);
      cpu.gemm(ta, tb, m, n, k, 0.7f, a.data(), lda, b.data(), ldb, 0.3f, c.data(), ldc);
      gpu.gemm(ta, tb, m, n, k, 0.7f, da.f(), lda, db.f(), ldb, 0.3f, dc.f(), ldc);
      EXPECT_CLOSE(dc.get(gpu), c) << ta << tb;
    }
  }
}

TEST_F(Fixture, LinearForwardAndBackward) {
  const Index n = 130, in = 96, out = 72;
  auto x = random(n * in), w = random(out * in), dy = random(n * out), dx = random(n * in), dw = random(out * in);
  Dev gx(x), gw(w), gdy(dy), gy = poisoned(n * out), gdx(dx), gdw(dw);
  std::vector<float> y(n * out);
  cpu.linear_forward(y.data(), x.data(), w.data(), n, in, out);
  gpu.linear_forward(gy.f(), gx.f(), gw.f(), n, in, out);
  EXPECT_CLOSE(gy.get(gpu), y);
  cpu.linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out, true);
  gpu.linear_backward(gdx.f(), gdw.f(), gdy.f(), gx.f(), gw.f(), n, in, out, true);
  EXPECT_CLOSE(gdx.get(gpu), dx);
  EXPECT_CLOSE(gdw.get(gpu), dw);
}

// scale: Gemma's sqrt(hidden_size).
TEST_F(Fixture, EmbeddingWithIdsOutsideTheShardAndRepeats) {
  for (const float scale : {1.0f, 45.254834f}) {
    const Index n = 300, hidden = 64, start = 50, rows = 40;
    auto ids = random_ints(n, 0, 120);  // many outside [50, 90), many repeated
    auto table = random(rows * hidden), dout = random(n * hidden), dtable = random(rows * hidden);
    Dev gids(ids), gtable(table), gdout(dout), gout = poisoned(n * hidden), gdtable(dtable);
    std::vector<float> out(n * hidden);
    cpu.embedding_forward(out.data(), ids.data(), table.data(), n, hidden, start, rows, scale);
    gpu.embedding_forward(gout.f(), gids.i(), gtable.f(), n, hidden, start, rows, scale);
    EXPECT_CLOSE(gout.get(gpu), out);
    cpu.embedding_backward(dtable.data(), ids.data(), dout.data(), n, hidden, start, rows, scale);
    gpu.embedding_backward(gdtable.f(), gids.i(), gdout.f(), n, hidden, start, rows, scale);
    EXPECT_CLOSE(gdtable.get(gpu), dtable);
  }
}

// Every dimension of a head rotating, and Phi-4-mini's 3/4 of them (48 of 64; a table of 24
// columns), the rest passing through; in rotate-half pairs and in Cohere's interleaved ones.
TEST_F(Fixture, RopeForwardAndBackward) {
  const Index n = 77, heads = 6, head_dim = 64, max_pos = 200;
  for (const auto& [rotary, pairs] :
       {std::pair{head_dim, RopePairs::Halves}, std::pair{Index{48}, RopePairs::Halves},
        std::pair{head_dim, RopePairs::Interleaved}, std::pair{Index{48}, RopePairs::Interleaved}}) {
    const Index half = rotary / 2;
    auto x = random(n * heads * head_dim), cos = random(max_pos * half), sin = random(max_pos * half);
    auto pos = random_ints(n, 0, max_pos - 1);
    Dev gx(x), gcos(cos), gsin(sin), gpos(pos);
    cpu.rope_forward(x.data(), pos.data(), cos.data(), sin.data(), n, heads, head_dim, rotary, pairs);
    gpu.rope_forward(gx.f(), gpos.i(), gcos.f(), gsin.f(), n, heads, head_dim, rotary, pairs);
    EXPECT_CLOSE(gx.get(gpu), x) << rotary;
    cpu.rope_backward(x.data(), pos.data(), cos.data(), sin.data(), n, heads, head_dim, rotary, pairs);
    gpu.rope_backward(gx.f(), gpos.i(), gcos.f(), gsin.f(), n, heads, head_dim, rotary, pairs);
    EXPECT_CLOSE(gx.get(gpu), x) << rotary;
    // In place on bf16 (mixed precision's q and k).
    auto x16 = to_bf16_host(random(n * heads * head_dim));
    PooledBuffer gx16 = cuda::upload(x16);
    cpu.rope_forward_bf16(x16.data(), pos.data(), cos.data(), sin.data(), n, heads, head_dim, rotary, pairs);
    gpu.rope_forward_bf16(gx16.as<std::uint16_t>(), gpos.i(), gcos.f(), gsin.f(), n, heads, head_dim, rotary, pairs);
    EXPECT_BF16_CLOSE(download_bf16(gpu, gx16, x16.size()), widen(x16)) << rotary;
    // Attention's q and k (GQA: 6 heads, 2 kv heads) in one launch, float32 and bf16.
    const Index kv_heads = 2;
    auto q = random(n * heads * head_dim), k = random(n * kv_heads * head_dim);
    Dev gq(q), gk(k);
    cpu.rope_qk_forward(q.data(), k.data(), pos.data(), cos.data(), sin.data(), n, heads, kv_heads, head_dim, rotary,
                        pairs);
    gpu.rope_qk_forward(gq.f(), gk.f(), gpos.i(), gcos.f(), gsin.f(), n, heads, kv_heads, head_dim, rotary, pairs);
    EXPECT_CLOSE(gq.get(gpu), q) << rotary;
    EXPECT_CLOSE(gk.get(gpu), k) << rotary;
    auto q16 = to_bf16_host(random(n * heads * head_dim)), k16 = to_bf16_host(random(n * kv_heads * head_dim));
    PooledBuffer gq16 = cuda::upload(q16), gk16 = cuda::upload(k16);
    cpu.rope_qk_forward_bf16(q16.data(), k16.data(), pos.data(), cos.data(), sin.data(), n, heads, kv_heads, head_dim,
                             rotary, pairs);
    gpu.rope_qk_forward_bf16(gq16.as<std::uint16_t>(), gk16.as<std::uint16_t>(), gpos.i(), gcos.f(), gsin.f(), n, heads,
                             kv_heads, head_dim, rotary, pairs);
    EXPECT_BF16_CLOSE(download_bf16(gpu, gq16, q16.size()), widen(q16)) << rotary;
    EXPECT_BF16_CLOSE(download_bf16(gpu, gk16, k16.size()), widen(k16)) << rotary;
  }
}

TEST_F(Fixture, ScatterRowsIntoACache) {
  const Index n = 9, width = 48, cache_rows = 30;
  std::vector<Index> rows = {3, 0, 29, 7, 8, 9, 15, 16, 22};
  auto src = random(n * width), dst = random(cache_rows * width);
  Dev gsrc(src), gdst(dst), grows(rows);
  cpu.scatter_rows(dst.data(), src.data(), rows.data(), n, width);
  gpu.scatter_rows(gdst.f(), gsrc.f(), grows.buffer.as<Index>(), n, width);
  EXPECT_CLOSE(gdst.get(gpu), dst);
  // Keys and values in one launch, float32 and bf16.
  auto v = random(n * width), values = random(cache_rows * width);
  Dev gv(v), gvalues(values);
  cpu.scatter_kv_rows(dst.data(), values.data(), src.data(), v.data(), rows.data(), n, width);
  gpu.scatter_kv_rows(gdst.f(), gvalues.f(), gsrc.f(), gv.f(), grows.buffer.as<Index>(), n, width);
  EXPECT_CLOSE(gdst.get(gpu), dst);
  EXPECT_CLOSE(gvalues.get(gpu), values);
  auto k16 = to_bf16_host(random(n * width)), v16 = to_bf16_host(random(n * width));
  auto keys16 = to_bf16_host(random(cache_rows * width)), values16 = to_bf16_host(random(cache_rows * width));
  PooledBuffer gk16 = cuda::upload(k16), gv16 = cuda::upload(v16), gkeys16 = cuda::upload(keys16),
               gvalues16 = cuda::upload(values16);
  cpu.scatter_kv_rows_bf16(keys16.data(), values16.data(), k16.data(), v16.data(), rows.data(), n, width);
  gpu.scatter_kv_rows_bf16(gkeys16.as<std::uint16_t>(), gvalues16.as<std::uint16_t>(), gk16.as<std::uint16_t>(),
                           gv16.as<std::uint16_t>(), grows.buffer.as<Index>(), n, width);
  EXPECT_EQ(download_bf16(gpu, gkeys16, keys16.size()), widen(keys16));  // copies: exact
  EXPECT_EQ(download_bf16(gpu, gvalues16, values16.size()), widen(values16));
}

TEST_F(Fixture, LinearLayersWithBf16OperandsMatchTheCpuReference) {
  const Index n = 37, in = 96, out = 80;
  auto x = random(n * in), w = random(out * in), dy = random(n * out), dw0 = random(out * in), dx0 = random(n * in);
  std::vector<std::uint16_t> x16(n * in), w16(out * in), dy16(n * out);
  cpu.to_bf16(x16.data(), x.data(), n * in);
  cpu.to_bf16(w16.data(), w.data(), out * in);
  std::vector<float> y(n * out), dx = dx0, dw = dw0;
  cpu.linear_forward_bf16(y.data(), x16.data(), w16.data(), n, in, out);
  cpu.linear_backward_bf16(dx.data(), dw.data(), dy.data(), dy16.data(), x16.data(), w16.data(), n, in, out, true);
  PooledBuffer gx16 = cuda::upload(x16), gw16 = cuda::upload(w16);
  PooledBuffer gdy16(device_allocator(), dy16.size() * sizeof(std::uint16_t));
  Dev gy = poisoned(n * out), gdy(dy), gdx(dx0), gdw(dw0);
  gpu.linear_forward_bf16(gy.f(), gx16.as<std::uint16_t>(), gw16.as<std::uint16_t>(), n, in, out);
  gpu.linear_backward_bf16(gdx.f(), gdw.f(), gdy.f(), gdy16.as<std::uint16_t>(), gx16.as<std::uint16_t>(),
                           gw16.as<std::uint16_t>(), n, in, out, true);
  EXPECT_CLOSE(gy.get(gpu), y);
  EXPECT_CLOSE(gdx.get(gpu), dx);
  EXPECT_CLOSE(gdw.get(gpu), dw);
  EXPECT_EQ(cuda::download<std::uint16_t>(gdy16, dy16.size()), dy16);
  // With a bf16 output (cuBLAS rounds its float32 result as written): within bf16's rounding.
  PooledBuffer gy16 = cuda::upload(std::vector<std::uint16_t>(static_cast<std::size_t>(n * out), 0x7fc1));
  gpu.linear_forward_bf16_out(gy16.as<std::uint16_t>(), gx16.as<std::uint16_t>(), gw16.as<std::uint16_t>(), nullptr, n,
                              in, out);
  EXPECT_LT(relative_error(widen(cuda::download<std::uint16_t>(gy16, n * out)), y), 5e-3);
  // With a bias (Qwen2's q/k/v): added before the one rounding.
  const auto bias = random(out);
  std::vector<std::uint16_t> y16(n * out);
  cpu.linear_forward_bf16_out(y16.data(), x16.data(), w16.data(), bias.data(), n, in, out);
  Dev gbias(bias);
  gy16 = cuda::upload(std::vector<std::uint16_t>(static_cast<std::size_t>(n * out), 0x7fc1));
  gpu.linear_forward_bf16_out(gy16.as<std::uint16_t>(), gx16.as<std::uint16_t>(), gw16.as<std::uint16_t>(), gbias.f(),
                              n, in, out);
  EXPECT_LT(relative_error(widen(cuda::download<std::uint16_t>(gy16, n * out)), widen(y16)), 5e-3);
  // A frozen weight (LoRA's base): dW null, dx alone.
  dx = dx0;
  cpu.linear_backward_bf16(dx.data(), nullptr, dy.data(), dy16.data(), x16.data(), w16.data(), n, in, out, false);
  Dev gdx_only(dx0);
  gpu.linear_backward_bf16(gdx_only.f(), nullptr, gdy.f(), gdy16.as<std::uint16_t>(), gx16.as<std::uint16_t>(),
                           gw16.as<std::uint16_t>(), n, in, out, false);
  EXPECT_CLOSE(gdx_only.get(gpu), dx);
}

// Rounding to bf16 and widening back: bitwise as the host's f32_to_bf16 / bf16_to_f32 (ties to
// even, NaN kept a NaN, infinities and signed zeros kept) -- the frozen bf16 weights' round trip.
TEST_F(Fixture, RoundingToBf16AndWideningAreBitwiseTheHosts) {
  auto x = random(1000, -3.0f, 3.0f);
  x[0] = 1.0f + 1.0f / 256.0f;  // a tie: rounds to even (1.0)
  x[1] = -0.0f, x[2] = INFINITY, x[3] = NAN, x[4] = 1e-40f;  // a subnormal
  Dev gx(x);
  PooledBuffer g16 = poisoned_bf16(x.size());
  gpu.to_bf16(g16.as<std::uint16_t>(), gx.f(), static_cast<Index>(x.size()));
  gpu.synchronize();
  const std::vector<std::uint16_t> rounded = cuda::download<std::uint16_t>(g16, x.size());
  const std::vector<std::uint16_t> want = to_bf16_host(x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(rounded[i]))) << i;
    } else {
      EXPECT_EQ(rounded[i], want[i]) << i << ": " << x[i];
    }
  }
  Dev back = poisoned(x.size());
  gpu.from_bf16(back.f(), g16.as<std::uint16_t>(), static_cast<Index>(x.size()));
  const std::vector<float> wide = back.get(gpu);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    EXPECT_EQ(std::bit_cast<std::uint32_t>(wide[i]), std::bit_cast<std::uint32_t>(bf16_to_f32(want[i]))) << i;
  }
}

// LoRA's products (Kernels::gemm_bf16): scaled, transposed either way, accumulated into a float32
// C and into a bf16 C (read, added, rounded once).
TEST_F(Fixture, Bf16GemmsWithScaleAndAccumulationMatchTheCpuReference) {
  const Index m = 45, n = 70, k = 12;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      SCOPED_TRACE(std::string(ta ? "A^T" : "A") + (tb ? " B^T" : " B"));
      std::vector<std::uint16_t> a16(m * k), b16(k * n);
      cpu.to_bf16(a16.data(), random(m * k).data(), m * k);
      cpu.to_bf16(b16.data(), random(k * n).data(), k * n);
      const Index lda = ta ? m : k, ldb = tb ? k : n;
      const auto c0 = random(m * n);
      std::vector<float> c = c0;
      cpu.gemm_bf16(ta, tb, m, n, k, 0.5f, a16.data(), lda, b16.data(), ldb, 1.0f, c.data(), n);
      PooledBuffer ga = cuda::upload(a16), gb = cuda::upload(b16);
      Dev gc(c0);
      gpu.gemm_bf16(ta, tb, m, n, k, 0.5f, ga.as<std::uint16_t>(), lda, gb.as<std::uint16_t>(), ldb, 1.0f, gc.f(), n);
      EXPECT_CLOSE(gc.get(gpu), c);
      std::vector<std::uint16_t> c16(m * n);
      cpu.to_bf16(c16.data(), c0.data(), m * n);
      PooledBuffer gc16 = cuda::upload(c16);
      cpu.gemm_bf16(ta, tb, m, n, k, 2.0f, a16.data(), lda, b16.data(), ldb, 1.0f, c16.data(), n);
      gpu.gemm_bf16(ta, tb, m, n, k, 2.0f, ga.as<std::uint16_t>(), lda, gb.as<std::uint16_t>(), ldb, 1.0f,
                    gc16.as<std::uint16_t>(), n);
      EXPECT_LT(relative_error(widen(cuda::download<std::uint16_t>(gc16, m * n)), widen(c16)), 5e-3);
    }
  }
}

TEST_F(Fixture, BiasForwardAndBackward) {
  const Index n = 300, width = 200;
  auto y = random(n * width), bias = random(width), dy = random(n * width), dbias = random(width);
  Dev gy(y), gbias(bias), gdy(dy), gdbias(dbias);
  cpu.add_bias(y.data(), bias.data(), n, width);
  cpu.bias_backward(dbias.data(), dy.data(), n, width);
  gpu.add_bias(gy.f(), gbias.f(), n, width);
  gpu.bias_backward(gdbias.f(), gdy.f(), n, width);
  EXPECT_EQ(gy.get(gpu), y);          // one float32 addition per element
  EXPECT_EQ(gdbias.get(gpu), dbias);  // the same sums in the same order
}

// LoRA's dropout: the mask (Philox on the device) and the scaled values bitwise the CPU's, on a
// shard starting and ending inside a group of four columns, written, accumulated and in bf16.
TEST_F(Fixture, DropoutMasksAsTheCpu) {
  const Index rows = 70, cols = 203;
  std::vector<Index> keys;
  for (Index i = 0; i < rows; ++i) keys.push_back((i + 9) << 24 | (i % 13));
  Dev gkeys(keys);
  Kernels::DropoutMask mask{keys.data(), 0xABCDEF12345ull, 21, 0.1f, 5};
  Kernels::DropoutMask gmask = mask;
  gmask.row_keys = gkeys.buffer.as<Index>();
  const auto x = random(rows * cols);
  for (const bool accumulate : {false, true}) {
    auto y = random(rows * cols);
    Dev gx(x), gy(y);
    cpu.dropout(y.data(), x.data(), rows, cols, mask, accumulate);
    gpu.dropout(gy.f(), gx.f(), rows, cols, gmask, accumulate);
    EXPECT_EQ(gy.get(gpu), y) << accumulate;
  }
  std::vector<std::uint16_t> x16(x.size()), y16(x.size());
  cpu.to_bf16(x16.data(), x.data(), rows * cols);
  cpu.dropout_bf16(y16.data(), x16.data(), rows, cols, mask);
  Dev gx16(x16), gy16(std::vector<std::uint16_t>(x.size(), 0xFFFF));
  gpu.dropout_bf16(gy16.buffer.as<std::uint16_t>(), gx16.buffer.as<std::uint16_t>(), rows, cols, gmask);
  gpu.synchronize();
  EXPECT_EQ(cuda::download<std::uint16_t>(gy16.buffer, x.size()), y16);
}

TEST_F(Fixture, GatherRowsOutOfABuffer) {
  const Index n = 5, width = 48, src_rows = 30;
  std::vector<Index> rows = {29, 0, 7, 7, 15};
  auto src = random(src_rows * width);
  std::vector<float> dst(n * width);
  Dev gsrc(src), grows(rows), gdst = poisoned(n * width);
  cpu.gather_rows(dst.data(), src.data(), rows.data(), n, width);
  gpu.gather_rows(gdst.f(), gsrc.f(), grows.buffer.as<Index>(), n, width);
  EXPECT_CLOSE(gdst.get(gpu), dst);
}

// Latent attention's strided copies and sums (model/latent_attention.h): a block of columns of every
// row into another matrix's columns (cudaMemcpy2DAsync; 2-byte elements too), and the sum of a block of
// columns into a [rows, cols] gradient -- the CPU's bits (an addition a value).
TEST_F(Fixture, StridedCopyAndAdd) {
  const Index rows = 37, src_ld = 40, dst_ld = 24, cols = 9;
  const auto src = random(rows * src_ld);
  auto dst = random(rows * dst_ld);
  Dev gsrc(src), gdst(dst);
  cpu.copy_2d(dst.data() + 5, dst_ld * 4, src.data() + 30, src_ld * 4, cols * 4, rows);
  gpu.copy_2d(gdst.f() + 5, dst_ld * 4, gsrc.f() + 30, src_ld * 4, cols * 4, rows);
  EXPECT_EQ(gdst.get(gpu), dst);
  cpu.copy_2d(dst.data(), dst_ld * 4, src.data(), src_ld * 4, 6, rows);  // 3 bf16-sized halves of floats
  gpu.copy_2d(gdst.f(), dst_ld * 4, gsrc.f(), src_ld * 4, 6, rows);
  EXPECT_EQ(gdst.get(gpu), dst);
  cpu.add_2d(dst.data() + 3, dst_ld, src.data() + 11, src_ld, rows, cols);
  gpu.add_2d(gdst.f() + 3, dst_ld, gsrc.f() + 11, src_ld, rows, cols);
  EXPECT_EQ(gdst.get(gpu), dst);
}

// A mixture of experts' kernels: rows gathered in bf16, the weighted join and its backward (the
// join sums each row's slots in order on both: the same bits; the weights' dot products within
// float32 rounding), a slot permutation as the routing makes them -- and with other ranks' slots (-1).
TEST_F(Fixture, MixtureOfExpertsGatherAndJoin) {
  const Index n = 37, k = 2, width = 300;
  std::vector<Index> slots(n * k), sources(n * k);
  for (Index s = 0; s < n * k; ++s) slots[s] = (s * 29) % (n * k);  // 29 coprime with 74: a permutation
  for (Index s = 0; s < n * k; ++s) sources[slots[s]] = s / k;
  auto y = random(n * k * width), weights = random(n * k, 0.0f, 1.0f), dout = random(n * width);
  Dev gy(y), gweights(weights), gdout(dout), gslots(slots), gsources(sources);
  std::vector<float> out(n * width), dy(n * k * width), dweights(n * k);
  cpu.moe_combine(out.data(), y.data(), slots.data(), weights.data(), n, k, width);
  Dev gout = poisoned(n * width);
  gpu.moe_combine(gout.f(), gy.f(), gslots.buffer.as<Index>(), gweights.f(), n, k, width);
  EXPECT_EQ(gout.get(gpu), out);
  cpu.moe_combine(out.data(), y.data(), slots.data(), nullptr, n, k, width);
  gpu.moe_combine(gout.f(), gy.f(), gslots.buffer.as<Index>(), nullptr, n, k, width);
  EXPECT_EQ(gout.get(gpu), out);
  cpu.moe_combine_backward(dy.data(), dweights.data(), dout.data(), y.data(), slots.data(), weights.data(), n, k,
                           width);
  Dev gdy = poisoned(n * k * width), gdw = poisoned(n * k);
  gpu.moe_combine_backward(gdy.f(), gdw.f(), gdout.f(), gy.f(), gslots.buffer.as<Index>(), gweights.f(), n, k, width);
  EXPECT_EQ(gdy.get(gpu), dy);
  EXPECT_CLOSE(gdw.get(gpu), dweights);
  // Expert parallelism: every third slot another rank's (-1): left out of the join, its weight's gradient 0,
  // the rows of y no slot names left as they were.
  std::vector<Index> held = slots;
  for (Index s = 0; s < n * k; s += 3) held[s] = -1;
  Dev gheld(held), gdy_held(std::vector<float>(n * k * width, 0.0f));
  cpu.moe_combine(out.data(), y.data(), held.data(), weights.data(), n, k, width);
  gpu.moe_combine(gout.f(), gy.f(), gheld.buffer.as<Index>(), gweights.f(), n, k, width);
  EXPECT_EQ(gout.get(gpu), out);
  std::fill(dy.begin(), dy.end(), 0.0f);
  cpu.moe_combine_backward(dy.data(), dweights.data(), dout.data(), y.data(), held.data(), weights.data(), n, k, width);
  gpu.moe_combine_backward(gdy_held.f(), gdw.f(), gdout.f(), gy.f(), gheld.buffer.as<Index>(), gweights.f(), n, k,
                           width);
  EXPECT_EQ(gdy_held.get(gpu), dy);
  EXPECT_CLOSE(gdw.get(gpu), dweights);
  const auto x16 = to_bf16_host(random(n * width));
  std::vector<std::uint16_t> grouped(n * k * width);
  cpu.gather_rows_bf16(grouped.data(), x16.data(), sources.data(), n * k, width);
  Dev gx16(x16), ggrouped(std::vector<std::uint16_t>(grouped.size(), 0xFFFF));
  gpu.gather_rows_bf16(ggrouped.buffer.as<std::uint16_t>(), gx16.buffer.as<std::uint16_t>(),
                       gsources.buffer.as<Index>(), n * k, width);
  gpu.synchronize();
  EXPECT_EQ(cuda::download<std::uint16_t>(ggrouped.buffer, grouped.size()), grouped);
}

TEST_F(Fixture, LogprobFromAllReducedSums) {
  const Index n = 300;
  auto row_max = random(n, -5.0f, 5.0f), sums = random(2 * n, 0.5f, 40.0f);
  auto targets = random_ints(n, -1, 5);  // some rows without a target
  std::vector<float> lse = row_max, logprob(n);
  Dev glse(row_max), gsums(sums), gtargets(targets), glogprob = poisoned(n);
  cpu.logprob_from_sums(logprob.data(), lse.data(), sums.data(), targets.data(), n);
  gpu.logprob_from_sums(glogprob.f(), glse.f(), gsums.f(), gtargets.i(), n);
  EXPECT_CLOSE(glogprob.get(gpu), logprob);
  EXPECT_CLOSE(glse.get(gpu), lse);
}

// SwiGLU, GeGLU (Gemma) and the exact GELU's; each also plain (up null: GPT-NeoX's MLP).
TEST_F(Fixture, GluForwardAndBackward) {
  const Index n = 100003;
  for (const Activation act : {Activation::Silu, Activation::GeluTanh, Activation::Gelu}) {
    auto gate = random(n, -6.0f, 6.0f), up = random(n), dout = random(n);
    Dev ggate(gate), gup(up), gdout(dout), gout = poisoned(n), gdg = poisoned(n), gdu = poisoned(n);
    std::vector<float> out(n), dg(n), du(n);
    cpu.glu_forward(out.data(), gate.data(), up.data(), n, act);
    gpu.glu_forward(gout.f(), ggate.f(), gup.f(), n, act);
    EXPECT_CLOSE(gout.get(gpu), out);
    // bf16 gate and up: the GPU's float32 kernels on the widened values, the forward's output
    // rounded (same device arithmetic: bitwise).
    const auto gate16 = to_bf16_host(gate), up16 = to_bf16_host(up);
    Dev gate_wide(widen(gate16)), up_wide(widen(up16)), gref = poisoned(n), gdg_ref = poisoned(n), gdu_ref = poisoned(n);
    PooledBuffer ggate16 = cuda::upload(gate16), gup16 = cuda::upload(up16);
    const std::vector<std::uint16_t> poison(static_cast<std::size_t>(n), 0x7fc1);
    PooledBuffer out16 = cuda::upload(poison);
    gpu.glu_forward(gref.f(), gate_wide.f(), up_wide.f(), n, act);
    gpu.glu_forward_bf16(out16.as<std::uint16_t>(), ggate16.as<std::uint16_t>(), gup16.as<std::uint16_t>(), n, act);
    EXPECT_EQ(cuda::download<std::uint16_t>(out16, n), to_bf16_host(gref.get(gpu)));
    gpu.glu_backward(gdg_ref.f(), gdu_ref.f(), gdout.f(), gate_wide.f(), up_wide.f(), n, act);
    Dev gdg16 = poisoned(n), gdu16 = poisoned(n);
    gpu.glu_backward_bf16(gdg16.f(), gdu16.f(), gdout.f(), ggate16.as<std::uint16_t>(), gup16.as<std::uint16_t>(), n, act);
    EXPECT_EQ(gdg16.get(gpu), gdg_ref.get(gpu));
    EXPECT_EQ(gdu16.get(gpu), gdu_ref.get(gpu));
    cpu.glu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n, act);
    gpu.glu_backward(gdg.f(), gdu.f(), gdout.f(), ggate.f(), gup.f(), n, act);
    EXPECT_CLOSE(gdg.get(gpu), dg);
    EXPECT_CLOSE(gdu.get(gpu), du);
    cpu.glu_forward(out.data(), gate.data(), nullptr, n, act);
    gpu.glu_forward(gout.f(), ggate.f(), nullptr, n, act);
    EXPECT_CLOSE(gout.get(gpu), out);
    cpu.glu_backward(dg.data(), nullptr, dout.data(), gate.data(), nullptr, n, act);
    gpu.glu_backward(gdg.f(), nullptr, gdout.f(), ggate.f(), nullptr, n, act);
    EXPECT_CLOSE(gdg.get(gpu), dg);
  }
}

TEST_F(Fixture, VocabParallelLogSoftmaxPiecesWithPaddingAndMissingTargets) {
  const Index n = 70, ld = 1024, valid = 1000, start = 3000;
  auto logits = random(n * ld, -8.0f, 8.0f);
  auto targets = random_ints(n, 2900, 4100);  // inside, below and above the shard
  targets[0] = -1;                              // no target (a sequence's last row)
  targets[1] = static_cast<std::int32_t>(start + valid - 1);
  Dev glogits(logits), gtargets(targets), gmax = poisoned(n), gsum = poisoned(n), gtarget = poisoned(n);
  std::vector<float> max(n), sum(n), target(n);
  cpu.logits_max(max.data(), logits.data(), n, ld, valid);
  gpu.logits_max(gmax.f(), glogits.f(), n, ld, valid);
  EXPECT_CLOSE(gmax.get(gpu), max);
  cpu.logits_sumexp_target(sum.data(), target.data(), logits.data(), max.data(), targets.data(), n, ld, valid, start);
  gpu.logits_sumexp_target(gsum.f(), gtarget.f(), glogits.f(), gmax.f(), gtargets.i(), n, ld, valid, start);
  EXPECT_CLOSE(gsum.get(gpu), sum);
  EXPECT_CLOSE(gtarget.get(gpu), target);
  std::vector<float> lse(n), dlogprob = random(n);
  for (Index i = 0; i < n; ++i) lse[i] = max[i] + std::log(sum[i]);
  Dev glse(lse), gdlogprob(dlogprob), gd = poisoned(n * ld);
  std::vector<float> d(n * ld);
  cpu.logprob_backward(d.data(), logits.data(), lse.data(), targets.data(), dlogprob.data(), n, ld, valid, start, 0.0f);
  gpu.logprob_backward(gd.f(), glogits.f(), glse.f(), gtargets.i(), gdlogprob.f(), n, ld, valid, start, 0.0f);
  EXPECT_CLOSE(gd.get(gpu), d);
  // In place (dlogits aliasing logits), as the LM head runs it.
  gpu.logprob_backward(glogits.f(), glogits.f(), glse.f(), gtargets.i(), gdlogprob.f(), n, ld, valid, start, 0.0f);
  EXPECT_CLOSE(glogits.get(gpu), d);
}

TEST_F(Fixture, AddSumOfSquaresAdamWAndRmsProp) {
  const Index n = 1000003;
  auto x = random(n), y = random(n);
  Dev gx(x), gy(y);
  cpu.add_inplace(y.data(), x.data(), n);
  gpu.add_inplace(gy.f(), gx.f(), n);
  EXPECT_CLOSE(gy.get(gpu), y);
  Dev gs = poisoned(n);  // Granite's multipliers: written elsewhere, then in place
  std::vector<float> s(n);
  cpu.scale(s.data(), x.data(), 0.22f, n);
  gpu.scale(gs.f(), gx.f(), 0.22f, n);
  EXPECT_CLOSE(gs.get(gpu), s);
  cpu.scale(s.data(), s.data(), 0.0625f, n);
  gpu.scale(gs.f(), gs.f(), 0.0625f, n);
  EXPECT_CLOSE(gs.get(gpu), s);
  // OLMo 1.7's clip_qkv: the clamp (exact) and its gradient, float32 and bf16 (in place).
  {
    SCOPED_TRACE("clamp");
    std::vector<float> c(n), dc(n);
    Dev gc = poisoned(n), gdc = poisoned(n);
    cpu.clamp(c.data(), y.data(), n, 1.5f);
    gpu.clamp(gc.f(), gy.f(), n, 1.5f);
    EXPECT_EQ(gc.get(gpu), c);
    cpu.clamp_backward(dc.data(), x.data(), y.data(), n, 1.5f);
    gpu.clamp_backward(gdc.f(), gx.f(), gy.f(), n, 1.5f);
    EXPECT_EQ(gdc.get(gpu), dc);
    const std::vector<std::uint16_t> y16 = to_bf16_host(y);
    std::vector<std::uint16_t> c16(static_cast<std::size_t>(n));
    PooledBuffer g16 = cuda::upload(y16);
    cpu.clamp_bf16(c16.data(), y16.data(), n, 1.5f);
    gpu.clamp_bf16(g16.as<std::uint16_t>(), g16.as<std::uint16_t>(), n, 1.5f);
    EXPECT_EQ(cuda::download<std::uint16_t>(g16, n), c16);
    PooledBuffer gy16 = cuda::upload(y16);
    cpu.clamp_backward_bf16_in(dc.data(), x.data(), y16.data(), n, 1.5f);
    gpu.clamp_backward_bf16_in(gdc.f(), gx.f(), gy16.as<std::uint16_t>(), n, 1.5f);
    EXPECT_EQ(gdc.get(gpu), dc);
  }
  // Ranges as a model lays out its tensors: large and small, gaps between, one empty.
  const std::vector<Kernels::UpdateRange> ranges = {
      {0, 600000, true}, {600000, 4096, false}, {604160, 0, true}, {604200, 395000, true}, {999300, 2703, false}};
  std::vector<Kernels::Range> norm_ranges;
  for (const auto& r : ranges) norm_ranges.push_back({r.offset, r.length});
  const Index count = std::ssize(norm_ranges);
  const double ref = cpu.sum_squares(x.data(), norm_ranges.data(), count);
  const double got = gpu.sum_squares(gx.f(), norm_ranges.data(), count);
  EXPECT_LT(std::abs(got - ref) / ref, 1e-12);  // both in double
  auto p = random(n), g = random(n), m = random(n), v = random(n, 0.0f, 1.0f);
  Dev gp(p), gg(g), gm(m), gv(v);
  const Kernels::AdamW h{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 7};
  cpu.adamw_update(p.data(), nullptr, g.data(), m.data(), v.data(), ranges.data(), std::ssize(ranges), h);
  gpu.adamw_update(gp.f(), nullptr, gg.f(), gm.f(), gv.f(), ranges.data(), std::ssize(ranges), h);
  EXPECT_CLOSE(gp.get(gpu), p);  // the gaps included: untouched on both
  EXPECT_CLOSE(gm.get(gpu), m);
  EXPECT_CLOSE(gv.get(gpu), v);
  // RMSprop over the same table (from the updated values).
  const Kernels::RmsProp r{1e-3f, 0.99f, 1e-8f, 0.1f, 0.5f};
  cpu.rmsprop_update(p.data(), nullptr, g.data(), v.data(), ranges.data(), std::ssize(ranges), r);
  gpu.rmsprop_update(gp.f(), nullptr, gg.f(), gv.f(), ranges.data(), std::ssize(ranges), r);
  EXPECT_CLOSE(gp.get(gpu), p);
  EXPECT_CLOSE(gv.get(gpu), v);
}

TEST_F(Fixture, Bf16ConversionsRoundLikeTheHost) {
  const Index n = 100001;
  auto x = random(n, -1e4f, 1e4f);
  x[0] = 1.0f + 1.0f / 256.0f;  // a tie: rounds to even
  x[1] = 1e-40f;                // subnormal
  x[2] = -0.0f;
  Dev gx(x);
  PooledBuffer half(device_allocator(), n * sizeof(std::uint16_t));
  gpu.to_bf16(half.as<std::uint16_t>(), gx.f(), n);
  gpu.synchronize();
  const auto bits = cuda::download<std::uint16_t>(half, n);
  EXPECT_EQ(bits, to_bf16_host(x));
  Dev back = poisoned(n);
  gpu.from_bf16(back.f(), half.as<std::uint16_t>(), n);
  EXPECT_EQ(back.get(gpu), widen(bits));
}

TEST_F(Fixture, Bf16GemmAccumulatesInFloat32) {
  const Index m = 129, n = 257, k = 1024;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      auto a = random(m * k), b = random(k * n), c = random(m * n);
      const auto a16 = to_bf16_host(a), b16 = to_bf16_host(b);
      // The reference: the same bf16 values, widened, multiplied in float32 on the CPU.
      auto ref = c;
      cpu.gemm(ta, tb, m, n, k, 0.5f, widen(a16).data(), ta ? m : k, widen(b16).data(), tb ? k : n, 0.25f, ref.data(), n);
      PooledBuffer ga = cuda::upload(a16), gb = cuda::upload(b16);
      Dev gc(c);
      gpu.gemm_bf16(ta, tb, m, n, k, 0.5f, ga.as<std::uint16_t>(), ta ? m : k, gb.as<std::uint16_t>(), tb ? k : n, 0.25f,
                    gc.f(), n);
      EXPECT_CLOSE(gc.get(gpu), ref) << ta << tb;
    }
  }
}

TEST_F(Fixture, MixedPrecisionAdamWUpdatesMastersAndTheirBf16Copy) {
  const Index n = 300007;
  auto master = random(n), g = random(n), m = random(n), v = random(n, 0.0f, 1.0f);
  Dev gmaster(master), gg(g), gm(m), gv(v);
  const std::vector<std::uint16_t> poison(static_cast<std::size_t>(n), 0x7fc1);  // a NaN
  PooledBuffer weights = cuda::upload(poison);
  const std::vector<Kernels::UpdateRange> ranges = {{0, 200000, true}, {200000, 2048, false}, {202100, 97907, true}};
  const Kernels::AdamW h{3e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 3};
  cpu.adamw_update(master.data(), nullptr, g.data(), m.data(), v.data(), ranges.data(), std::ssize(ranges), h);
  gpu.adamw_update(gmaster.f(), weights.as<std::uint16_t>(), gg.f(), gm.f(), gv.f(), ranges.data(),
                   std::ssize(ranges), h);
  const auto got = gmaster.get(gpu);
  EXPECT_CLOSE(got, master);
  EXPECT_CLOSE(gm.get(gpu), m);
  EXPECT_CLOSE(gv.get(gpu), v);
  // The GPU's own masters, rounded, inside the ranges; the gap keeps its poison.
  auto want = to_bf16_host(got);
  for (Index i = 202048; i < 202100; ++i) want[static_cast<std::size_t>(i)] = poison[0];
  EXPECT_EQ(cuda::download<std::uint16_t>(weights, n), want);
}

TEST(CudaMemory, TheStepLoopReusesDeviceBlocks) {
  const auto before = device_allocator().stats().backend_allocations;
  for (int step = 0; step < 5; ++step) {
    PooledBuffer a(device_allocator(), 3 << 20), b(device_allocator(), 1000);
  }
  EXPECT_LE(device_allocator().stats().backend_allocations - before, 2);
  // The figures `spin train` reports after its first step come from this allocator.
  CudaKernels gpu;  // registers the device's MemoryOps
  const std::optional<MemoryUsage> usage = memory_ops(Device::Cuda).usage();
  ASSERT_TRUE(usage.has_value());
  EXPECT_GE(usage->peak_in_use, std::size_t{3} << 20);
  EXPECT_GE(usage->reserved, usage->in_use);
  EXPECT_FALSE(memory_ops(Device::Cpu).usage().has_value());
}

// copy_from_host returns once the host buffer may be reused, without syncing the stream: a
// long kernel queued first (a large product) is still running, the host overwrites and frees
// its buffer at once, and the device still receives the values as they were. The same from
// page-locked memory, which the copy reads asynchronously.
TEST(CudaMemory, UploadsMayReuseTheHostBufferAtOnce) {
  CudaKernels gpu;  // registers the device's MemoryOps
  MemoryOps& ops = memory_ops(Device::Cuda);
  const Index big = 4096;
  PooledBuffer a(device_allocator(), big * big * sizeof(float)), c(device_allocator(), big * big * sizeof(float));
  const std::vector<float> want = random(1 << 16);
  PooledBuffer pageable_dst(device_allocator(), want.size() * sizeof(float));
  PooledBuffer pinned_dst(device_allocator(), want.size() * sizeof(float));
  gpu.gemm(false, false, big, big, big, 1.0f, a.as<float>(), big, a.as<float>(), big, 0.0f, c.as<float>(), big);
  {
    std::vector<float> host = want;
    ops.copy_from_host(pageable_dst.data(), host.data(), host.size() * sizeof(float));
    std::fill(host.begin(), host.end(), -1.0f);
  }
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, want.size() * sizeof(float)), cudaSuccess);
  std::copy(want.begin(), want.end(), pinned);
  ops.copy_from_host(pinned_dst.data(), pinned, want.size() * sizeof(float));
  std::fill(pinned, pinned + want.size(), -2.0f);
  cudaFreeHost(pinned);
  std::vector<float> got(want.size());
  ops.copy_to_host(got.data(), pageable_dst.data(), got.size() * sizeof(float));
  EXPECT_EQ(got, want);
  ops.copy_to_host(got.data(), pinned_dst.data(), got.size() * sizeof(float));
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace spin::kernels

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();  // (no device needed to list them)
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device (%s)\n", status != cudaSuccess ? cudaGetErrorString(status) : "none found");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("CUDA device 0: %s, sm_%d%d, %.1f GiB\n", prop.name, prop.major, prop.minor,
              static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  return RUN_ALL_TESTS();
}
