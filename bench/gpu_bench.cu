// GPU figures for the CUDA path (needs a GPU; prints SKIP and exits 77 without one):
//   gpu_bench            the ceilings, then each kernel against its floor
// Ceilings measured here, not taken from datasheets: device-to-device copy bandwidth (bytes
// read + written), and cuBLAS matrix products at 8192^3 in float32, TF32 and bf16 (fp32
// accumulation). Then CudaKernels at Llama-7B shapes (hidden 4096, MLP 11008, 32 heads of 128,
// vocab 32000 on one GPU, 8192 tokens; attention also at Gemma-7B's 16 heads of 256): time, achieved GB/s or TFLOP/s, and the fraction of the
// matching ceiling. Each figure is the median of 20 timed runs after 3 warm-up runs, timed with
// CUDA events; inputs are random (never zeros) and larger than the L2 cache.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/fused_attention.h"

namespace {

using spin::PooledBuffer;
using spin::kernels::CudaKernels;
using spin::kernels::Index;

__global__ void fill_random(float* x, long long n, unsigned seed, float scale) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    unsigned h = static_cast<unsigned>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    x[i] = scale * (static_cast<float>(h & 0xFFFFFF) / 16777216.0f - 0.5f);
  }
}
__global__ void to_bf16(__nv_bfloat16* out, const float* in, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16(in[i]);
  }
}

PooledBuffer random_floats(Index n, float scale = 2.0f) {
  static unsigned seed = 1;
  PooledBuffer b(spin::cuda::device_allocator(), static_cast<std::size_t>(n) * sizeof(float));
  fill_random<<<4096, 256>>>(b.as<float>(), n, seed++, scale);
  SPIN_CUDA_CHECK_LAUNCH("fill_random");
  return b;
}

// TinyLlama-1.1B's parameters as ranges of one flat buffer, in the model's order: the
// embedding, per layer two norms (no weight decay) and seven matrices, the final norm, the head.
std::vector<spin::kernels::Kernels::UpdateRange> tinyllama_ranges() {
  const Index hidden = 2048, kv = 256, mlp = 5632, vocab = 32000, layers = 22;
  std::vector<spin::kernels::Kernels::UpdateRange> ranges;
  Index at = 0;
  const auto add = [&](Index n, bool decay) {
    ranges.push_back({at, n, decay});
    at += n;
  };
  add(vocab * hidden, true);
  for (Index l = 0; l < layers; ++l) {
    add(hidden, false);
    for (const Index out : {hidden, kv, kv, hidden}) add(out * hidden, true);
    add(hidden, false);
    for (int i = 0; i < 3; ++i) add(mlp * hidden, true);
  }
  add(hidden, false);
  add(vocab * hidden, true);
  return ranges;
}

