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

namespace spin::kernels {
namespace {

using cuda::device_allocator;

std::mt19937& rng() {
  static std::mt19937 g(std::random_device{}());  // fresh inputs on every run
  return g;
}
std::vector<float> random(std::size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng());
  return v;
}
std::vector<std::int32_t> random_ints(std::size_t n, int lo, int hi) {
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
  Dev(std::size_t n, bool poisoned) : buffer(device_allocator(), n * sizeof(float)), count(n) {
    cuda::fill_bytes(buffer.data(), poisoned ? 0xFF : 0, n * sizeof(float));
  }
  float* f() const { return buffer.as<float>(); }
  std::int32_t* i() const { return buffer.as<std::int32_t>(); }
  std::vector<float> get(const CudaKernels& k) const {
    k.synchronize();
    return cuda::download<float>(buffer, count);
  }
};
Dev poisoned(std::size_t n) { return Dev(n, true); }

double relative_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    num += (static_cast<double>(out[i]) - ref[i]) * (static_cast<double>(out[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}
#define EXPECT_CLOSE(out, ref) EXPECT_LT(relative_error(out, ref), 1e-5) << #out " vs " #ref

std::vector<float> widen(const std::vector<std::uint16_t>& x) {
  std::vector<float> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_f32(x[i]);
  return out;
}
std::vector<std::uint16_t> to_bf16_host(const std::vector<float>& x) {
  std::vector<std::uint16_t> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = f32_to_bf16(x[i]);
  return out;
}

// A bf16 output poisoned with NaNs, and a bf16 result widened on the host.
PooledBuffer poisoned_bf16(std::size_t n) {
  return cuda::upload(std::vector<std::uint16_t>(std::max<std::size_t>(n, 1), 0x7fc1));
}
std::vector<float> download_bf16(const CudaKernels& k, const PooledBuffer& b, std::size_t n) {
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

// Every dimension of a head rotating, and Phi-4-mini's 3/4 of them (48 of 64; a table of 24
// columns), the rest passing through.
TEST_F(Fixture, RopeForwardAndBackward) {
  const Index n = 77, heads = 6, head_dim = 64, max_pos = 200;
  for (const Index rotary : {head_dim, Index{48}}) {
    const Index half = rotary / 2;
    auto x = random(n * heads * head_dim), cos = random(max_pos * half), sin = random(max_pos * half);
    auto pos = random_ints(n, 0, max_pos - 1);
    Dev gx(x), gcos(cos), gsin(sin), gpos(pos);
    cpu.rope_forward(x.data(), pos.data(), cos.data(), sin.data(), n, heads, head_dim, rotary);
    gpu.rope_forward(gx.f(), gpos.i(), gcos.f(), gsin.f(), n, heads, head_dim, rotary);
    EXPECT_CLOSE(gx.get(gpu), x) << rotary;
    cpu.rope_backward(x.data(), pos.data(), cos.data(), sin.data(), n, heads, head_dim, rotary);
    gpu.rope_backward(gx.f(), gpos.i(), gcos.f(), gsin.f(), n, heads, head_dim, rotary);
    EXPECT_CLOSE(gx.get(gpu), x) << rotary;
    // In place on bf16 (mixed precision's q and k).
    auto x16 = to_bf16_host(random(n * heads * head_dim));
    PooledBuffer gx16 = cuda::upload(x16);
    cpu.rope_forward_bf16(x16.data(), pos.data(), cos.data(), sin.data(), n, heads, head_dim, rotary);
    gpu.rope_forward_bf16(gx16.as<std::uint16_t>(), gpos.i(), gcos.f(), gsin.f(), n, heads, head_dim, rotary);
    EXPECT_BF16_CLOSE(download_bf16(gpu, gx16, x16.size()), widen(x16)) << rotary;
  }
}

// The packed-attention tests' shapes: every head size the fused kernels take (256: Gemma,
// tiles of 16 rows) and one they do not (48, which falls back), MHA and GQA; Gemma 2's score cap
// at 64 and 256; sliding windows of 7-70 keys (blocks start their key tiles mid-sequence, dK/dV
// passes stop early), with and without the cap.
struct AttentionShape {
  Index heads, kv_heads, head_dim;
  float softcap = 0.0f;  // Gemma 2's score cap (0.5 bends these inputs' scores)
  Index window = 0;      // a sliding window's keys
  AttentionScores scores() const { return {AttentionScores::standard(head_dim).scale, softcap, window}; }
};
const std::vector<AttentionShape> kPackedAttentionShapes = {
    {8, 2, 32}, {4, 4, 64}, {6, 3, 96}, {4, 1, 128}, {4, 2, 256}, {4, 2, 48},  // head sizes
    {4, 4, 64, 0.5f}, {4, 2, 256, 0.5f},                                       // capped
    {8, 2, 32, 0.0f, 7}, {4, 2, 64, 0.0f, 40}, {4, 1, 128, 0.5f, 70},          // windowed
    {4, 2, 256, 0.5f, 20}, {4, 2, 48, 0.0f, 9}};

// Both CUDA attention paths -- fused (FlashAttention's algorithm: a log-sum-exp saved) and
// cuBLAS + softmax (the probabilities saved, compared too) -- at kPackedAttentionShapes, over
// packed sequences of lengths 1 to 152 (tiles and blocks of 8 rows partly filled).
TEST_F(Fixture, PackedCausalGqaAttentionForwardAndBackward) {
  const std::vector<Index> cu = {0, 1, 18, 148, 300};  // lengths 1, 17, 130, 152
  const Index rows = cu.back(), seqs = 4;
  const CudaKernels unfused(CudaKernels::Attention::Cublas);
  for (const AttentionShape& sh : kPackedAttentionShapes) {
    for (const CudaKernels* k : {static_cast<const CudaKernels*>(&gpu), &unfused}) {
      const Index heads = sh.heads, kv_heads = sh.kv_heads, head_dim = sh.head_dim;
      const AttentionScores scores = sh.scores();
      SCOPED_TRACE(testing::Message() << (k == &gpu ? "fused" : "cuBLAS") << " attention, heads " << heads << "/"
                                      << kv_heads << ", head_dim " << head_dim << ", cap " << sh.softcap
                                      << ", window " << sh.window);
      const Index q_w = heads * head_dim, kv_w = kv_heads * head_dim;
      auto q = random(rows * q_w), kk = random(rows * kv_w), v = random(rows * kv_w), dout = random(rows * q_w);
      const Index probs_size = attention_probs_size(cu.data(), seqs, heads);
      const Index saved_size = k->attention_saved_size(cu.data(), seqs, heads, head_dim);
      const bool keeps_probs = saved_size == probs_size;
      EXPECT_EQ(keeps_probs, k == &unfused || head_dim == 48) << "fused kernels save heads x rows";
      Dev gq(q), gk(kk), gv(v), gdout(dout), gout = poisoned(rows * q_w), gsaved = poisoned(saved_size);
      std::vector<float> out(rows * q_w), probs(probs_size);
      cpu.attention_forward(out.data(), probs.data(), q.data(), kk.data(), v.data(), cu.data(), seqs, heads, kv_heads,
                            head_dim, scores);
      k->attention_forward(gout.f(), gsaved.f(), gq.f(), gk.f(), gv.f(), cu.data(), seqs, heads, kv_heads, head_dim,
      scores);
      EXPECT_CLOSE(gout.get(*k), out);
      if (keeps_probs) {
        EXPECT_CLOSE(gsaved.get(*k), probs);
      }
      Dev gdq = poisoned(rows * q_w), gdk = poisoned(rows * kv_w), gdv = poisoned(rows * kv_w);
      std::vector<float> dq(rows * q_w), dk(rows * kv_w), dv(rows * kv_w);
      cpu.attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), kk.data(), v.data(), probs.data(),
                             cu.data(), seqs, heads, kv_heads, head_dim, scores);
      k->attention_backward(gdq.f(), gdk.f(), gdv.f(), gdout.f(), gq.f(), gk.f(), gv.f(), gsaved.f(), cu.data(), seqs,
                            heads, kv_heads, head_dim, scores);
      EXPECT_CLOSE(gdq.get(*k), dq);
      EXPECT_CLOSE(gdk.get(*k), dk);
      EXPECT_CLOSE(gdv.get(*k), dv);
    }
  }
}

// Mixed precision: bf16 q, k, v and output, float32 gradients, on every path -- tensor cores
// (head_dim 64, 128 and 256 -- at 256 32-row key tiles and dV, dK in two passes; P, dO and dS
// rounded to bf16 for their products, as FlashAttention does: METHOD.md's bf16 tolerance,
// 1e-2), the SIMT kernels (float32 arithmetic on the widened
// values like the CPU: float32's tolerance for the gradients) and cuBLAS on widened copies.
// Same shapes as above, windows included.
TEST_F(Fixture, PackedCausalGqaAttentionWithBf16Activations) {
  const std::vector<Index> cu = {0, 1, 18, 148, 300};
  const Index rows = cu.back(), seqs = 4;
  const CudaKernels simt(CudaKernels::Attention::Fused), unfused(CudaKernels::Attention::Cublas);
  for (const AttentionShape& sh : kPackedAttentionShapes) {
    for (const CudaKernels* k : {static_cast<const CudaKernels*>(&gpu), &simt, &unfused}) {
      const Index heads = sh.heads, kv_heads = sh.kv_heads, head_dim = sh.head_dim;
      const bool tensor_cores = k == &gpu && cuda_detail::tensor_core_attention_supports(head_dim);
      const AttentionScores scores = sh.scores();
      SCOPED_TRACE(testing::Message() << (k == &unfused ? "cuBLAS" : tensor_cores ? "tensor-core" : "SIMT")
                                      << " bf16 attention, heads " << heads << "/" << kv_heads << ", head_dim "
                                      << head_dim << ", cap " << sh.softcap << ", window " << sh.window);
      const Index q_w = heads * head_dim, kv_w = kv_heads * head_dim;
      const auto q = to_bf16_host(random(rows * q_w)), kk = to_bf16_host(random(rows * kv_w)),
                 v = to_bf16_host(random(rows * kv_w));
      auto dout = random(rows * q_w);
      const Index saved_size = k->attention_saved_size(cu.data(), seqs, heads, head_dim);
      PooledBuffer gq = cuda::upload(q), gk = cuda::upload(kk), gv = cuda::upload(v);
      PooledBuffer gout = poisoned_bf16(static_cast<std::size_t>(rows * q_w));
      Dev gdout(dout), gsaved = poisoned(saved_size);
      std::vector<std::uint16_t> out(rows * q_w);
      std::vector<float> probs(attention_probs_size(cu.data(), seqs, heads));
      cpu.attention_forward_bf16(out.data(), probs.data(), q.data(), kk.data(), v.data(), cu.data(), seqs, heads,
                                 kv_heads, head_dim, scores);
      k->attention_forward_bf16(gout.as<std::uint16_t>(), gsaved.f(), gq.as<std::uint16_t>(), gk.as<std::uint16_t>(),
                                gv.as<std::uint16_t>(), cu.data(), seqs, heads, kv_heads, head_dim, scores);
      const auto got_out = download_bf16(*k, gout, out.size());
      if (tensor_cores) {
        EXPECT_LT(relative_error(got_out, widen(out)), 1e-2);
      } else {
        EXPECT_BF16_CLOSE(got_out, widen(out));
      }
      Dev gdq = poisoned(rows * q_w), gdk = poisoned(rows * kv_w), gdv = poisoned(rows * kv_w);
      std::vector<float> dq(rows * q_w), dk(rows * kv_w), dv(rows * kv_w);
      cpu.attention_backward_bf16(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), kk.data(), v.data(),
                                  out.data(), probs.data(), cu.data(), seqs, heads, kv_heads, head_dim, scores);
      k->attention_backward_bf16(gdq.f(), gdk.f(), gdv.f(), gdout.f(), gq.as<std::uint16_t>(), gk.as<std::uint16_t>(),
                                 gv.as<std::uint16_t>(), gout.as<std::uint16_t>(), gsaved.f(), cu.data(), seqs, heads,
                                 kv_heads, head_dim, scores);
      const double tolerance = tensor_cores ? 1e-2 : 1e-5;
      EXPECT_LT(relative_error(gdq.get(*k), dq), tolerance) << "dq";
      EXPECT_LT(relative_error(gdk.get(*k), dk), tolerance) << "dk";
      EXPECT_LT(relative_error(gdv.get(*k), dv), tolerance) << "dv";
      std::printf("  %-11s heads %lld/%lld head_dim %3lld: out %.1e dq %.1e dk %.1e dv %.1e\n",
                  k == &unfused ? "cuBLAS" : tensor_cores ? "tensor-core" : "SIMT", static_cast<long long>(heads),
                  static_cast<long long>(kv_heads), static_cast<long long>(head_dim),
                  relative_error(got_out, widen(out)), relative_error(gdq.get(*k), dq),
                  relative_error(gdk.get(*k), dk), relative_error(gdv.get(*k), dv));
    }
  }
}

// Fused (one launch for all runs) and cuBLAS paths, head sizes the fused kernel takes and one
// it does not; without and with a sliding window of 9 keys.
TEST_F(Fixture, CachedAttentionPrefillAndDecodeRuns) {
  const CudaKernels unfused(CudaKernels::Attention::Cublas);
  for (const Index head_dim : {16, 32, 64, 128, 256}) {
    for (const CudaKernels* k : {static_cast<const CudaKernels*>(&gpu), &unfused}) {
      for (const Index window : {0, 9}) {
        SCOPED_TRACE(testing::Message() << (k == &gpu ? "fused" : "cuBLAS") << ", head_dim " << head_dim << ", window "
                                        << window);
        const AttentionScores scores{AttentionScores::standard(head_dim).scale, 0.0f, window};
        const Index heads = 8, kv_heads = 4, slots = 3, capacity = 40;
        const Index kv_w = kv_heads * head_dim, q_w = heads * head_dim;
        // Run 0: a prefill of 12 rows at slot 2; run 1: one decode row at position 25 of slot 0;
        // run 2: 3 rows continuing slot 1 from position 7; run 3: a decode row at position 39.
        const std::vector<Index> row_begin = {0, 12, 13, 16, 17}, slot = {2, 0, 1, 2}, first = {0, 25, 7, 39};
        const Index rows = 17, runs = 4;
        auto q = random(rows * q_w), kc = random(slots * capacity * kv_w), vc = random(slots * capacity * kv_w);
        Dev gq(q), gk(kc), gv(vc), gout = poisoned(rows * q_w);
        std::vector<float> out(rows * q_w);
        cpu.cached_attention_forward(out.data(), q.data(), kc.data(), vc.data(), row_begin.data(), slot.data(),
                                     first.data(), runs, capacity, heads, kv_heads, head_dim, scores);
        k->cached_attention_forward(gout.f(), gq.f(), gk.f(), gv.f(), row_begin.data(), slot.data(), first.data(), runs,
                                    capacity, heads, kv_heads, head_dim, scores);
        EXPECT_CLOSE(gout.get(*k), out);
      }
    }
  }
}

// Decode steps (every run one row) go through decode_kernel, which gives a block the query heads
// of one kv head: groups of 2, 8 (one pass of the block's 8 warps) and 16 (two passes), float32
// and bf16, against the CPU.
TEST_F(Fixture, DecodeStepsOfGroupedQueryAttention) {
  struct Shape {
    Index heads, kv_heads, head_dim;
  };
  for (const Shape& sh : {Shape{8, 4, 64}, Shape{32, 4, 64}, Shape{16, 1, 128}, Shape{16, 2, 32}, Shape{8, 1, 256}}) {
    for (const bool bf16 : {false, true}) {
      const Index heads = sh.heads, kv_heads = sh.kv_heads, head_dim = sh.head_dim;
      SCOPED_TRACE(testing::Message() << "decode, heads " << heads << "/" << kv_heads << ", head_dim " << head_dim
                                      << (bf16 ? ", bf16" : ", float32"));
      const Index slots = 5, capacity = 80, kv_w = kv_heads * head_dim, q_w = heads * head_dim;
      // Five sequences, one new row each, at positions 0 to 79 of their slots.
      const std::vector<Index> row_begin = {0, 1, 2, 3, 4, 5}, slot = {3, 0, 4, 1, 2}, first = {79, 0, 33, 64, 5};
      const Index rows = 5, runs = 5;
      const auto q = random(rows * q_w), kc = random(slots * capacity * kv_w), vc = random(slots * capacity * kv_w);
      if (!bf16) {
        Dev gq(q), gk(kc), gv(vc), gout = poisoned(rows * q_w);
        std::vector<float> out(rows * q_w);
        cpu.cached_attention_forward(out.data(), q.data(), kc.data(), vc.data(), row_begin.data(), slot.data(),
                                     first.data(), runs, capacity, heads, kv_heads, head_dim,
                                     AttentionScores::standard(head_dim));
        gpu.cached_attention_forward(gout.f(), gq.f(), gk.f(), gv.f(), row_begin.data(), slot.data(), first.data(),
                                     runs, capacity, heads, kv_heads, head_dim, AttentionScores::standard(head_dim));
        EXPECT_CLOSE(gout.get(gpu), out);
        continue;
      }
      const auto q16 = to_bf16_host(q), k16 = to_bf16_host(kc), v16 = to_bf16_host(vc);
      PooledBuffer gq = cuda::upload(q16), gk = cuda::upload(k16), gv = cuda::upload(v16);
      PooledBuffer gout = poisoned_bf16(rows * q_w);
      std::vector<std::uint16_t> out(rows * q_w);
      cpu.cached_attention_forward_bf16(out.data(), q16.data(), k16.data(), v16.data(), row_begin.data(), slot.data(),
                                        first.data(), runs, capacity, heads, kv_heads, head_dim,
                                        AttentionScores::standard(head_dim));
      gpu.cached_attention_forward_bf16(gout.as<std::uint16_t>(), gq.as<std::uint16_t>(), gk.as<std::uint16_t>(),
                                        gv.as<std::uint16_t>(), row_begin.data(), slot.data(), first.data(), runs,
                                        capacity, heads, kv_heads, head_dim, AttentionScores::standard(head_dim));
      EXPECT_BF16_CLOSE(download_bf16(gpu, gout, out.size()), widen(out));
    }
  }
}

// Mixed precision's bf16 KV cache: bf16 rows written where asked (bitwise), attention of bf16
// queries over it -- the fused kernel and the widening fallback (head_dim 16).
TEST_F(Fixture, Bf16KvCacheWritesAndCachedAttention) {
  const CudaKernels unfused(CudaKernels::Attention::Cublas);
  for (const Index head_dim : {16, 64}) {
    for (const CudaKernels* k : {static_cast<const CudaKernels*>(&gpu), &unfused}) {
      SCOPED_TRACE(testing::Message() << (k == &gpu ? "fused" : "cuBLAS") << ", head_dim " << head_dim);
      const Index heads = 4, kv_heads = 2, slots = 2, capacity = 24;
      const Index kv_w = kv_heads * head_dim, q_w = heads * head_dim, cache_rows = slots * capacity;
      const std::vector<Index> row_begin = {0, 5, 6}, slot = {1, 0}, first = {0, 17};
      const Index rows = 6, runs = 2;
      const auto q = to_bf16_host(random(rows * q_w));
      auto kc16 = to_bf16_host(random(cache_rows * kv_w)), vc16 = to_bf16_host(random(cache_rows * kv_w));
      // Overwrite a few rows through scatter_rows_bf16 on both sides.
      const std::vector<Index> written = {24, 47, 3};
      const auto src = to_bf16_host(random(written.size() * kv_w));
      cpu.scatter_rows_bf16(kc16.data(), src.data(), written.data(), 3, kv_w);
      PooledBuffer gk = cuda::upload(kc16), gv = cuda::upload(vc16), gwritten = cuda::upload(written);
      PooledBuffer gsrc = cuda::upload(src), gq = cuda::upload(q), gout = poisoned_bf16(rows * q_w);
      k->scatter_rows_bf16(gk.as<std::uint16_t>(), gsrc.as<std::uint16_t>(), gwritten.as<Index>(), 3, kv_w);
      k->synchronize();
      EXPECT_EQ(cuda::download<std::uint16_t>(gk, kc16.size()), kc16);
      std::vector<std::uint16_t> out(rows * q_w);
      cpu.cached_attention_forward_bf16(out.data(), q.data(), kc16.data(), vc16.data(), row_begin.data(), slot.data(),
                                        first.data(), runs, capacity, heads, kv_heads, head_dim,
                                        AttentionScores::standard(head_dim));
      k->cached_attention_forward_bf16(gout.as<std::uint16_t>(), gq.as<std::uint16_t>(), gk.as<std::uint16_t>(),
                                       gv.as<std::uint16_t>(), row_begin.data(), slot.data(), first.data(), runs,
                                       capacity, heads, kv_heads, head_dim, AttentionScores::standard(head_dim));
      EXPECT_BF16_CLOSE(download_bf16(*k, gout, out.size()), widen(out));
    }
  }
}

// A bf16 prefill (every run starting at position 0) at head_dim 64, 128 and 256 goes through the
// tensor-core forward, reading each run's keys and values in its cache slot: against the CPU
// with METHOD.md's bf16 tolerance (the probabilities are rounded for their product); the SIMT
// kernels (Attention::Fused) as the float32-arithmetic control.
// Prompts' prefills from the cache on tensor cores; in a continuous batch, after the sequences it
// decodes (those on the fused kernel, the same call).
TEST_F(Fixture, Bf16PrefillFromTheCacheOnTensorCores) {
  const CudaKernels simt(CudaKernels::Attention::Fused);
  struct Runs {
    const char* name;
    std::vector<Index> row_begin, slot, first;
  };
  // Prompts of 70, 1 and 150 rows into slots 2, 0 and 1; then two decoding sequences (slots 3
  // and 0, at positions 99 and 40) before prompts of 70 and 150 rows.
  const Runs cases[] = {{"prefill", {0, 70, 71, 221}, {2, 0, 1}, {0, 0, 0}},
                        {"decode + prefill", {0, 1, 2, 72, 222}, {3, 0, 2, 1}, {99, 40, 0, 0}}};
  for (const Runs& c : cases) {
    for (const Index head_dim : {64, 128, 256}) {
      ASSERT_TRUE(cuda_detail::tensor_core_attention_supports(head_dim));
      for (const CudaKernels* k : {static_cast<const CudaKernels*>(&gpu), &simt}) {
        SCOPED_TRACE(testing::Message() << c.name << ", " << (k == &gpu ? "tensor cores" : "SIMT") << ", head_dim "
                                        << head_dim);
        const Index heads = 8, kv_heads = 2, slots = 4, capacity = 160;
        const Index kv_w = kv_heads * head_dim, q_w = heads * head_dim;
        const auto runs = static_cast<Index>(c.slot.size());
        const Index rows = c.row_begin.back();
        const auto q = to_bf16_host(random(rows * q_w)), kc = to_bf16_host(random(slots * capacity * kv_w)),
                   vc = to_bf16_host(random(slots * capacity * kv_w));
        PooledBuffer gq = cuda::upload(q), gk = cuda::upload(kc), gv = cuda::upload(vc);
        PooledBuffer gout = poisoned_bf16(rows * q_w);
        std::vector<std::uint16_t> out(rows * q_w);
        cpu.cached_attention_forward_bf16(out.data(), q.data(), kc.data(), vc.data(), c.row_begin.data(),
                                          c.slot.data(), c.first.data(), runs, capacity, heads, kv_heads, head_dim,
                                          AttentionScores::standard(head_dim));
        k->cached_attention_forward_bf16(gout.as<std::uint16_t>(), gq.as<std::uint16_t>(), gk.as<std::uint16_t>(),
                                         gv.as<std::uint16_t>(), c.row_begin.data(), c.slot.data(), c.first.data(),
                                         runs, capacity, heads, kv_heads, head_dim,
                                         AttentionScores::standard(head_dim));
        const double error = relative_error(download_bf16(*k, gout, out.size()), widen(out));
        EXPECT_LT(error, k == &gpu ? 1e-2 : 5e-3);
        std::printf("  %-16s %-12s head_dim %3lld: relative error %.1e\n", c.name,
                    k == &gpu ? "tensor cores" : "SIMT", static_cast<long long>(head_dim), error);
      }
    }
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

// SwiGLU and GeGLU (Gemma).
TEST_F(Fixture, GluForwardAndBackward) {
  const Index n = 100003;
  for (const Activation act : {Activation::Silu, Activation::GeluTanh}) {
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

TEST_F(Fixture, SamplingLogitsPenaltyEosBanAndTemperature) {
  const Index n = 9, ld = 1030, valid = 1000, start = 2000;
  auto logits = random(n * ld, -5.0f, 5.0f);
  std::vector<std::int32_t> history;
  std::vector<Index> offsets = {0};
  std::vector<std::uint8_t> ban(n);
  for (Index r = 0; r < n; ++r) {
    // Repeats, ids below / inside / above the shard; row 3 has an empty history.
    const auto h = random_ints(r == 3 ? 0 : 50 + 40 * r, 1900, 3100);
    history.insert(history.end(), h.begin(), h.end());
    history.push_back(static_cast<std::int32_t>(start + 5));  // the same token twice in every row
    history.push_back(static_cast<std::int32_t>(start + 5));
    offsets.push_back(static_cast<Index>(history.size()));
    ban[r] = r % 2;
  }
  const std::vector<std::int32_t> eos = {2001, 2999, 5};  // two in the shard, one not
  Dev glogits(logits), gz = poisoned(n * valid);
  PooledBuffer ghistory = cuda::upload(history), goffsets = cuda::upload(offsets), gban = cuda::upload(ban),
               geos = cuda::upload(eos);
  std::vector<float> z(n * valid);
  cpu.sampling_logits(z.data(), logits.data(), n, ld, valid, start, history.data(), offsets.data(), 1.3f, ban.data(),
                      eos.data(), 3, 1.0f / 0.7f);
  gpu.sampling_logits(gz.f(), glogits.f(), n, ld, valid, start, ghistory.as<std::int32_t>(), goffsets.as<Index>(), 1.3f,
                      gban.as<std::uint8_t>(), geos.as<std::int32_t>(), 3, 1.0f / 0.7f);
  EXPECT_EQ(gz.get(gpu), z);  // the same float operations element by element: bitwise
}

TEST_F(Fixture, SamplerRowStatisticsInDouble) {
  const Index n = 23, ld = 3000, valid = 2900;
  auto x = random(n * ld, -20.0f, 20.0f);
  for (Index i = 0; i < n * ld; i += 11) x[i] = -INFINITY;  // banned tokens
  std::vector<float> above(n);
  for (Index r = 0; r < n; ++r) above[r] = r == 0 ? INFINITY : -20.0f + 2.0f * static_cast<float>(r);
  Dev gx(x);
  PooledBuffer gabove = cuda::upload(above);
  const auto compare = [&](const std::vector<double>& ref, const PooledBuffer& got, const char* what) {
    gpu.synchronize();
    const auto g = cuda::download<double>(got, n);
    for (Index r = 0; r < n; ++r) {
      if (std::isinf(ref[r])) {
        EXPECT_EQ(g[r], ref[r]) << what << " row " << r;
      } else {
        EXPECT_NEAR(g[r], ref[r], 1e-12 * std::max(1.0, std::abs(ref[r]))) << what << " row " << r;
      }
    }
  };
  for (bool finite_only : {false, true}) {
    std::vector<double> mx(n), mn(n), sum(n), mass(n);
    PooledBuffer gmx(device_allocator(), n * 8), gmn(device_allocator(), n * 8), gsum(device_allocator(), n * 8),
        gmass(device_allocator(), n * 8);
    cpu.row_max_f64(mx.data(), x.data(), n, ld, valid, finite_only);
    gpu.row_max_f64(gmx.as<double>(), gx.f(), n, ld, valid, finite_only);
    compare(mx, gmx, "max");
    cpu.row_min_f64(mn.data(), x.data(), n, ld, valid, finite_only);
    gpu.row_min_f64(gmn.as<double>(), gx.f(), n, ld, valid, finite_only);
    compare(mn, gmn, "min");
    if (!finite_only) continue;  // with the -inf entries the shift must be the finite max
    cpu.row_sumexp_f64(sum.data(), x.data(), n, ld, valid, mx.data(), nullptr, true);
    gpu.row_sumexp_f64(gsum.as<double>(), gx.f(), n, ld, valid, gmx.as<double>(), nullptr, true);
    compare(sum, gsum, "sumexp");
    cpu.row_sumexp_f64(mass.data(), x.data(), n, ld, valid, mx.data(), above.data(), true);
    gpu.row_sumexp_f64(gmass.as<double>(), gx.f(), n, ld, valid, gmx.as<double>(), gabove.as<float>(), true);
    compare(mass, gmass, "mass above");
  }
}

TEST_F(Fixture, RowTopKOffersTheCpusCandidatesExactly) {
  const Index n = 9, valid = 3000, start = 500;
  auto z = random(n * valid, -4.0f, 4.0f);
  for (Index i = 0; i < n * valid; i += 5) z[i] = -INFINITY;            // banned tokens
  for (Index v = 0; v < valid; ++v) z[1 * valid + v] = v % 3 ? -INFINITY : 0.5f;  // ties everywhere
  for (Index v = 2; v < valid; ++v) z[2 * valid + v] = -INFINITY;        // fewer finite than k
  Dev gz(z);
  for (Index k : {1, 7, 40}) {
    std::vector<double> want(static_cast<std::size_t>(n * 2 * k));
    cpu.row_top_k(want.data(), z.data(), n, valid, k, start);
    PooledBuffer gout(device_allocator(), want.size() * sizeof(double));
    cuda::fill_bytes(gout.data(), 0xFF, want.size() * sizeof(double));  // NaN: unwritten fails
    gpu.row_top_k(gout.as<double>(), gz.f(), n, valid, k, start);
    gpu.synchronize();
    const auto got = cuda::download<double>(gout, want.size());
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "k " << k << ", element " << i;
  }
}

TEST_F(Fixture, GumbelArgmaxPicksTheCpusTokensWithTheSameNoise) {
  const Index n = 37, valid = 5000, start = 10000;
  auto z = random(n * valid, -4.0f, 4.0f);
  for (Index i = 0; i < n * valid; i += 7) z[i] = -INFINITY;  // banned tokens
  std::vector<double> threshold(n);
  std::vector<std::uint64_t> ids(n);
  std::vector<std::int64_t> positions(n);
  for (Index r = 0; r < n; ++r) {
    threshold[r] = r % 3 == 0 ? -INFINITY : (r % 3 == 1 ? 2.0 : 3.99);  // all, a nucleus, maybe none
    ids[r] = 1000003ull * static_cast<std::uint64_t>(r);
    positions[r] = 17 + r;
  }
  Dev gz(z);
  PooledBuffer gthreshold = cuda::upload(threshold), gids = cuda::upload(ids), gpositions = cuda::upload(positions);
  for (bool noisy : {false, true}) {
    std::vector<double> score(n), id(n);
    cpu.gumbel_argmax(score.data(), id.data(), z.data(), n, valid, threshold.data(), noisy, 42, ids.data(),
                      positions.data(), start);
    PooledBuffer gscore(device_allocator(), n * sizeof(double)), gid(device_allocator(), n * sizeof(double));
    gpu.gumbel_argmax(gscore.as<double>(), gid.as<double>(), gz.f(), n, valid, gthreshold.as<double>(), noisy, 42,
                      gids.as<std::uint64_t>(), gpositions.as<std::int64_t>(), start);
    gpu.synchronize();
    const auto got_score = cuda::download<double>(gscore, n), got_id = cuda::download<double>(gid, n);
    for (Index r = 0; r < n; ++r) {
      EXPECT_EQ(got_id[r], id[r]) << "row " << r << (noisy ? " noisy" : " greedy");
      if (id[r] >= 0) {
        EXPECT_NEAR(got_score[r], score[r], 1e-12 * std::abs(score[r])) << "row " << r;
      }
    }
  }
}

// ---- mixed precision --------------------------------------------------------------------------

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
  gpu.to_f32(back.f(), half.as<std::uint16_t>(), n);
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
