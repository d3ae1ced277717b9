#include "train/spin_loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace spin::train {

double neg_log_sigmoid(double x) {
  // log(1 + exp(-x)), split so that neither branch overflows; exactly log 2 at x = 0.
  return x >= 0.0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
}

double SpinObjective::value(double z, double lambda) const {
  switch (type) {
    case Type::Sigmoid:
      return label_smoothing == 0.0 ? neg_log_sigmoid(z)
                                    : (1.0 - label_smoothing) * neg_log_sigmoid(z) + label_smoothing * neg_log_sigmoid(-z);
    case Type::Hinge: return std::max(0.0, 1.0 - z);
    case Type::Ipo: return (z - 0.5) * (z - 0.5) / (lambda * lambda);
  }
  return 0.0;
}

double SpinObjective::derivative(double z, double lambda) const {
  switch (type) {
    case Type::Sigmoid: {
      // d/dz -log sigmoid(z) = -sigmoid(-z); d/dz -log sigmoid(-z) = sigmoid(z).
      const double down = -1.0 / (1.0 + std::exp(z));
      return label_smoothing == 0.0 ? down : (1.0 - label_smoothing) * down + label_smoothing / (1.0 + std::exp(-z));
    }
    case Type::Hinge: return z < 1.0 ? -1.0 : 0.0;
    case Type::Ipo: return 2.0 * (z - 0.5) / (lambda * lambda);
  }
  return 0.0;
}

void SpinObjective::validate() const {
  require(label_smoothing >= 0.0 && label_smoothing < 0.5, "spin.label_smoothing must be in [0, 0.5), got ",
          label_smoothing);
  require(type == Type::Sigmoid || label_smoothing == 0.0, "spin.label_smoothing applies to the sigmoid loss only, not ",
          name(type));
  require(std::isfinite(sft_loss_weight) && sft_loss_weight >= 0.0, "spin.sft_loss_weight must be >= 0, got ",
          sft_loss_weight);
}

SpinObjective::Type SpinObjective::parse(const std::string& name) {
  if (name == "sigmoid") return Type::Sigmoid;
  if (name == "hinge") return Type::Hinge;
  if (name == "ipo") return Type::Ipo;
  fail("spin.loss \"", name, "\" is not sigmoid, hinge or ipo");
}

const char* SpinObjective::name(Type type) {
  switch (type) {
    case Type::Sigmoid: return "sigmoid";
    case Type::Hinge: return "hinge";
    case Type::Ipo: return "ipo";
  }
  return "?";
}

SpinLoss::SpinLoss(const SpinObjective& objective, double lambda, std::int64_t global_pairs,
                   std::vector<std::vector<float>> reference, std::vector<std::vector<std::int64_t>> response_tokens)
    : objective_(objective), lambda_(lambda), inverse_pairs_(1.0 / static_cast<double>(global_pairs)),
      reference_(std::move(reference)), response_tokens_(std::move(response_tokens)) {
  require(global_pairs >= 1, "SPIN loss over ", global_pairs, " pairs");
  objective_.validate();
  require(!objective_.average_log_probs || response_tokens_.size() == reference_.size(),
          "SPIN loss with average_log_probs: response token counts for ", response_tokens_.size(), " of ",
          reference_.size(), " micro-batches");
}

double SpinLoss::micro_batch_loss(int mb, std::span<const float> policy,
                                  std::span<float> dsums) {
  const std::vector<float>& ref = reference_.at(static_cast<std::size_t>(mb));
  require(ref.size() == policy.size() && policy.size() % 2 == 0, "SPIN micro-batch ", mb, ": ",
          policy.size(), " policy sums and ", ref.size(), " reference sums; expected pairs");
  // f's weight on a sequence's sum: 1, or one over its response tokens.
  std::vector<double> per_sum(policy.size(), 1.0);
  if (objective_.average_log_probs) {
    const std::vector<std::int64_t>& n = response_tokens_.at(static_cast<std::size_t>(mb));
    require(n.size() == policy.size(), "SPIN micro-batch ", mb, ": ", n.size(), " response lengths for ",
            policy.size(), " sequences");
    for (std::size_t s = 0; s < n.size(); ++s) {
      require(n[s] >= 1, "SPIN micro-batch ", mb, ": sequence ", s, " has no response token to average over");
      per_sum[s] = 1.0 / static_cast<double>(n[s]);
    }
  }
  double loss = 0.0;
  for (std::size_t i = 0; i + 1 < policy.size(); i += 2) {
    const double f_real = (static_cast<double>(policy[i]) - static_cast<double>(ref[i])) * per_sum[i];
    const double f_gen = (static_cast<double>(policy[i + 1]) - static_cast<double>(ref[i + 1])) * per_sum[i + 1];
    const double z = lambda_ * (f_real - f_gen);
    // The SFT term: alpha (-log pi_theta(y_real | x)), whose derivative by the real sum is -alpha.
    const double pair_loss = objective_.value(z, lambda_) - objective_.sft_loss_weight * static_cast<double>(policy[i]);
    // z rises with the real sum and falls with the generated one.
    const double g = lambda_ * objective_.derivative(z, lambda_) * inverse_pairs_;
    dsums[i] = static_cast<float>(g * per_sum[i] - objective_.sft_loss_weight * inverse_pairs_);
    dsums[i + 1] = static_cast<float>(-g * per_sum[i + 1]);
    loss += pair_loss * inverse_pairs_;
    totals_.loss += pair_loss;
    totals_.rewards_actual += lambda_ * f_real;
    totals_.rewards_generated += lambda_ * f_gen;
    totals_.correct += f_real > f_gen ? 1.0 : 0.0;
    totals_.pairs += 1.0;
    totals_.logps_actual += static_cast<double>(policy[i]);
    totals_.logps_generated += static_cast<double>(policy[i + 1]);
  }
  return loss;
}

}  // namespace spin::train
