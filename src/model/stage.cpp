#include "model/stage.h"

#include <numeric>

#include "core/error.h"

namespace spin::model {

std::vector<std::int64_t> split_layers(std::int64_t num_layers, int pp,
                                       const std::vector<std::int64_t>& requested) {
  require(pp >= 1, "pipeline-parallel size must be at least 1, got ", pp);
  require(pp <= num_layers, "pipeline-parallel size ", pp, " exceeds the model's ", num_layers,
          " layers: every stage needs at least one layer");
  if (requested.empty()) {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(pp), num_layers / pp);
    for (std::int64_t s = 0; s < num_layers % pp; ++s) ++counts[static_cast<std::size_t>(s)];
    return counts;
  }
  require(static_cast<int>(requested.size()) == pp, "--pp-layers lists ", requested.size(),
          " stages but the pipeline-parallel size is ", pp);
  for (std::int64_t c : requested) {
    require(c >= 1, "--pp-layers: every stage needs at least one layer, got ", c);
  }
  const std::int64_t total = std::accumulate(requested.begin(), requested.end(), std::int64_t{0});
  require(total == num_layers, "--pp-layers sums to ", total, " layers but the model has ",
          num_layers);
  return requested;
}

StageLayers stage_layers(const std::vector<std::int64_t>& counts, int stage) {
  require(stage >= 0 && stage < static_cast<int>(counts.size()), "stage ", stage,
          " outside a pipeline of ", counts.size());
  StageLayers s;
  s.begin = std::accumulate(counts.begin(), counts.begin() + stage, std::int64_t{0});
  s.end = s.begin + counts[static_cast<std::size_t>(stage)];
  s.first = stage == 0;
  s.last = stage + 1 == static_cast<int>(counts.size());
  return s;
}

std::vector<StageLayers> stage_chunks(const std::vector<std::int64_t>& counts, int stage, int stages) {
  require(stages >= 1 && !counts.empty() && counts.size() % static_cast<std::size_t>(stages) == 0, "a split into ",
          counts.size(), " virtual stages is not whole chunks of ", stages, " stages");
  std::vector<StageLayers> chunks;
  std::int64_t local = 0;
  for (int v = stage; v < static_cast<int>(counts.size()); v += stages) {
    StageLayers& c = chunks.emplace_back(stage_layers(counts, v));
    c.local = local;
    local += c.count();
  }
  return chunks;
}

std::int64_t layer_count(std::span<const StageLayers> chunks) {
  std::int64_t n = 0;
  for (const StageLayers& c : chunks) n += c.count();
  return n;
}

}  // namespace spin::model
