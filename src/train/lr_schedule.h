// Learning-rate schedules. `step` is the number of optimizer steps already taken, so the first
// step uses at(0).
//   constant     linear warm-up over warmup_steps, then max_lr
//   linear       warm-up, then linear decay from max_lr to min_lr until decay_steps, then min_lr
//   cosine       warm-up, then half-cosine decay to min_lr until decay_steps (Megatron-LM's)
//     warm-up for these four: max_lr * (step + 1) / warmup_steps for step < warmup_steps
//   wsd          warm-up, max_lr held, then over the last wsd_decay_steps before decay_steps an
//                anneal to min_lr (Megatron-LM's WSD, warmup-stable-decay): coefficient 1 - r
//                (linear), (1 + cos(pi r)) / 2 (cosine), 2 x 0.5^r - 1 (exponential) or 1 - sqrt(r)
//                (minus_sqrt) of (max_lr - min_lr) over min_lr, r the share of the anneal done
//   nemo-cosine  NeMo's CosineAnnealing exactly (warmup_steps, constant_steps, max_steps, min_lr)
#pragma once

#include <cstdint>
#include <string>

namespace spin::train {

enum class LrDecay { Constant, Linear, Cosine, Wsd, NemoCosine };
enum class WsdDecay { Linear, Cosine, Exponential, MinusSqrt };

LrDecay parse_lr_decay(const std::string& name);   // throws naming the accepted values
WsdDecay parse_wsd_decay(const std::string& name);  // linear, cosine, exponential, minus_sqrt

struct LrSchedule {
  LrDecay decay = LrDecay::Constant;
  double max_lr = 1e-5;
  double min_lr = 0.0;
  std::int64_t warmup_steps = 0;
  std::int64_t decay_steps = 0;     // linear / cosine: the step at which min_lr is reached
  std::int64_t constant_steps = 0;  // nemo-cosine: steps held at min_lr at the end
  std::int64_t max_steps = 0;       // nemo-cosine: the run's length
  std::int64_t wsd_decay_steps = 0;  // wsd: the anneal's length, ending at decay_steps
  WsdDecay wsd_decay = WsdDecay::Exponential;  // Megatron's default --lr-wsd-decay-style

  double at(std::int64_t step) const;
  void validate() const;  // throws for min_lr > max_lr, negative or inconsistent step counts
};

}  // namespace spin::train
