// CudaKernels' sampling work (generate/sampling.h), one block per row of logits: the processed
// logits, the row statistics in double, the top-p search's mass histograms (a block per chunk of
// a row), the Gumbel-max choice and the top-k offer -- each the arithmetic of its CPU twin
// (kernels/cpu/sampling.cpp), tested against it (tests/gpu/).
#include <algorithm>

#include "core/mass_histogram.h"
#include "core/philox_rounds.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_helpers.cuh"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/sampling_kernels.cuh"

namespace spin::kernels {

using namespace cuda_detail;
using namespace cuda_detail::sampling;

void CudaKernels::sampling_logits(float* z, const float* logits, Index n, Index ld, Index valid, Index vocab_start,
                                  const std::int32_t* history, const Index* offsets, float penalty,
                                  const std::uint8_t* ban_eos, const std::int32_t* eos, Index eos_count,
                                  float inv_temperature) const {
  if (n == 0) return;
  sampling_logits_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(
      z, logits, ld, valid, vocab_start, history, reinterpret_cast<const long long*>(offsets), penalty, ban_eos, eos,
      eos_count, inv_temperature);
  SPIN_CUDA_CHECK_LAUNCH("sampling_logits");
}

namespace {
// A row statistic over rows of `valid` entries: `launch(grid, partial)` runs the chunk kernel over grid (n, chunks)
// -- into `out` where a row is one chunk --, then the chunks' partial results are reduced (a maximum, or a `sum`).
template <class Launch>
void row_statistic_f64(CachingAllocator& allocator, cudaStream_t stream, double* out, Index n, Index valid, bool sum,
                       Launch launch) {
  const Index chunks = row_chunks(valid);
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(chunks));
  if (chunks == 1) {
    launch(grid, out);
    return;
  }
  PooledBuffer partial(allocator, static_cast<std::size_t>(n * chunks) * sizeof(double));
  launch(grid, partial.as<double>());
  row_partials_f64_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(out, partial.as<double>(), chunks, sum);
  SPIN_CUDA_CHECK_LAUNCH("row statistics (the chunks' partial results)");
}
}  // namespace

void CudaKernels::row_max_f64(double* out, const float* x, Index n, Index ld, Index valid, bool finite_only) const {
  if (n == 0) return;
  row_statistic_f64(allocator_, stream_, out, n, valid, false, [&](dim3 grid, double* partial) {
    row_max_f64_kernel<<<grid, kThreads, 0, stream_>>>(partial, x, ld, valid, finite_only);
    SPIN_CUDA_CHECK_LAUNCH("row_max_f64");
  });
}

void CudaKernels::row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                                 bool finite_only) const {
  if (n == 0) return;
  row_statistic_f64(allocator_, stream_, out, n, valid, true, [&](dim3 grid, double* partial) {
    row_sumexp_f64_kernel<<<grid, kThreads, 0, stream_>>>(partial, x, ld, valid, shift, finite_only);
    SPIN_CUDA_CHECK_LAUNCH("row_sumexp_f64");
  });
}

void CudaKernels::row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid,
                                     const double* shift, const std::uint64_t* prefix, int bits) const {
  if (n == 0) return;
  SPIN_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<std::size_t>(n) * kMassBuckets * sizeof(std::uint64_t), stream_));
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(row_chunks(valid)));
  row_mass_histogram_kernel<<<grid, kThreads, 0, stream_>>>(reinterpret_cast<unsigned long long*>(out), x, ld, valid,
                                                            shift, reinterpret_cast<const unsigned long long*>(prefix),
                                                            bits);
  SPIN_CUDA_CHECK_LAUNCH("row_mass_histogram");
}

void CudaKernels::gumbel_argmax(double* best_score, double* best_id, const float* z, Index n, Index valid,
                                const double* threshold, bool noisy, std::uint64_t seed,
                                const std::uint64_t* sample_ids, const std::int64_t* positions,
                                Index vocab_start) const {
  if (n == 0) return;
  const Index chunks = row_chunks(valid);
  const auto winners = static_cast<std::size_t>(n * chunks);
  PooledBuffer scores(allocator_, winners * sizeof(double)), tokens(allocator_, winners * sizeof(long long));
  gumbel_argmax_chunks_kernel<<<dim3(static_cast<unsigned>(n), static_cast<unsigned>(chunks)), kThreads, 0, stream_>>>(
      scores.as<double>(), tokens.as<long long>(), z, valid, threshold, noisy, seed,
      reinterpret_cast<const unsigned long long*>(sample_ids), reinterpret_cast<const long long*>(positions),
      vocab_start);
  SPIN_CUDA_CHECK_LAUNCH("gumbel_argmax (chunks)");
  gumbel_argmax_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(best_score, best_id, scores.as<double>(),
                                                                           tokens.as<long long>(), chunks);
  SPIN_CUDA_CHECK_LAUNCH("gumbel_argmax");
}

void CudaKernels::row_top_k(double* out, const float* z, Index n, Index valid, Index k, Index vocab_start) const {
  if (n == 0 || k == 0) return;
  const Index chunks = row_chunks(valid);
  const auto candidates = static_cast<std::size_t>(n * chunks * k);
  PooledBuffer values(allocator_, candidates * sizeof(float)), columns(allocator_, candidates * sizeof(long long));
  row_top_k_chunks_kernel<<<dim3(static_cast<unsigned>(n), static_cast<unsigned>(chunks)), kThreads, 0, stream_>>>(
      values.as<float>(), columns.as<long long>(), z, valid, k);
  SPIN_CUDA_CHECK_LAUNCH("row_top_k (chunks)");
  row_top_k_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(out, values.as<float>(), columns.as<long long>(),
                                                                       chunks * k, k, vocab_start);
  SPIN_CUDA_CHECK_LAUNCH("row_top_k");
}

void CudaKernels::logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids,
                                Index count, Index stride, Index vocab_start) const {
  if (n == 0 || count == 0) return;
  logits_at_ids_kernel<<<blocks_for(n * count), kThreads, 0, stream_>>>(out, x, n, ld, valid, ids, count, stride,
                                                                        vocab_start);
  SPIN_CUDA_CHECK_LAUNCH("logits_at_ids");
}

}  // namespace spin::kernels
