// The attention kernels on the GPU against the CPU's (tests/gpu/cuda_kernels_test.cpp says how):
// packed causal attention forward and backward on every path (fused SIMT, tensor cores, cuBLAS),
// in float32 and bf16, the KV cache's prefill and decode, the bf16 cache.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "gpu/cuda_test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/fused_attention.h"

namespace spin::kernels {
namespace {

using namespace gpu_testing;  // the fixture and helpers the CUDA tests share

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
    {4, 4, 192},                                                                // DeepSeek-V3's (SIMT, not tensor cores)
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
// it does not; without and with a sliding window of 9 keys -- the cache holding every position,
// or a ring of the window and 12 rows a call (20 rows a slot, position p at row p mod 20:
// model/kv_cache.h), around whose end the later runs' keys wrap.
TEST_F(Fixture, CachedAttentionPrefillAndDecodeRuns) {
  const CudaKernels unfused(CudaKernels::Attention::Cublas);
  for (const Index head_dim : {16, 32, 64, 128, 192, 256}) {
    for (const CudaKernels* k : {static_cast<const CudaKernels*>(&gpu), &unfused}) {
      for (const auto& [window, capacity] : {std::pair<Index, Index>{0, 40}, {9, 40}, {9, 20}}) {
        SCOPED_TRACE(testing::Message() << (k == &gpu ? "fused" : "cuBLAS") << ", head_dim " << head_dim << ", window "
                                        << window << ", " << capacity << " rows a slot");
        const AttentionScores scores{AttentionScores::standard(head_dim).scale, 0.0f, window};
        const Index heads = 8, kv_heads = 4, slots = 3;
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

}  // namespace
}  // namespace spin::kernels
