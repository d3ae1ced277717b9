// Learning-rate schedules. `step` is the number of optimizer steps already taken, so the first
// step uses at(0).
//   constant     linear warm-up over warmup_steps, then max_lr
//   linear       warm-up, then linear decay from max_lr to min_lr until decay_steps, then min_lr
//   cosine       warm-up, then half-cosine decay to min_lr until decay_steps (Megatron-LM's)
//     warm-up for these three: max_lr * (step + 1) / warmup_steps for step < warmup_steps
//   nemo-cosine  NeMo's CosineAnnealing exactly (warmup_steps, constant_steps, max_steps, min_lr)
#pragma once

#include <cstdint>
#include <string>

namespace spin::train {

enum class LrDecay { Constant, Linear, Cosine, NemoCosine };

LrDecay parse_lr_decay(const std::string& name);  // throws naming the accepted values

struct LrSchedule {
  LrDecay decay = LrDecay::Constant;
  double max_lr = 1e-5;
  double min_lr = 0.0;
  std::int64_t warmup_steps = 0;
  std::int64_t decay_steps = 0;     // linear / cosine: the step at which min_lr is reached
  std::int64_t constant_steps = 0;  // nemo-cosine: steps held at min_lr at the end
  std::int64_t max_steps = 0;       // nemo-cosine: the run's length

  double at(std::int64_t step) const;
  void validate() const;  // throws for min_lr > max_lr, negative or inconsistent step counts
};

}  // namespace spin::train
