// CudaKernels' sampling work (generate/sampling.h), one block per row of logits: the processed
// logits, the row statistics in double, the top-p search's mass histograms (a block per chunk of
// a row), the Gumbel-max choice and the top-k offer -- each the arithmetic of its CPU twin
// (kernels/cpu/sampling.cpp), tested against it (tests/gpu/).
//
// The kernels themselves (this header), apart from their launches (sampling.cu), so that
// tests/unit/kernels/cuda/cuda_kernels_test.cpp can run them on the CPU under
// tests/common/cuda_emulation.h.
#pragma once

#include <cmath>

#include "core/mass_histogram.h"
#include "core/philox_rounds.h"
#include "kernels/cuda/device_helpers.cuh"

// Internal linkage: each file that includes this has its own copy.
namespace spin::kernels::cuda_detail::sampling {
namespace {

// The entries of a row one block takes in the kernels that split rows (top-p's histograms, the
// Gumbel-max and top-k first stages): 16 a thread, so that a 128 Ki-token row is 32 blocks.
constexpr long long kRowChunk = 16LL * kThreads;
// Blocks a row of `valid` entries is split into (at least one).
inline long long row_chunks(long long valid) { return valid > kRowChunk ? (valid + kRowChunk - 1) / kRowChunk : 1; }

// The sampler's processed logits, a block per row: copy, penalty (set from the raw logit, so a
// token repeated in the history -- several threads writing the same value -- is penalised once),
// EOS ban, temperature; the block's barriers order the three writes.
__global__ void sampling_logits_kernel(float* z, const float* logits, long long ld, long long valid, long long start,
                                       const int* history, const long long* offsets, float penalty,
                                       const unsigned char* ban_eos, const int* eos, long long eos_count,
                                       float inv_temperature) {
  const long long r = blockIdx.x;
  float* zr = z + r * valid;
  const float* lr = logits + r * ld;
  for (long long v = threadIdx.x; v < valid; v += blockDim.x) zr[v] = lr[v];
  __syncthreads();
  if (penalty != 1.0f) {
    for (long long i = offsets[r] + threadIdx.x; i < offsets[r + 1]; i += blockDim.x) {
      const long long t = history[i] - start;
      if (t < 0 || t >= valid) continue;
      const float x = lr[t];
      zr[t] = x > 0.0f ? x / penalty : x * penalty;
    }
  }
  __syncthreads();
  if (ban_eos[r] != 0) {
    for (long long e = threadIdx.x; e < eos_count; e += blockDim.x) {
      const long long t = eos[e] - start;
      if (t >= 0 && t < valid) zr[t] = -INFINITY;
    }
  }
  __syncthreads();
  for (long long v = threadIdx.x; v < valid; v += blockDim.x) zr[v] *= inv_temperature;
}

// The sampler's row statistics in double: the max / a sum of exponentials.
template <class Op>
__device__ double block_reduce_f64(double v, double identity, Op op, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : identity;
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
// The row statistics in two launches, so that a row is not one block's at batch 1 (a 128 Ki-token shard read by one
// SM, a double exp a token): blocks (row, kRowChunk entries of it) each leave their chunk's maximum or sum in
// partial[row, chunk] -- the row's result itself where the row is one chunk --, then a block per row reduces a
// row's partials (row_partials_f64_kernel). The maximum is exact in any grouping; the sum is the same terms in
// another order.
__device__ inline double larger_f64(double a, double b) { return fmax(a, b); }
__device__ inline double sum_f64(double a, double b) { return a + b; }
__global__ void row_max_f64_kernel(double* partial, const float* x, long long ld, long long valid, bool finite_only) {
  __shared__ double shared[32];
  const float* row = x + blockIdx.x * ld;
  const long long end = min(valid, (blockIdx.y + 1LL) * kRowChunk);
  double m = -INFINITY;
  for (long long v = blockIdx.y * kRowChunk + threadIdx.x; v < end; v += blockDim.x) {
    const float e = row[v];
    if (!finite_only || !isinf(e)) m = fmax(m, double(e));
  }
  m = block_reduce_f64(m, -INFINITY, larger_f64, shared);
  if (threadIdx.x == 0) partial[blockIdx.x * gridDim.y + blockIdx.y] = m;
}
__global__ void row_sumexp_f64_kernel(double* partial, const float* x, long long ld, long long valid,
                                      const double* shift, bool finite_only) {
  __shared__ double shared[32];
  const float* row = x + blockIdx.x * ld;
  const double s = shift[blockIdx.x];
  const long long end = min(valid, (blockIdx.y + 1LL) * kRowChunk);
  double sum = 0.0;
  for (long long v = blockIdx.y * kRowChunk + threadIdx.x; v < end; v += blockDim.x) {
    const float e = row[v];
    if (finite_only && isinf(e)) continue;
    sum += exp(double(e) - s);
  }
  sum = block_reduce_f64(sum, 0.0, sum_f64, shared);
  if (threadIdx.x == 0) partial[blockIdx.x * gridDim.y + blockIdx.y] = sum;
}
// A block per row over its `chunks` partial results: their maximum, or with `sum` their sum.
__global__ void row_partials_f64_kernel(double* out, const double* partial, long long chunks, bool sum) {
  __shared__ double shared[32];
  const double* p = partial + blockIdx.x * chunks;
  double v = sum ? 0.0 : -INFINITY;
  for (long long c = threadIdx.x; c < chunks; c += blockDim.x) v = sum ? v + p[c] : fmax(v, p[c]);
  v = sum ? block_reduce_f64(v, 0.0, sum_f64, shared) : block_reduce_f64(v, -INFINITY, larger_f64, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// A round of the top-p search, blocks (row, kRowChunk entries of it): the block's histogram in
// shared memory, then its non-zero buckets added to the row's in `out` (zeroed before the
// launch). Integer atomics: the sums are exact whatever order the threads and blocks add in.
__global__ void row_mass_histogram_kernel(unsigned long long* out, const float* x, long long ld, long long valid,
                                          const double* shift, const unsigned long long* prefix, int bits) {
  __shared__ unsigned long long bucket[spin::kMassBuckets];
  for (int b = threadIdx.x; b < spin::kMassBuckets; b += blockDim.x) bucket[b] = 0;
  __syncthreads();
  const long long r = blockIdx.x;
  const float* row = x + r * ld;
  const double s = shift[r];
  const long long end = min(valid, (blockIdx.y + 1LL) * kRowChunk);
  for (long long v = blockIdx.y * kRowChunk + threadIdx.x; v < end; v += blockDim.x) {
    const float e = row[v];
    if (isinf(e)) continue;
    const unsigned key = spin::float_order_key(e);
    if (bits > 0 && key >> (32 - bits) != prefix[r]) continue;
    atomicAdd(&bucket[(key >> (32 - spin::kMassBucketBits - bits)) & (spin::kMassBuckets - 1)],
              static_cast<unsigned long long>(spin::mass_weight(exp(double(e) - s))));
  }
  __syncthreads();
  for (int b = threadIdx.x; b < spin::kMassBuckets; b += blockDim.x) {
    if (bucket[b] != 0) atomicAdd(&out[r * spin::kMassBuckets + b], bucket[b]);
  }
}

// Gumbel-max in two stages, so that a row's noise (a Philox block and two double-precision
// logarithms a token) is not one block's work at batch 1: blocks (row, kRowChunk tokens of
// it) each leave their chunk's best (score, token), each thread keeping its best over a strided
// slice and a shared-memory tree picking the block's with the same order (higher score, smaller
// token); then a block per row picks the best of its chunks'. The order is total, so the winner
// is the one-pass winner whatever the grouping.
__global__ void gumbel_argmax_chunks_kernel(double* chunk_score, long long* chunk_token, const float* z,
                                            long long valid, const double* threshold, bool noisy,
                                            unsigned long long seed, const unsigned long long* sample_ids,
                                            const long long* positions, long long vocab_start) {
  __shared__ double scores[kThreads];
  __shared__ long long ids[kThreads];
  const long long r = blockIdx.x, end = min(valid, (blockIdx.y + 1LL) * kRowChunk);
  const float* zr = z + r * valid;
  const double t = threshold[r];
  double score = -INFINITY;
  long long id = -1;
  const auto log = [](double x) { return ::log(x); };
  for (long long v = blockIdx.y * kRowChunk + threadIdx.x; v < end; v += blockDim.x) {
    const float x = zr[v];
    if (!(x >= t) || isinf(x)) continue;
    const long long token = vocab_start + v;
    const double s = x + (noisy ? spin::gumbel_noise(seed, sample_ids[r], positions[r], token, log) : 0.0);
    if (s > score || (s == score && (id < 0 || token < id))) score = s, id = token;
  }
  block_argmax(score, id, scores, ids);
  if (threadIdx.x == 0) {
    chunk_score[r * gridDim.y + blockIdx.y] = ids[0] < 0 ? -INFINITY : scores[0];
    chunk_token[r * gridDim.y + blockIdx.y] = ids[0];
  }
}
// A block per row over its `chunks` winners: Kernels::gumbel_argmax's (score, id), (-inf, -1)
// when no chunk had an eligible token.
__global__ void gumbel_argmax_kernel(double* best_score, double* best_id, const double* chunk_score,
                                     const long long* chunk_token, long long chunks) {
  __shared__ double scores[kThreads];
  __shared__ long long ids[kThreads];
  const long long r = blockIdx.x;
  double score = -INFINITY;
  long long id = -1;
  for (long long c = threadIdx.x; c < chunks; c += blockDim.x) {
    const double s = chunk_score[r * chunks + c];
    const long long token = chunk_token[r * chunks + c];
    if (token >= 0 && (id < 0 || s > score || (s == score && token < id))) score = s, id = token;
  }
  block_argmax(score, id, scores, ids);
  if (threadIdx.x == 0) {
    best_score[r] = ids[0] < 0 ? -INFINITY : scores[0];
    best_id[r] = static_cast<double>(ids[0]);
  }
}
// k rounds over a block's `count` entries, entry(j, value, column): round i finds the best entry
// strictly after round i-1's in the order (value descending, column ascending) -- so no entry is
// taken twice and no mask is kept -- and thread 0 hands it to emit(i, value, column), column -1
// once nothing is left. Infinite values and negative columns are never taken. k x count /
// blockDim loads per thread.
template <class Entry, class Emit>
__device__ void block_top_k(long long count, long long k, Entry entry, Emit emit) {
  __shared__ float values[kThreads];
  __shared__ long long columns[kThreads];
  float prev_value = INFINITY;
  long long prev_column = -1;
  for (long long i = 0; i < k; ++i) {
    float best = -INFINITY;
    long long column = -1;
    for (long long j = threadIdx.x; j < count; j += blockDim.x) {
      float x;
      long long c;
      entry(j, x, c);
      if (c < 0 || isinf(x)) continue;
      const bool after = x < prev_value || (x == prev_value && c > prev_column);
      if (after && (x > best || (x == best && (column < 0 || c < column)))) best = x, column = c;
    }
    block_argmax(best, column, values, columns);
    prev_value = values[0];
    prev_column = columns[0];
    __syncthreads();  // every thread has read the winner before the next round overwrites it
    if (threadIdx.x == 0) emit(i, prev_value, prev_column);
    if (prev_column < 0) prev_value = -INFINITY;  // nothing left (no finite value is after -inf)
  }
}

// Top-k in two stages, so that a row is not one block's k passes over the whole shard (at batch
// 1, one SM reading 128 Ki logits k times): blocks (row, kRowChunk entries of it) each leave
// their chunk's k best as (value, column) candidates; then a block per row takes the k best of
// its chunks' candidates. Exact: a row's k best are among its chunks' k best.
__global__ void row_top_k_chunks_kernel(float* candidate_values, long long* candidate_columns, const float* z,
                                        long long valid, long long k) {
  const long long r = blockIdx.x, begin = blockIdx.y * kRowChunk;
  const long long count = max(0LL, min(valid, begin + kRowChunk) - begin);
  const float* zr = z + r * valid + begin;
  const long long at = (r * gridDim.y + blockIdx.y) * k;
  block_top_k(
      count, k, [&](long long j, float& x, long long& c) { x = zr[j], c = begin + j; },
      [&](long long i, float x, long long c) { candidate_values[at + i] = x, candidate_columns[at + i] = c; });
}
// A block per row over its `count` candidates: out[r, 0 .. 2k) as Kernels::row_top_k gives it.
__global__ void row_top_k_kernel(double* out, const float* candidate_values, const long long* candidate_columns,
                                 long long count, long long k, long long vocab_start) {
  const long long r = blockIdx.x;
  double* o = out + r * 2 * k;
  block_top_k(
      count, k,
      [&](long long j, float& x, long long& c) {
        x = candidate_values[r * count + j], c = candidate_columns[r * count + j];
      },
      [&](long long i, float x, long long c) {
        o[2 * i] = c < 0 ? -INFINITY : static_cast<double>(x);
        o[2 * i + 1] = c < 0 ? -INFINITY : static_cast<double>(vocab_start + c);
      });
}

// Kernels::logits_at_ids, a thread per id (grid-stride).
__global__ void logits_at_ids_kernel(double* out, const float* x, long long n, long long ld, long long valid,
                                     const double* ids, long long count, long long stride, long long vocab_start) {
  for (long long j = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; j < n * count;
       j += static_cast<long long>(gridDim.x) * blockDim.x) {
    const double id = ids[j * stride];
    const bool held = id >= static_cast<double>(vocab_start) && id < static_cast<double>(vocab_start + valid);
    out[j] = held ? static_cast<double>(x[(j / count) * ld + static_cast<long long>(id) - vocab_start]) : -INFINITY;
  }
}

}  // namespace
}  // namespace spin::kernels::cuda_detail::sampling
