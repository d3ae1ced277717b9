#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace spin::train {

namespace {
double cosine(double max_lr, double min_lr, double ratio) {
  return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
}

// NeMo's CosineAnnealing (nemo/core/optim/lr_scheduler.py), whose step counter is ours.
double nemo_cosine(const LrSchedule& s, std::int64_t step) {
  const double t = static_cast<double>(step);
  if (s.constant_steps == 0) {
    if (s.warmup_steps > 0 && step <= s.warmup_steps) {
      return s.max_lr * (t + 1.0) / static_cast<double>(s.warmup_steps + 1);
    }
    if (step > s.max_steps) return s.min_lr;
    return cosine(s.max_lr, s.min_lr,
                  (t - static_cast<double>(s.warmup_steps)) /
                      static_cast<double>(s.max_steps - s.warmup_steps));
  }
  // With constant_steps: Megatron's warm-up (from 0), cosine over decay steps, then min_lr.
  const std::int64_t decay = s.max_steps - s.constant_steps - s.warmup_steps;
  if (s.warmup_steps > 0 && step <= s.warmup_steps) {
    return s.max_lr * t / static_cast<double>(s.warmup_steps);
  }
  if (step > s.warmup_steps + decay) return s.min_lr;
  return cosine(s.max_lr, s.min_lr,
                (t - static_cast<double>(s.warmup_steps)) / static_cast<double>(decay));
}
}  // namespace

LrDecay parse_lr_decay(const std::string& name) {
  if (name == "constant") return LrDecay::Constant;
  if (name == "linear") return LrDecay::Linear;
  if (name == "cosine") return LrDecay::Cosine;
  if (name == "nemo-cosine") return LrDecay::NemoCosine;
  fail("unknown learning-rate schedule \"", name,
       "\" (constant, linear, cosine or nemo-cosine)");
}

void LrSchedule::validate() const {
  require(max_lr >= 0 && min_lr >= 0 && min_lr <= max_lr, "learning rates: need 0 <= min_lr (",
          min_lr, ") <= lr (", max_lr, ")");
  require(warmup_steps >= 0 && decay_steps >= 0 && constant_steps >= 0,
          "schedule step counts must not be negative");
  if (decay == LrDecay::Linear || decay == LrDecay::Cosine) {
    require(decay_steps > warmup_steps, "the decay ends at step ", decay_steps,
            ", not after the ", warmup_steps, " warm-up steps");
  }
  if (decay == LrDecay::NemoCosine) {
    require(max_steps > warmup_steps + constant_steps, "nemo-cosine: max steps (", max_steps,
            ") must exceed warm-up (", warmup_steps, ") + constant (", constant_steps, ") steps");
  }
}

double LrSchedule::at(std::int64_t step) const {
  if (decay == LrDecay::NemoCosine) return nemo_cosine(*this, step);
  if (step < warmup_steps) {
    return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (decay == LrDecay::Constant) return max_lr;
  const double ratio = std::clamp(static_cast<double>(step - warmup_steps) /
                                      static_cast<double>(decay_steps - warmup_steps),
                                  0.0, 1.0);
  if (decay == LrDecay::Linear) return min_lr + (max_lr - min_lr) * (1.0 - ratio);
  return cosine(max_lr, min_lr, ratio);
}

}  // namespace spin::train
