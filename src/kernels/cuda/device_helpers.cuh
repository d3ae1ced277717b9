// Device-side building blocks shared by the CUDA kernel files: launch sizes, warp and block
// reductions (every thread gets the result), the block-wide (score, index) argmax, and the
// grid-stride loop.
#pragma once

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"

namespace spin::kernels::cuda_detail {

constexpr int kThreads = 256;  // per block; 8 warps
constexpr Index kMaxBlocks = 65535;

inline unsigned blocks_for(Index n) {
  return static_cast<unsigned>(std::clamp<Index>((n + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

template <class T>
__device__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
inline __device__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Block-wide sum / max; every thread gets the result. `shared` holds 32 values.
template <class T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? shared[lane] : T(0));
}
inline __device__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_max(lane < warps ? shared[lane] : -INFINITY);
}

// cpu/vec_math.h's softcap and softcap_slope on the device (through tanhf); cap 0 is no cap.
inline __device__ float softcap_scores(float s, float cap) { return cap > 0.0f ? cap * tanhf(s / cap) : s; }
inline __device__ float softcap_grad(float capped, float cap) {
  if (cap <= 0.0f) return 1.0f;
  const float t = capped / cap;
  return 1.0f - t * t;
}
// kernels::AttentionScores::first_key on the device: the first position the query at `position`
// sees under a sliding window of `window` keys (0: none).
inline __device__ long long window_start(long long position, long long window) {
  return window > 0 && position >= window ? position - window + 1 : 0;
}

#define SPIN_GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<long long>(gridDim.x) * blockDim.x)

// The block's best (score, index) pair -- higher score, then smaller index; index < 0 is
// "none" -- from each thread's candidate, in the shared arrays' slot 0 on return (every thread
// may read it until the arrays are next written).
template <class Score>
__device__ void block_argmax(Score score, long long index, Score* scores, long long* indices) {
  scores[threadIdx.x] = score;
  indices[threadIdx.x] = index;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half >>= 1) {
    if (static_cast<int>(threadIdx.x) < half) {
      const Score s = scores[threadIdx.x + half];
      const long long i = indices[threadIdx.x + half], mine = indices[threadIdx.x];
      if (i >= 0 && (mine < 0 || s > scores[threadIdx.x] || (s == scores[threadIdx.x] && i < mine))) {
        scores[threadIdx.x] = s, indices[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
}

}  // namespace spin::kernels::cuda_detail
