// The device code of the attention's cuBLAS path (cuda_attention.cu launches it): the causal
// softmax of a score matrix and its backward, dS = P * (dP - rowsum(P * dP)); one thread block
// per row. Kept apart from the launches so that tests/unit/kernels/cuda/cuda_kernels_device_test.cpp
// can run this very source on the CPU under tests/common/cuda_emulation.h.
#pragma once

#include <cmath>

#include "kernels/cuda/device_helpers.cuh"

// Internal linkage: each file that includes this has its own copy.
namespace spin::kernels::cuda_detail::device {
namespace {

// Row i of matrix blockIdx.y ([rows, cols], `stride` apart) sees columns [0, offset + i] -- under
// a sliding window (window > 0) only from window_start(offset + i): softmax over those, zeros
// elsewhere. Scores arrive already scaled, and are capped here (softcap > 0,
// kernels::AttentionScores).
__global__ void causal_softmax_kernel(float* p, long long rows, long long cols, long long offset,
                                      long long stride, float softcap, long long window) {
  __shared__ float shared[32];
  float* row = p + blockIdx.y * stride + blockIdx.x * cols;
  const long long seen = min(cols, offset + static_cast<long long>(blockIdx.x) + 1);
  const long long first = window_start(offset + static_cast<long long>(blockIdx.x), window);
  float m = -INFINITY;
  for (long long j = first + threadIdx.x; j < seen; j += blockDim.x) {
    row[j] = softcap_scores(row[j], softcap);
    m = fmaxf(m, row[j]);
  }
  m = block_max(m, shared);
  float sum = 0.0f;
  for (long long j = first + threadIdx.x; j < seen; j += blockDim.x) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  sum = block_sum(sum, shared);
  const float inv = 1.0f / sum;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) row[j] = j >= first && j < seen ? row[j] * inv : 0.0f;
  (void)rows;
}
// dS = P * (dP - rowsum(P * dP)), in place on dP; one block per row of one head. With a cap,
// also times the cap's slope at the capped score, from the scaled scores before it (`scores`,
// laid out as dS).
__global__ void attention_ds_kernel(float* ds, const float* p, long long len, const float* scores, float softcap) {
  __shared__ float shared[32];
  const long long at = (static_cast<long long>(blockIdx.y) * len + blockIdx.x) * len;
  float dot = 0.0f;
  for (long long j = threadIdx.x; j < len; j += blockDim.x) dot += p[at + j] * ds[at + j];
  dot = block_sum(dot, shared);
  for (long long j = threadIdx.x; j < len; j += blockDim.x) {
    const float slope = softcap > 0.0f ? softcap_grad(softcap_scores(scores[at + j], softcap), softcap) : 1.0f;
    ds[at + j] = p[at + j] * (ds[at + j] - dot) * slope;
  }
}

}  // namespace
}  // namespace spin::kernels::cuda_detail::device
