// The per-token loop of Gumbel-max sampling (generate/sampling.h): noise for every eligible
// token of the shard, and the best (score, id).
#include <cmath>
#include <limits>

#include "core/philox_rounds.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

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

}  // namespace spin::kernels
