#include "train/run_shape.h"

#include "core/error.h"

namespace spin::train {

RunShape::RunShape(std::int64_t epochs, std::vector<std::int64_t> steps_per_epoch)
    : epochs_(epochs), steps_per_epoch_(std::move(steps_per_epoch)) {
  require(epochs_ >= 1, "a run needs at least one epoch an iteration, got ", epochs_);
  for (std::size_t k = 0; k < steps_per_epoch_.size(); ++k) {
    require(steps_per_epoch_[k] >= 1, "iteration ", k + 1, " has no step (", steps_per_epoch_[k], " an epoch)");
  }
}

std::int64_t RunShape::steps_per_epoch(std::int64_t iteration) const {
  require(iteration >= 0 && iteration < iterations(), "iteration ", iteration + 1, " is not one of the run's ",
          iterations());
  return steps_per_epoch_[static_cast<std::size_t>(iteration)];
}

std::int64_t RunShape::first_step(std::int64_t iteration) const {
  require(iteration >= 0 && iteration <= iterations(), "iteration ", iteration + 1, " is not one of the run's ",
          iterations());
  std::int64_t steps = 0;
  for (std::int64_t k = 0; k < iteration; ++k) steps += steps_in_iteration(k);
  return steps;
}

RunPosition RunShape::at(std::int64_t step) const {
  require(step >= 0 && step <= total(), "step ", step, " is not within the run's ", total());
  RunPosition p{step, 0, 0, 0};
  std::int64_t left = step;
  while (p.iteration < iterations() && left >= steps_in_iteration(p.iteration)) {
    left -= steps_in_iteration(p.iteration);
    ++p.iteration;
  }
  if (p.iteration == iterations()) return p;
  const std::int64_t per_epoch = steps_per_epoch(p.iteration);
  p.epoch = left / per_epoch;
  p.index = left % per_epoch;
  return p;
}

}  // namespace spin::train
