#include "model/stage.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace spin::model {

std::vector<std::int64_t> split_layers(std::int64_t num_layers, int pp, const std::vector<std::int64_t>& requested,
                                       const std::string& option) {
  require(pp >= 1, "pipeline-parallel size must be at least 1, got ", pp);
  require(pp <= num_layers, "pipeline-parallel size ", pp, " exceeds the model's ", num_layers,
          " layers: every stage needs at least one layer");
  if (requested.empty()) {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(pp), num_layers / pp);
    for (std::int64_t s = 0; s < num_layers % pp; ++s) ++counts[static_cast<std::size_t>(s)];
    return counts;
  }
  require(static_cast<int>(requested.size()) == pp, option, " lists ", requested.size(),
          " stages but the pipeline-parallel size is ", pp);
  for (std::int64_t c : requested) {
    require(c >= 1, option, ": every stage needs at least one layer, got ", c);
  }
  const std::int64_t total = std::accumulate(requested.begin(), requested.end(), std::int64_t{0});
  require(total == num_layers, option, " sums to ", total, " layers but the model has ", num_layers);
  return requested;
}

std::vector<std::int64_t> balanced_split(std::span<const double> layer_costs, double head_cost, int stages) {
  const auto layers = static_cast<int>(layer_costs.size());
  require(stages >= 1, "pipeline-parallel size must be at least 1, got ", stages);
  require(stages <= layers, "pipeline-parallel size ", stages, " exceeds the model's ", layers,
          " layers: every stage needs at least one layer");
  std::vector<double> prefix(static_cast<std::size_t>(layers) + 1, 0.0);
  for (std::size_t l = 0; l < layer_costs.size(); ++l) prefix[l + 1] = prefix[l] + layer_costs[l];
  // Stage s taking layers [i, j): its cost, the head on the last.
  const auto cost = [&](int s, int i, int j) {
    return prefix[static_cast<std::size_t>(j)] - prefix[static_cast<std::size_t>(i)] +
           (s == stages - 1 ? head_cost : 0.0);
  };
  const auto at = [&](int s, int j) {
    return static_cast<std::size_t>(s) * static_cast<std::size_t>(layers + 1) + static_cast<std::size_t>(j);
  };
  constexpr double kNone = std::numeric_limits<double>::infinity();
  // best[s, j]: the stages 0..s over layers [0, j) -- first the least largest cost, then (with every
  // stage within the pace) the least sum of squares. from[s, j]: where stage s begins.
  std::vector<double> best(static_cast<std::size_t>(stages) * static_cast<std::size_t>(layers + 1), kNone);
  std::vector<int> from(best.size(), 0);
  const auto solve = [&](auto&& score, double pace) {
    std::fill(best.begin(), best.end(), kNone);
    for (int j = 1; j <= layers; ++j) {
      if (cost(0, 0, j) <= pace) best[at(0, j)] = score(0.0, cost(0, 0, j));
    }
    for (int s = 1; s < stages; ++s) {
      for (int j = s + 1; j <= layers; ++j) {
        // The latest begin first: among equal scores the earlier stages keep the more layers.
        for (int i = j - 1; i >= s; --i) {
          if (best[at(s - 1, i)] == kNone || cost(s, i, j) > pace) continue;
          const double v = score(best[at(s - 1, i)], cost(s, i, j));
          double& b = best[at(s, j)];
          if (b == kNone || v < b * (1 - 1e-12)) b = v, from[at(s, j)] = i;
        }
      }
    }
    return best[at(stages - 1, layers)];
  };
  const double pace = solve([](double before, double c) { return std::max(before, c); }, kNone);
  solve([](double before, double c) { return before + c * c; }, pace * (1 + 1e-12));
  std::vector<std::int64_t> counts(static_cast<std::size_t>(stages));
  for (int s = stages - 1, j = layers; s >= 0; --s) {
    const int i = s == 0 ? 0 : from[at(s, j)];
    counts[static_cast<std::size_t>(s)] = j - i;
    j = i;
  }
  return counts;
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
