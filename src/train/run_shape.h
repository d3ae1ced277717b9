// RunShape: how a SPIN run's steps fall into iterations, epochs and steps of an epoch. Every
// epoch of an iteration has the same steps, but iterations need not: with
// spin.mix_previous_iteration the iterations after the first visit twice the samples.
#pragma once

#include <cstdint>
#include <vector>

namespace spin::train {

// Where a run stands: `step` steps done; the next step is step `index` of epoch `epoch` of
// `iteration` (all from 0). After the last step, iteration is the number of iterations.
struct RunPosition {
  std::int64_t step = 0;
  std::int64_t iteration = 0, epoch = 0, index = 0;
};

class RunShape {
 public:
  RunShape() = default;
  // steps_per_epoch: one value per iteration. Throws spin::Error for an iteration without steps.
  RunShape(std::int64_t epochs, std::vector<std::int64_t> steps_per_epoch);

  std::int64_t iterations() const { return static_cast<std::int64_t>(steps_per_epoch_.size()); }
  std::int64_t epochs() const { return epochs_; }
  std::int64_t steps_per_epoch(std::int64_t iteration) const;
  std::int64_t steps_in_iteration(std::int64_t iteration) const { return epochs_ * steps_per_epoch(iteration); }
  // The steps before `iteration` (0 <= iteration <= iterations()).
  std::int64_t first_step(std::int64_t iteration) const;
  std::int64_t total() const { return first_step(iterations()); }
  // The position after `step` steps (0 <= step <= total()).
  RunPosition at(std::int64_t step) const;

 private:
  std::int64_t epochs_ = 1;
  std::vector<std::int64_t> steps_per_epoch_;
};

}  // namespace spin::train
