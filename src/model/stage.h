// Pipeline stages: which decoder layers a stage runs (a contiguous range), and whether it holds
// the embedding (first stage) and the final norm and LM head (last stage).
#pragma once

#include <cstdint>
#include <vector>

namespace spin::model {

struct StageLayers {
  std::int64_t begin = 0;  // global index of the first layer
  std::int64_t end = 0;    // one past the last
  bool first = true;       // holds the embedding
  bool last = true;        // holds the final norm and the LM head

  std::int64_t count() const { return end - begin; }
  static StageLayers whole(std::int64_t num_layers) { return {0, num_layers, true, true}; }
};

// Layers per stage: `requested` (as given by --pp-layers 3,5) or, when empty, an even split in
// which the first num_layers % pp stages take one layer more. Every stage needs a layer.
// Throws spin::Error saying what does not add up.
std::vector<std::int64_t> split_layers(std::int64_t num_layers, int pp,
                                       const std::vector<std::int64_t>& requested = {});

StageLayers stage_layers(const std::vector<std::int64_t>& counts, int stage);

}  // namespace spin::model
