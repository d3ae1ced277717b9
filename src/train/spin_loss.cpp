#include "train/spin_loss.h"

#include <cmath>

#include "core/error.h"

namespace spin::train {

double neg_log_sigmoid(double x) {
  // log(1 + exp(-x)), split so that neither branch overflows; exactly log 2 at x = 0.
  return x >= 0.0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
}

SpinLoss::SpinLoss(double lambda, std::int64_t global_pairs,
                   std::vector<std::vector<float>> reference)
    : lambda_(lambda), inverse_pairs_(1.0 / static_cast<double>(global_pairs)),
      reference_(std::move(reference)) {
  require(global_pairs >= 1, "SPIN loss over ", global_pairs, " pairs");
}

double SpinLoss::micro_batch_loss(int mb, std::span<const float> policy,
                                  std::span<float> dsums) {
  const std::vector<float>& ref = reference_.at(static_cast<std::size_t>(mb));
  require(ref.size() == policy.size() && policy.size() % 2 == 0, "SPIN micro-batch ", mb, ": ",
          policy.size(), " policy sums and ", ref.size(), " reference sums; expected pairs");
  double loss = 0.0;
  for (std::size_t i = 0; i + 1 < policy.size(); i += 2) {
    const double f_real = static_cast<double>(policy[i]) - static_cast<double>(ref[i]);
    const double f_gen = static_cast<double>(policy[i + 1]) - static_cast<double>(ref[i + 1]);
    const double z = lambda_ * (f_real - f_gen);
    const double pair_loss = neg_log_sigmoid(z);
    // d/dz -log sigmoid(z) = -sigmoid(-z); z rises with the real sum, falls with the generated.
    const double g = -lambda_ / (1.0 + std::exp(z)) * inverse_pairs_;
    dsums[i] = static_cast<float>(g);
    dsums[i + 1] = static_cast<float>(-g);
    loss += pair_loss * inverse_pairs_;
    totals_.loss += pair_loss;
    totals_.rewards_actual += lambda_ * f_real;
    totals_.rewards_generated += lambda_ * f_gen;
    totals_.correct += f_real > f_gen ? 1.0 : 0.0;
    totals_.pairs += 1.0;
  }
  return loss;
}

}  // namespace spin::train
