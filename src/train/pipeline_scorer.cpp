#include "train/pipeline_scorer.h"

#include "parallel/pipeline_schedule.h"

namespace spin::train {

namespace {
class ScoringStage final : public parallel::PipelineStage {
 public:
  ScoringStage(const model::Transformer& t, const model::ModelWeights& w, const model::ModelWeights* adapters,
               const std::vector<model::TokenBatch>& batches)
      : t_(t), w_(w), adapters_(adapters), batches_(batches), sums_(batches.size()) {}

  Device device() const override { return t_.device(); }
  std::size_t boundary_size(int mb) const override {
    return static_cast<std::size_t>(t_.boundary_rows(batches_[static_cast<std::size_t>(mb)]) * t_.dims().hidden);
  }
  std::span<const float> forward(int mb, std::span<const float> input) override {
    const model::ForwardResult r =
        t_.forward(w_, batches_[static_cast<std::size_t>(mb)], acts_, false, input, adapters_);
    if (t_.stage().last) {
      sums_[static_cast<std::size_t>(mb)] = r.sequence_logprobs;
      return {};
    }
    return {acts_.stage_output.f32(), boundary_size(mb)};
  }
  std::span<const float> backward(int, std::span<const float>) override { return {}; }

  std::vector<std::vector<float>> take() { return std::move(sums_); }

 private:
  const model::Transformer& t_;
  const model::ModelWeights& w_;
  const model::ModelWeights* adapters_;
  const std::vector<model::TokenBatch>& batches_;
  model::Activations acts_;  // one set: each micro-batch is sent on before the next starts
  std::vector<std::vector<float>> sums_;
};
}  // namespace

std::vector<std::vector<float>> score_pipelined(const parallel::ProcessGrid& grid,
                                                const model::Transformer& transformer,
                                                const model::ModelWeights& weights,
                                                const std::vector<model::TokenBatch>& micro_batches,
                                                const model::ModelWeights* adapters) {
  ScoringStage stage(transformer, weights, adapters, micro_batches);
  parallel::forward_pipelining(grid.pp(), static_cast<int>(micro_batches.size()), stage);
  return stage.take();
}

}  // namespace spin::train
