// Local parts of the vocab-parallel log-softmax (Megatron's _VocabParallelCrossEntropy without
// the loss reduction): only per-row scalars cross ranks, never logits.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace spin::kernels {

void CpuKernels::logits_max(float* row_max, const float* logits, Index n, Index ld,
                            Index valid) const {
  for (Index i = 0; i < n; ++i) {
    const float* row = logits + i * ld;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (Index v = 0; v < valid; ++v) m = row[v] > m ? row[v] : m;
    row_max[i] = m;
  }
}

void CpuKernels::logits_sumexp_target(float* sumexp, float* target_logit, const float* logits,
                                      const float* row_max, const std::int32_t* targets, Index n,
                                      Index ld, Index valid, Index vocab_start) const {
  for (Index i = 0; i < n; ++i) {
    const float* row = logits + i * ld;
    const float m = row_max[i];
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (Index v = 0; v < valid; ++v) sum += cpu::exp_approx(row[v] - m);
    sumexp[i] = sum;
    const Index t = targets[i] - vocab_start;
    target_logit[i] = (t >= 0 && t < valid) ? row[t] : 0.0f;
  }
}

void CpuKernels::logprob_from_sums(float* logprob, float* lse, const float* sums,
                                   const std::int32_t* targets, Index n) const {
  for (Index i = 0; i < n; ++i) {
    lse[i] += std::log(sums[i]);
    logprob[i] = targets[i] < 0 ? 0.0f : sums[n + i] - lse[i];
  }
}

void CpuKernels::logprob_backward(float* dlogits, const float* logits, const float* lse,
                                  const std::int32_t* targets, const float* dlogprob, Index n,
                                  Index ld, Index valid, Index vocab_start, float softcap) const {
  for (Index i = 0; i < n; ++i) {
    const float* row = logits + i * ld;
    float* drow = dlogits + i * ld;
    const float g = targets[i] < 0 ? 0.0f : dlogprob[i];  // no target: logprob is the constant 0
    const float l = lse[i];
    const Index t = targets[i] - vocab_start;
    if (softcap > 0.0f) {  // through the cap: times its slope at the capped logit, read before drow is written
      const bool has_target = t >= 0 && t < valid;
      const float target_slope = has_target ? cpu::softcap_slope(row[t], softcap) : 0.0f;
#pragma omp simd
      for (Index v = 0; v < valid; ++v) {
        const float y = row[v];
        drow[v] = -g * cpu::exp_approx(y - l) * cpu::softcap_slope(y, softcap);
      }
      if (has_target) drow[t] += g * target_slope;
    } else {
#pragma omp simd
      for (Index v = 0; v < valid; ++v) drow[v] = -g * cpu::exp_approx(row[v] - l);
      if (t >= 0 && t < valid) drow[t] += g;
    }
    for (Index v = valid; v < ld; ++v) drow[v] = 0.0f;
  }
}

void CpuKernels::softcap_forward(float* x, Index n, float cap) const {
#pragma omp simd
  for (Index i = 0; i < n; ++i) x[i] = cpu::softcap(x[i], cap);
}

}  // namespace spin::kernels