// Median milliseconds of `fn` on `stream`.
double time_ms(cudaStream_t stream, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  SPIN_CUDA_CHECK(cudaEventCreate(&start));
  SPIN_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int i = 0; i < 20; ++i) {
    SPIN_CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    SPIN_CUDA_CHECK(cudaEventRecord(stop, stream));
    SPIN_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    SPIN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void row(const char* name, double ms, double amount, const char* unit, double ceiling) {
  const double rate = amount / (ms * 1e-3) / 1e9;  // G<unit>/s
  std::printf("| %-44s | %9.3f | %9.1f %-7s | %5.1f%% |\n", name, ms, unit[0] == 'T' ? rate / 1e3 : rate, unit,
              100.0 * rate / ceiling);
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  SPIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, %.1f GiB, L2 %d MiB\n\n", prop.name, prop.multiProcessorCount,
              static_cast<double>(prop.totalGlobalMem) / (1 << 30), prop.l2CacheSize >> 20);
  CudaKernels k;
  cudaStream_t s = k.stream();

  // ---- ceilings ----------------------------------------------------------------------------
  const Index copy_n = Index{1} << 28;  // 1 GiB of floats
  PooledBuffer a = random_floats(copy_n), b = random_floats(copy_n);
  const double copy_ms = time_ms(s, [&] {
    SPIN_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), copy_n * sizeof(float), cudaMemcpyDeviceToDevice, s));
  });
  const double bandwidth = 2.0 * copy_n * sizeof(float) / (copy_ms * 1e-3) / 1e9;  // GB/s, read + write

  cublasHandle_t blas;
  SPIN_CUBLAS_CHECK(cublasCreate(&blas));
  SPIN_CUBLAS_CHECK(cublasSetStream(blas, s));
  const int g = 8192;
  PooledBuffer ga = random_floats(Index{g} * g), gb = random_floats(Index{g} * g), gc = random_floats(Index{g} * g);
  PooledBuffer ha(spin::cuda::device_allocator(), std::size_t{g} * g * 2), hb(spin::cuda::device_allocator(), std::size_t{g} * g * 2);
  to_bf16<<<4096, 256, 0, s>>>(ha.as<__nv_bfloat16>(), ga.as<float>(), Index{g} * g);
  to_bf16<<<4096, 256, 0, s>>>(hb.as<__nv_bfloat16>(), gb.as<float>(), Index{g} * g);
  const float one = 1.0f, zero = 0.0f;
  const double gemm_flops = 2.0 * g * g * g;
  SPIN_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
  const double fp32_ms = time_ms(s, [&] {
    SPIN_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, g, g, g, &one, ga.as<float>(), g, gb.as<float>(), g,
                                  &zero, gc.as<float>(), g));
  });
  SPIN_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_TF32_TENSOR_OP_MATH));
  const double tf32_ms = time_ms(s, [&] {
    SPIN_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, g, g, g, &one, ga.as<float>(), g, gb.as<float>(), g,
                                  &zero, gc.as<float>(), g));
  });
  SPIN_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
  const double bf16_ms = time_ms(s, [&] {
    SPIN_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, g, g, g, &one, ha.data(), CUDA_R_16BF, g, hb.data(),
                                   CUDA_R_16BF, g, &zero, gc.data(), CUDA_R_32F, g, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
  });
  const double fp32_peak = gemm_flops / (fp32_ms * 1e-3) / 1e9;  // GFLOP/s
  const double bf16_peak = gemm_flops / (bf16_ms * 1e-3) / 1e9;
  std::printf("| ceiling | ms | rate |\n|---|---|---|\n");
  std::printf("| device-to-device copy, 1 GiB | %.3f | %.0f GB/s (read + write) |\n", copy_ms, bandwidth);
  std::printf("| cuBLAS sgemm 8192^3, float32 | %.3f | %.1f TFLOP/s |\n", fp32_ms, fp32_peak / 1e3);
  std::printf("| cuBLAS sgemm 8192^3, TF32 | %.3f | %.1f TFLOP/s |\n", tf32_ms, gemm_flops / (tf32_ms * 1e-3) / 1e12);
  std::printf("| cuBLAS gemm 8192^3, bf16 in, fp32 accumulate | %.3f | %.1f TFLOP/s |\n\n", bf16_ms,
              gemm_flops / (bf16_ms * 1e-3) / 1e12);
  cublasDestroy(blas);
  a.reset(), b.reset(), ga.reset(), gb.reset(), gc.reset(), ha.reset(), hb.reset();

  // ---- CudaKernels (float32) at Llama-7B shapes -------------------------------------------
  const Index tokens = 8192, hidden = 4096, mlp = 11008, heads = 32, head_dim = 128, vocab = 32000;
  std::printf("| kernel (float32 CudaKernels) | ms | achieved | of ceiling |\n|---|---|---|---|\n");
  {
    PooledBuffer x = random_floats(tokens * hidden), w = random_floats(hidden), out = random_floats(tokens * hidden),
                 rstd = random_floats(tokens);
    const double ms = time_ms(s, [&] { k.rmsnorm_forward(out.as<float>(), rstd.as<float>(), x.as<float>(), w.as<float>(), tokens, hidden, 1e-5f, 0.0f); });
    row("rmsnorm_forward 8192 x 4096", ms, 2.0 * tokens * hidden * 4, "GB/s", bandwidth);
    PooledBuffer dout = random_floats(tokens * hidden), dx = random_floats(tokens * hidden), dw = random_floats(hidden);
    const double bms = time_ms(s, [&] {
      k.rmsnorm_backward(dx.as<float>(), dw.as<float>(), dout.as<float>(), x.as<float>(), w.as<float>(), rstd.as<float>(), tokens, hidden, 0.0f);
    });
    row("rmsnorm_backward 8192 x 4096 (dx and dw)", bms, 6.0 * tokens * hidden * 4, "GB/s", bandwidth);
  }
  {
    PooledBuffer gate = random_floats(tokens * mlp), up = random_floats(tokens * mlp), out = random_floats(tokens * mlp);
    const double ms = time_ms(s, [&] { k.glu_forward(out.as<float>(), gate.as<float>(), up.as<float>(), tokens * mlp, spin::kernels::Activation::Silu); });
    row("glu_forward (SiLU) 8192 x 11008", ms, 3.0 * tokens * mlp * 4, "GB/s", bandwidth);
  }
  {
    // TinyLlama-1.1B's 201 tensors, as Optimizer::step hands them over: one launch for all.
    const std::vector<spin::kernels::Kernels::UpdateRange> ranges = tinyllama_ranges();
    std::vector<spin::kernels::Kernels::Range> norm_ranges;
    for (const auto& r : ranges) norm_ranges.push_back({r.offset, r.length});
    const Index n = ranges.back().offset + ranges.back().length;
    PooledBuffer p = random_floats(n), gr = random_floats(n), m = random_floats(n), v = random_floats(n, 1.0f);
    PooledBuffer p16(spin::cuda::device_allocator(), static_cast<std::size_t>(n) * 2);
    const spin::kernels::Kernels::AdamW h{1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 10};
    const double ms = time_ms(s, [&] {
      k.adamw_update(p.as<float>(), p16.as<std::uint16_t>(), gr.as<float>(), m.as<float>(), v.as<float>(), ranges.data(),
                     static_cast<Index>(ranges.size()), h);
    });
    row("adamw + bf16 copy, 1.1B in 201 tensors", ms, 30.0 * n, "GB/s", bandwidth);
    const double sq = time_ms(s, [&] { (void)k.sum_squares(gr.as<float>(), norm_ranges.data(),
                                                         static_cast<Index>(norm_ranges.size())); });
    row("sum_squares 1.1B in 201 tensors (+ sync)", sq, 4.0 * n, "GB/s", bandwidth);
  }
  {
    const Index rows = 4096;
    PooledBuffer logits = random_floats(rows * vocab, 16.0f), mx = random_floats(rows), se = random_floats(rows),
                 tl = random_floats(rows);
    std::vector<std::int32_t> host_targets(rows);
    std::mt19937 rng(7);
    for (auto& t : host_targets) t = static_cast<std::int32_t>(rng() % vocab);
    PooledBuffer targets = spin::cuda::upload(host_targets);
    const double ms = time_ms(s, [&] {
      k.logits_max(mx.as<float>(), logits.as<float>(), rows, vocab, vocab);
      k.logits_sumexp_target(se.as<float>(), tl.as<float>(), logits.as<float>(), mx.as<float>(), targets.as<std::int32_t>(), rows, vocab, vocab, 0);
    });
    row("log-softmax pieces 4096 x 32000 (2 passes)", ms, 2.0 * rows * vocab * 4, "GB/s", bandwidth);
  }
  // ---- attention, every path: 4 sequences of 2048 tokens, 32 heads of 128 (Llama-7B), 16 heads
  // of 256 (Gemma-7B: tensor cores with 32-row key tiles, dV and dK in two passes there), and again with Gemma 2's score cap
  // (50: a tanh per score forward, its slope in the backward), and 32 x 128 in a sliding window of
  // 512 keys (Mistral's shape, its 4096-key window scaled to these sequences) ---------------------
  // FLOPs of the scores each query sees (sum_i min(i + 1, window): half the square without a
  // window), counted once: forward 2 products, backward 5 (FlashAttention's count: S recomputed,
  // dP, dV, dK, dQ) -- the fused backwards compute S and dP twice (dQ pass, dK/dV pass; S a third time in the
  // tensor cores' separate dV pass at 256), so their achieved rate is of useful FLOPs. Ceiling: the matching GEMM peak. A window's row shows what
  // skipping the keys outside it buys: its time against the unwindowed row's, next to the ratio
  // of their FLOPs (0.44 at 512 of 2048).
  struct AttentionShape {
    Index heads, head_dim;
    float softcap;
    Index window;
  };
  for (const AttentionShape& shape : {AttentionShape{heads, head_dim, 0.0f, 0}, AttentionShape{16, 256, 0.0f, 0},
                                      AttentionShape{16, 256, 50.0f, 0}, AttentionShape{heads, head_dim, 0.0f, 512}}) {
    const Index att_heads = shape.heads, att_dim = shape.head_dim, window = shape.window;
    const spin::kernels::AttentionScores scores{1.0f / std::sqrt(static_cast<float>(att_dim)), shape.softcap, window};
    std::printf("\n| attention 4 x 2048 tokens, %lld x %lld%s%s | ms | achieved | of ceiling |\n|---|---|---|---|\n",
                static_cast<long long>(att_heads), static_cast<long long>(att_dim),
                shape.softcap > 0.0f ? ", scores capped at 50 (Gemma 2)" : "",
                window > 0 ? ", sliding window of 512 keys" : "");
    const Index len = 2048, seqs = tokens / len, width = tokens * att_heads * att_dim;
    std::vector<Index> cu(static_cast<std::size_t>(seqs + 1));
    for (Index i = 0; i <= seqs; ++i) cu[static_cast<std::size_t>(i)] = i * len;
    double seen = 0.0;  // scores per sequence and head
    for (Index i = 0; i < len; ++i) seen += static_cast<double>(window > 0 ? std::min(i + 1, window) : i + 1);
    const double forward_flops = 4.0 * seqs * att_heads * seen * att_dim;  // 2 products x 2 flops per score x hd
    PooledBuffer q = random_floats(width), kk = random_floats(width), v = random_floats(width),
                 out = random_floats(width), dout = random_floats(width), dq = random_floats(width),
                 dk = random_floats(width), dv = random_floats(width);
    PooledBuffer q16(spin::cuda::device_allocator(), width * 2), k16(spin::cuda::device_allocator(), width * 2),
        v16(spin::cuda::device_allocator(), width * 2), out16(spin::cuda::device_allocator(), width * 2);
    to_bf16<<<4096, 256, 0, s>>>(q16.as<__nv_bfloat16>(), q.as<float>(), width);
    to_bf16<<<4096, 256, 0, s>>>(k16.as<__nv_bfloat16>(), kk.as<float>(), width);
    to_bf16<<<4096, 256, 0, s>>>(v16.as<__nv_bfloat16>(), v.as<float>(), width);
    struct Path {
      const char* name;
      CudaKernels::Attention attention;
      bool bf16;
    };
    for (const Path& path : {Path{"tensor cores, bf16", CudaKernels::Attention::TensorCores, true},
                             Path{"fused SIMT, bf16", CudaKernels::Attention::Fused, true},
                             Path{"fused SIMT, float32", CudaKernels::Attention::Fused, false},
                             Path{"cuBLAS + softmax, float32", CudaKernels::Attention::Cublas, false}}) {
      if (path.attention == CudaKernels::Attention::TensorCores &&
          !spin::kernels::cuda_detail::tensor_core_attention_supports(att_dim)) {
        continue;
      }
      const CudaKernels a(path.attention);
      PooledBuffer saved = random_floats(a.attention_saved_size(cu.data(), seqs, att_heads, att_dim));
      const auto u16 = [](const PooledBuffer& b) { return b.as<std::uint16_t>(); };
      const double fwd = time_ms(s, [&] {
        if (path.bf16) {
          a.attention_forward_bf16(u16(out16), saved.as<float>(), u16(q16), u16(k16), u16(v16), cu.data(), seqs,
                                   att_heads, att_heads, att_dim, scores);
        } else {
          a.attention_forward(out.as<float>(), saved.as<float>(), q.as<float>(), kk.as<float>(), v.as<float>(),
                              cu.data(), seqs, att_heads, att_heads, att_dim, scores);
        }
      });
      const double bwd = time_ms(s, [&] {
        if (path.bf16) {
          a.attention_backward_bf16(dq.as<float>(), dk.as<float>(), dv.as<float>(), dout.as<float>(), u16(q16),
                                    u16(k16), u16(v16), u16(out16), saved.as<float>(), cu.data(), seqs, att_heads,
                                    att_heads, att_dim, scores);
        } else {
          a.attention_backward(dq.as<float>(), dk.as<float>(), dv.as<float>(), dout.as<float>(), q.as<float>(),
                               kk.as<float>(), v.as<float>(), saved.as<float>(), cu.data(), seqs, att_heads, att_heads,
                               att_dim, scores);
        }
      });
      const double ceiling = path.bf16 ? bf16_peak : fp32_peak;
      row(("forward, " + std::string(path.name)).c_str(), fwd, forward_flops, "TFLOP/s", ceiling);
      row(("backward, " + std::string(path.name)).c_str(), bwd, 2.5 * forward_flops, "TFLOP/s", ceiling);
    }
  }
  std::printf("\nceilings: copy %.0f GB/s, float32 sgemm %.1f TFLOP/s, bf16 gemm %.1f TFLOP/s\n", bandwidth,
              fp32_peak / 1e3, bf16_peak / 1e3);
  return 0;
}
