// Pipeline stages: which decoder layers a stage runs (a contiguous range; under interleaving one
// such range a model chunk), and whether it holds the embedding (first stage) and the final norm
// and LM head (last stage).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace spin::model {

struct StageLayers {
  std::int64_t begin = 0;  // global index of the first layer
  std::int64_t end = 0;    // one past the last
  bool first = true;       // holds the embedding
  bool last = true;        // holds the final norm and the LM head
  // Where layer `begin` sits among the rank's layers (ModelWeights::layers): 0, unless the rank
  // holds several chunks (interleaving) and earlier ones come first.
  std::int64_t local = 0;

  std::int64_t count() const { return end - begin; }
  static StageLayers whole(std::int64_t num_layers) { return {0, num_layers, true, true, 0}; }
};

// Layers per stage: `requested` (as given by --pp-layers 3,5) or, when empty, an even split in
// which the first num_layers % pp stages take one layer more. Every stage needs a layer.
// Throws spin::Error saying what does not add up, naming `option` (the command's name for the list).
std::vector<std::int64_t> split_layers(std::int64_t num_layers, int pp, const std::vector<std::int64_t>& requested = {},
                                       const std::string& option = "--pp-layers");

// Layers a stage that even out the stages' work: `layer_costs` each layer's (flops.h:
// layer_flops_per_token), `head_cost` what the last stage computes besides (the LM head and the
// loss), split into `stages` contiguous runs of at least one layer whose largest cost is the least
// possible -- the pipeline's pace -- and, among those, whose costs' squares sum least; equal costs
// go to the earlier stages, so equal layers and no head give split_layers' even split. Megatron's
// --account-for-loss-in-pipeline-split counts the loss as one layer; a head of vocabulary x hidden
// weights does the matrix work of 2.4 of Llama 3 8B's layers and 9 of Qwen2.5-0.5B's, which this
// weighs. Under interleaving the runs are the virtual stages: the schedule exchanges after every
// chunk's forward or forward-backward pair, so a chunk's cost, not its stage's sum, paces each step
// (docs/performance.md measures both).
std::vector<std::int64_t> balanced_split(std::span<const double> layer_costs, double head_cost, int stages);

StageLayers stage_layers(const std::vector<std::int64_t>& counts, int stage);

// Interleaving (virtual pipeline stages, parallel::forward_backward_pipelining_with_interleaving):
// the model chunks stage `stage` of `stages` holds, in model order, when `counts` gives the layers
// of each of the stages x v virtual stages (split_layers over stages x v): chunk c is virtual stage
// c x stages + stage, the first virtual stage's chunk holds the embedding, the last's the head, and
// each chunk's `local` counts the layers of the chunks before it. One chunk: stage_layers'.
std::vector<StageLayers> stage_chunks(const std::vector<std::int64_t>& counts, int stage, int stages);

// Layers of all the chunks.
std::int64_t layer_count(std::span<const StageLayers> chunks);

// f(l, i) for every layer of the chunks in model order: l its global index, i where it sits in the
// rank's ModelWeights::layers.
template <class F>
void for_each_layer(std::span<const StageLayers> chunks, F&& f) {
  for (const StageLayers& c : chunks) {
    for (std::int64_t l = c.begin; l < c.end; ++l) f(l, c.local + l - c.begin);
  }
}

}  // namespace spin::model
