// Pipeline stages: which decoder layers a stage runs (a contiguous range; under interleaving one
// such range a model chunk), and whether it holds the embedding (first stage) and the final norm
// and LM head (last stage).
#pragma once

#include <cstdint>
#include <span>
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
// Throws spin::Error saying what does not add up.
std::vector<std::int64_t> split_layers(std::int64_t num_layers, int pp,
                                       const std::vector<std::int64_t>& requested = {});

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
