// The SPIN objective (Chen et al. 2024, eq. 4.7): for each pair of the ground-truth ("real") and
// the reference model's generated response to one prompt,
//   f(x, y) = sum over response tokens of (log pi_theta - log pi_ref),
//             (or its mean over the response's tokens, average_log_probs),
//   loss    = l(lambda (f(x, y_real) - f(x, y_gen))) [+ alpha (-log pi_theta(y_real | x))],
//             averaged over the global batch,
// with l the logistic loss -log sigmoid(z) (the paper's choice, the default), as the SPIN code
// also offers, the hinge loss max(0, 1 - z), or IPO's square (Azar et al. 2023, TRL's and
// NeMo-Aligner's "ipo"): (margin - 1 / (2 lambda))^2 = (z - 1/2)^2 / lambda^2.
// Micro-batches hold the pairs as consecutive sequences [real_0, gen_0, real_1, gen_1, ...];
// the policy's sums come from the pipeline, the reference's are given. Rewards are lambda f.
#pragma once

#include <cstdint>
#include <span>
#include <string>
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
  double logps_actual = 0.0;       // sum of log pi_theta(y_real | x) (TRL's logps/chosen)
  double logps_generated = 0.0;    // sum of log pi_theta(y_gen | x) (logps/rejected)
};

// -log sigmoid(x), computed without overflow.
double neg_log_sigmoid(double x);

// l(z) of a pair's scaled margin z (the paper's eq. 4.7 admits any monotonically decreasing
// convex l; IPO's, convex, pulls the margin to 1 / (2 lambda) instead of pushing it on, so it
// needs the iteration's lambda).
struct SpinObjective {
  enum class Type { Sigmoid, Hinge, Ipo };
  Type type = Type::Sigmoid;
  // Sigmoid only: the share epsilon of pairs taken to be mislabelled (conservative DPO, TRL's
  // label_smoothing): l(z) = (1 - eps) (-log sigmoid(z)) + eps (-log sigmoid(-z)).
  double label_smoothing = 0.0;
  // alpha of an SFT term on the ground truth, NeMo-Aligner's dpo_sft_loss_weight (TRL's rpo_alpha
  // with its sum): each pair adds alpha (-log pi_theta(y_real | x)), the response's summed
  // log-probability, so that the policy keeps the real responses likely while it pushes the
  // generated ones down (0: off).
  double sft_loss_weight = 0.0;
  // f as the mean over the response's tokens instead of their sum (NeMo-RL's
  // preference_average_log_probs, SimPO's length normalization): a pair's margin no longer grows
  // with the responses' lengths, which differ between the ground truth and the reference's
  // capped samples. The SFT term stays a sum.
  bool average_log_probs = false;

  double value(double z, double lambda) const;
  double derivative(double z, double lambda) const;  // dl/dz (the hinge's at its kink: 0)
  // Throws naming the setting: label_smoothing outside [0, 0.5), or with a loss but sigmoid; a
  // negative or non-finite sft_loss_weight.
  void validate() const;
  // "sigmoid", "hinge" or "ipo"; parse throws naming the accepted names.
  static Type parse(const std::string& name);
  static const char* name(Type type);
};

class SpinLoss final : public SequenceLoss {
 public:
  // reference[mb][s]: the reference model's sum for sequence s of micro-batch mb;
  // response_tokens[mb][s]: the tokens it sums over (needed with average_log_probs only).
  SpinLoss(const SpinObjective& objective, double lambda, std::int64_t global_pairs,
           std::vector<std::vector<float>> reference, std::vector<std::vector<std::int64_t>> response_tokens = {});

  double micro_batch_loss(int micro_batch, std::span<const float> policy_sums,
                          std::span<float> dloss_dsums) override;
  const SpinTotals& totals() const { return totals_; }

 private:
  SpinObjective objective_;
  double lambda_;
  double inverse_pairs_;
  std::vector<std::vector<float>> reference_;
  std::vector<std::vector<std::int64_t>> response_tokens_;
  SpinTotals totals_;
};

}  // namespace spin::train
