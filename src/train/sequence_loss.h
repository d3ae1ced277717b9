// SequenceLoss: a training objective over per-sequence log-probability sums, the one thing the
// pipeline schedule asks of it. On the last pipeline stage, for each micro-batch, it returns
// the micro-batch's contribution to the loss (a mean over the *global* batch, so that
// contributions add up over micro-batches and data-parallel ranks) and d loss / d sums.
#pragma once

#include <cstdint>
#include <span>

namespace spin::train {

class SequenceLoss {
 public:
  virtual ~SequenceLoss() = default;
  virtual double micro_batch_loss(int micro_batch, std::span<const float> sequence_logprobs,
                                  std::span<float> dloss_dsums) = 0;
};

// Supervised fine-tuning: the mean negative log-likelihood per response token over the global
// batch, -sum(all response logprobs) / response_tokens.
class SftLoss final : public SequenceLoss {
 public:
  explicit SftLoss(std::int64_t global_response_tokens)
      : inverse_tokens_(1.0 / static_cast<double>(global_response_tokens)) {}

  double micro_batch_loss(int, std::span<const float> sums, std::span<float> dsums) override {
    double loss = 0.0;
    for (std::size_t s = 0; s < sums.size(); ++s) {
      loss -= static_cast<double>(sums[s]) * inverse_tokens_;
      dsums[s] = static_cast<float>(-inverse_tokens_);
    }
    return loss;
  }

 private:
  double inverse_tokens_;
};

}  // namespace spin::train
