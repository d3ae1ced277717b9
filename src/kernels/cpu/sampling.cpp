// The per-token loops of sampling (generate/sampling.h): row statistics in double, the top-p
// search's mass histograms, the top-k offer, Gumbel-max -- noise for every eligible token of the
// shard, and the best (score, id) -- and the chosen candidates' raw logits.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/mass_histogram.h"
#include "core/philox_rounds.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

void CpuKernels::sampling_logits(float* z, const float* logits, Index n, Index ld, Index valid, Index vocab_start,
                                 const std::int32_t* history, const Index* offsets, float penalty,
                                 const std::uint8_t* ban_eos, const std::int32_t* eos, Index eos_count,
                                 float inv_temperature) const {
  const auto held = [&](Index id) { return id >= vocab_start && id < vocab_start + valid; };
  for (Index r = 0; r < n; ++r) {
    float* zr = z + r * valid;
    const float* lr = logits + r * ld;
    std::copy(lr, lr + valid, zr);
    if (penalty != 1.0f) {
      // Set from the raw logit, not updated in place: a repeated token is penalised once.
      for (Index i = offsets[r]; i < offsets[r + 1]; ++i) {
        const Index t = history[i];
        if (!held(t)) continue;
        const float x = lr[t - vocab_start];
        zr[t - vocab_start] = x > 0.0f ? x / penalty : x * penalty;
      }
    }
    if (ban_eos[r] != 0) {
      for (Index e = 0; e < eos_count; ++e) {
        if (held(eos[e])) zr[eos[e] - vocab_start] = -std::numeric_limits<float>::infinity();
      }
    }
    for (Index v = 0; v < valid; ++v) zr[v] *= inv_temperature;
  }
}

void CpuKernels::row_max_f64(double* out, const float* x, Index n, Index ld, Index valid, bool finite_only) const {
  for (Index r = 0; r < n; ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (Index v = 0; v < valid; ++v) {
      const float e = x[r * ld + v];
      if (!finite_only || !std::isinf(e)) m = std::max(m, double(e));
    }
    out[r] = m;
  }
}

void CpuKernels::row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                                bool finite_only) const {
  for (Index r = 0; r < n; ++r) {
    double sum = 0.0;
    for (Index v = 0; v < valid; ++v) {
      const float e = x[r * ld + v];
      if (finite_only && std::isinf(e)) continue;
      sum += std::exp(double(e) - shift[r]);
    }
    out[r] = sum;
  }
}

void CpuKernels::row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid,
                                    const double* shift, const std::uint64_t* prefix, int bits) const {
  for (Index r = 0; r < n; ++r) {
    std::uint64_t* bucket = out + r * kMassBuckets;
    std::fill(bucket, bucket + kMassBuckets, std::uint64_t{0});
    for (Index v = 0; v < valid; ++v) {
      const float e = x[r * ld + v];
      if (std::isinf(e)) continue;
      const std::uint32_t key = float_order_key(e);
      if (bits > 0 && key >> (32 - bits) != prefix[r]) continue;
      bucket[(key >> (32 - kMassBucketBits - bits)) & (kMassBuckets - 1)] +=
          mass_weight(std::exp(double(e) - shift[r]));
    }
  }
}

void CpuKernels::row_top_k(double* out, const float* z, Index n, Index valid, Index k,
                           Index vocab_start) const {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  std::vector<Index> order;
  for (Index r = 0; r < n; ++r) {
    const float* zr = z + r * valid;
    double* o = out + r * 2 * k;
    std::fill(o, o + 2 * k, kNegInf);
    order.clear();  // the finite entries only: banned tokens (-inf) and a diverged row's NaN never rank
    for (Index v = 0; v < valid; ++v) {
      if (std::isfinite(zr[v])) order.push_back(v);
    }
    const auto take = std::min(static_cast<std::size_t>(k), order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(take), order.end(),
                      [&](Index a, Index b) { return zr[a] > zr[b] || (zr[a] == zr[b] && a < b); });
    for (std::size_t i = 0; i < take; ++i) {
      o[2 * i] = zr[order[i]];
      o[2 * i + 1] = static_cast<double>(vocab_start + order[i]);
    }
  }
}

void CpuKernels::gumbel_argmax(double* best_score, double* best_id, const float* z, Index n, Index valid,
                               const double* threshold, bool noisy, std::uint64_t seed,
                               const std::uint64_t* sample_ids, const std::int64_t* positions,
                               Index vocab_start) const {
  const auto log = [](double x) { return std::log(x); };
  for (Index r = 0; r < n; ++r) {
    double score = -std::numeric_limits<double>::infinity(), id = -1.0;
    const float* zr = z + r * valid;
    for (Index v = 0; v < valid; ++v) {
      if (!(zr[v] >= threshold[r]) || std::isinf(zr[v])) continue;
      const Index token = vocab_start + v;
      const double s = zr[v] + (noisy ? gumbel_noise(seed, sample_ids[r], positions[r], token, log) : 0.0);
      if (s > score || (s == score && static_cast<double>(token) < id)) {
        score = s;
        id = static_cast<double>(token);
      }
    }
    best_score[r] = score;
    best_id[r] = id;
  }
}

void CpuKernels::logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids,
                               Index count, Index stride, Index vocab_start) const {
  for (Index r = 0; r < n; ++r) {
    for (Index i = 0; i < count; ++i) {
      const double id = ids[(r * count + i) * stride];
      const bool held = id >= static_cast<double>(vocab_start) && id < static_cast<double>(vocab_start + valid);
      out[r * count + i] =
          held ? x[r * ld + static_cast<Index>(id) - vocab_start] : -std::numeric_limits<double>::infinity();
    }
  }
}

}  // namespace spin::kernels
