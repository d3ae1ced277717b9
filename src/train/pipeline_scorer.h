// Forward-only scoring across the pipeline: per-sequence log-probability sums of micro-batches
// (the reference model's in SPIN, or the policy's for validation), or every token's
// log-probability too (spin score), without keeping activations. The schedule is
// parallel::forward_pipelining.
#pragma once

#include <vector>

#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace spin::train {

// Returns, on the last pipeline stage, each micro-batch's sequence_logprobs (empty vectors on
// the other stages). Collective over the pipeline group. `adapters`: LoRA adapters the model
// runs with (the policy of a LoRA run).
std::vector<std::vector<float>> score_pipelined(const parallel::ProcessGrid& grid,
                                                const model::Transformer& transformer,
                                                const model::ModelWeights& weights,
                                                const std::vector<model::TokenBatch>& micro_batches,
                                                const model::ModelWeights* adapters = nullptr);

// The same pass, returning on the last pipeline stage each micro-batch's whole ForwardResult:
// every row's token log-probability beside the sums (default-constructed results on the other
// stages).
std::vector<model::ForwardResult> forward_pipelined(const parallel::ProcessGrid& grid,
                                                    const model::Transformer& transformer,
                                                    const model::ModelWeights& weights,
                                                    const std::vector<model::TokenBatch>& micro_batches);

}  // namespace spin::train
