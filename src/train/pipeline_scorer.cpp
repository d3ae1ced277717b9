#include "train/pipeline_scorer.h"

#include <utility>

#include "data/batch_plan.h"
#include "parallel/pipeline_schedule.h"

namespace spin::train {

namespace {
// One Transformer a model chunk of the stage (one without interleaving).
class ScoringStage final : public parallel::PipelineStage {
 public:
  ScoringStage(const model::TransformerChunks& chunks, const model::ModelWeights& w,
               const model::ModelWeights* adapters, const std::vector<model::TokenBatch>& batches)
      : chunks_(chunks), w_(w), adapters_(adapters), batches_(batches), results_(batches.size()) {}

  Device device() const override { return chunks_.front()->device(); }
  int chunks() const override { return static_cast<int>(chunks_.size()); }
  std::size_t boundary_size(int mb) const override {
    const model::Transformer& t = *chunks_.front();
    return static_cast<std::size_t>(t.boundary_rows(batches_[static_cast<std::size_t>(mb)]) * t.dims().hidden);
  }
  std::span<const float> forward(int chunk, int mb, std::span<const float> input) override {
    const model::Transformer& t = *chunks_[static_cast<std::size_t>(chunk)];
    model::ForwardResult r = t.forward(w_, batches_[static_cast<std::size_t>(mb)], acts_, false, input, adapters_);
    if (t.stage().last) {
      results_[static_cast<std::size_t>(mb)] = std::move(r);
      return {};
    }
    return {acts_.stage_output.f32(), boundary_size(mb)};
  }
  std::span<const float> backward(int, int, std::span<const float>) override { return {}; }

  std::vector<model::ForwardResult> take() { return std::move(results_); }

 private:
  const model::TransformerChunks& chunks_;
  const model::ModelWeights& w_;
  const model::ModelWeights* adapters_;
  const std::vector<model::TokenBatch>& batches_;
  model::Activations acts_;  // one set: each micro-batch-chunk is sent on before the next starts
  std::vector<model::ForwardResult> results_;
};

std::vector<model::ForwardResult> run_pipelined(const parallel::ProcessGrid& grid,
                                                const model::TransformerChunks& chunks,
                                                const model::ModelWeights& weights,
                                                const std::vector<model::TokenBatch>& micro_batches,
                                                const model::ModelWeights* adapters) {
  ScoringStage stage(chunks, weights, adapters, micro_batches);
  if (chunks.size() == 1) {
    parallel::forward_pipelining(grid.pp(), static_cast<int>(micro_batches.size()), stage);
  } else {
    parallel::forward_pipelining_with_interleaving(grid.pp(), static_cast<int>(micro_batches.size()), stage);
  }
  return stage.take();
}
}  // namespace

std::vector<std::vector<float>> score_pipelined(const parallel::ProcessGrid& grid,
                                                const model::TransformerChunks& chunks,
                                                const model::ModelWeights& weights,
                                                const std::vector<model::TokenBatch>& micro_batches,
                                                const model::ModelWeights* adapters) {
  std::vector<std::vector<float>> sums;
  for (model::ForwardResult& r : run_pipelined(grid, chunks, weights, micro_batches, adapters)) {
    sums.push_back(std::move(r.sequence_logprobs));
  }
  return sums;
}

std::vector<model::ForwardResult> forward_pipelined(const parallel::ProcessGrid& grid,
                                                    const model::Transformer& transformer,
                                                    const model::ModelWeights& weights,
                                                    const std::vector<model::TokenBatch>& micro_batches) {
  return run_pipelined(grid, {&transformer}, weights, micro_batches, nullptr);
}

ResponseNll response_nll(const parallel::ProcessGrid& grid, const model::TransformerChunks& chunks,
                         const model::ModelWeights& weights, const std::vector<data::Example>& examples,
                         std::int64_t batch_size, std::int64_t batch_tokens, const model::ModelWeights* adapters) {
  const std::vector<std::int64_t> mine =
      data::replica_share(static_cast<std::int64_t>(examples.size()), grid.dp_rank(), grid.dp_size());
  std::vector<std::int64_t> lengths;
  double tokens = 0.0;
  for (std::int64_t i : mine) {
    const data::Example& e = examples[static_cast<std::size_t>(i)];
    lengths.push_back(static_cast<std::int64_t>(e.prompt.size() + e.response.size()));
    tokens += static_cast<double>(e.response.size());
  }
  std::vector<model::TokenBatch> batches;
  for (const auto& group : data::cut_micro_batches(mine, lengths, batch_size, batch_tokens)) {
    std::vector<model::Sequence> seqs;
    for (std::int64_t i : group) {
      const data::Example& e = examples[static_cast<std::size_t>(i)];
      std::vector<std::int32_t> seq = e.prompt;
      seq.insert(seq.end(), e.response.begin(), e.response.end());
      seqs.push_back({std::move(seq), static_cast<std::int64_t>(e.prompt.size())});
    }
    batches.push_back(model::TokenBatch::pack(seqs));
  }
  double nll = 0.0;
  for (const std::vector<float>& sums : score_pipelined(grid, chunks, weights, batches, adapters)) {
    for (float s : sums) nll -= s;  // empty but on the last stage
  }
  // The sums are on each replica's last stage: summed over the pipeline (the other stages give 0)
  // and the replicas.
  const bool last = chunks.back()->stage().last;
  double totals[2] = {last ? nll : 0.0, last ? tokens : 0.0};
  grid.pp().all_reduce(totals, 2);
  grid.dp().all_reduce(totals, 2);
  return {totals[0], totals[1]};
}

}  // namespace spin::train
