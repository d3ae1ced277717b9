// Forward-only scoring across the pipeline: per-sequence log-probability sums of micro-batches
// (the reference model's in SPIN, or the policy's for validation), or every token's
// log-probability too (spin score), without keeping activations. The schedule is
// parallel::forward_pipelining, or under interleaving (one Transformer a model chunk of the stage,
// in model order: model::stage_chunks) parallel::forward_pipelining_with_interleaving.
#pragma once

#include <cstdint>
#include <vector>

#include "data/examples.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace spin::train {

// Returns, on the last pipeline stage, each micro-batch's sequence_logprobs (empty vectors on
// the other stages). Collective over the pipeline group. `adapters`: LoRA adapters the model
// runs with (the policy of a LoRA run).
std::vector<std::vector<float>> score_pipelined(const parallel::ProcessGrid& grid,
                                                const model::TransformerChunks& chunks,
                                                const model::ModelWeights& weights,
                                                const std::vector<model::TokenBatch>& micro_batches,
                                                const model::ModelWeights* adapters = nullptr);
inline std::vector<std::vector<float>> score_pipelined(const parallel::ProcessGrid& grid,
                                                       const model::Transformer& transformer,
                                                       const model::ModelWeights& weights,
                                                       const std::vector<model::TokenBatch>& micro_batches,
                                                       const model::ModelWeights* adapters = nullptr) {
  return score_pipelined(grid, model::TransformerChunks{&transformer}, weights, micro_batches, adapters);
}

// The same pass, returning on the last pipeline stage each micro-batch's whole ForwardResult:
// every row's token log-probability beside the sums (default-constructed results on the other
// stages).
std::vector<model::ForwardResult> forward_pipelined(const parallel::ProcessGrid& grid,
                                                    const model::Transformer& transformer,
                                                    const model::ModelWeights& weights,
                                                    const std::vector<model::TokenBatch>& micro_batches);

// The ground truth's negative log-likelihood under a model: summed over the response tokens of
// `examples`, and those tokens' count, over the whole grid -- each data-parallel replica scores every
// dp-th example, in micro-batches of `batch_size` examples (and at most `batch_tokens` tokens, a longer
// example alone; 0: no cap: data::cut_micro_batches) --, the same on every rank. spin eval's NLL and
// spin sft's validation loss (SftLoss's: the mean over response tokens). Collective over the grid.
struct ResponseNll {
  double nll = 0.0;
  double tokens = 0.0;
  double mean() const { return tokens > 0.0 ? nll / tokens : 0.0; }
};
ResponseNll response_nll(const parallel::ProcessGrid& grid, const model::TransformerChunks& chunks,
                         const model::ModelWeights& weights, const std::vector<data::Example>& examples,
                         std::int64_t batch_size, std::int64_t batch_tokens = 0,
                         const model::ModelWeights* adapters = nullptr);
inline ResponseNll response_nll(const parallel::ProcessGrid& grid, const model::Transformer& transformer,
                                const model::ModelWeights& weights, const std::vector<data::Example>& examples,
                                std::int64_t batch_size, std::int64_t batch_tokens = 0,
                                const model::ModelWeights* adapters = nullptr) {
  return response_nll(grid, model::TransformerChunks{&transformer}, weights, examples, batch_size, batch_tokens,
                      adapters);
}

}  // namespace spin::train
