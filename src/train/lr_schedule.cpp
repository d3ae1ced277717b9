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
  if (name == "wsd") return LrDecay::Wsd;
  if (name == "nemo-cosine") return LrDecay::NemoCosine;
  fail("unknown learning-rate schedule \"", name,
       "\" (constant, linear, cosine, wsd or nemo-cosine)");
}

WsdDecay parse_wsd_decay(const std::string& name) {
  if (name == "linear") return WsdDecay::Linear;
  if (name == "cosine") return WsdDecay::Cosine;
  if (name == "exponential") return WsdDecay::Exponential;
  if (name == "minus_sqrt") return WsdDecay::MinusSqrt;
  fail("unknown WSD decay style \"", name, "\" (linear, cosine, exponential or minus_sqrt)");
}

void LrSchedule::validate() const {
  require(max_lr >= 0 && min_lr >= 0 && min_lr <= max_lr && std::isfinite(max_lr), "learning rates: need 0 <= min_lr (",
          min_lr, ") <= lr (", max_lr, ") < infinity");
  require(warmup_steps >= 0 && decay_steps >= 0 && constant_steps >= 0,
          "schedule step counts must not be negative");
  if (decay == LrDecay::Wsd) {
    require(wsd_decay_steps >= 1 && wsd_decay_steps <= decay_steps - warmup_steps, "wsd: the anneal's ",
            wsd_decay_steps, " steps must be at least 1 and fit between the ", warmup_steps,
            " warm-up steps and the decay's end at step ", decay_steps);
  }
  if (decay == LrDecay::Linear || decay == LrDecay::Cosine || decay == LrDecay::Wsd) {
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
  if (decay == LrDecay::Wsd) {
    const std::int64_t anneal_start = decay_steps - wsd_decay_steps;
    if (step <= anneal_start) return max_lr;
    const double r = std::min(1.0, static_cast<double>(step - anneal_start) / static_cast<double>(wsd_decay_steps));
    const double coeff = wsd_decay == WsdDecay::Linear   ? 1.0 - r
                         : wsd_decay == WsdDecay::Cosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * r))
                         : wsd_decay == WsdDecay::Exponential ? 2.0 * std::pow(0.5, r) - 1.0
                                                              : 1.0 - std::sqrt(r);
    return min_lr + coeff * (max_lr - min_lr);
  }
  const double ratio = std::clamp(static_cast<double>(step - warmup_steps) /
                                      static_cast<double>(decay_steps - warmup_steps),
                                  0.0, 1.0);
  if (decay == LrDecay::Linear) return min_lr + (max_lr - min_lr) * (1.0 - ratio);
  return cosine(max_lr, min_lr, ratio);
}

}  // namespace spin::train
