// The SPIN objective (Chen et al. 2024, eq. 4.7 with the logistic loss): for each pair of the
// ground-truth ("real") and the reference model's generated response to one prompt,
//   f(x, y) = sum over response tokens of (log pi_theta - log pi_ref),
//   loss    = -log sigmoid(lambda (f(x, y_real) - f(x, y_gen))),  averaged over the global batch.
// Micro-batches hold the pairs as consecutive sequences [real_0, gen_0, real_1, gen_1, ...];
// the policy's sums come from the pipeline, the reference's are given. Rewards are lambda f.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "train/sequence_loss.h"

namespace spin::train {

// Sums over this rank's pairs (reduce over data-parallel ranks for the batch).
struct SpinTotals {
  double loss = 0.0;               // sum of per-pair losses (not yet averaged)
  double rewards_actual = 0.0;     // sum of lambda f(x, y_real)
  double rewards_generated = 0.0;  // sum of lambda f(x, y_gen)
  double correct = 0.0;            // pairs with f(x, y_real) > f(x, y_gen)
  double pairs = 0.0;
};

// -log sigmoid(x), computed without overflow.
double neg_log_sigmoid(double x);

class SpinLoss final : public SequenceLoss {
 public:
  // reference[mb][s]: the reference model's sum for sequence s of micro-batch mb.
  SpinLoss(double lambda, std::int64_t global_pairs, std::vector<std::vector<float>> reference);

  double micro_batch_loss(int micro_batch, std::span<const float> policy_sums,
                          std::span<float> dloss_dsums) override;
  const SpinTotals& totals() const { return totals_; }

 private:
  double lambda_;
  double inverse_pairs_;
  std::vector<std::vector<float>> reference_;
  SpinTotals totals_;
};

}  // namespace spin::train
