#include "data/batch_plan.h"

#include <cstdlib>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/philox.h"

namespace spin::data {

BatchPlan::BatchPlan(std::int64_t num_samples, std::int64_t global_batch,
                     std::int64_t micro_batch, int dp, std::uint64_t seed, bool shuffle)
    : num_samples_(num_samples), global_batch_(global_batch), micro_batch_(micro_batch), dp_(dp),
      seed_(seed), shuffle_(shuffle) {
  require(global_batch >= 1 && micro_batch >= 1, "batch sizes must be at least 1 (global ",
          global_batch, ", micro ", micro_batch, ")");
  require(global_batch % (micro_batch * dp) == 0, "global batch size ", global_batch,
          " is not divisible by micro-batch size ", micro_batch, " x data-parallel size ", dp,
          " = ", micro_batch * dp);
  require(global_batch <= num_samples, "global batch size ", global_batch, " exceeds the ",
          num_samples, " samples of the data set");
}

std::vector<std::int64_t> BatchPlan::epoch_order(std::int64_t epoch) const {
  if (epoch == cached_epoch_) return cached_order_;
  std::vector<std::int64_t> order(static_cast<std::size_t>(num_samples_));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (shuffle_) {
    // Fisher-Yates; the swap partner of position i is keyed by (seed, epoch, i).
    for (std::int64_t i = num_samples_ - 1; i > 0; --i) {
      const PhiloxCounter r = philox_bits(seed_, static_cast<std::uint64_t>(epoch),
                                          static_cast<std::uint64_t>(i));
      const std::uint64_t bits = (static_cast<std::uint64_t>(r[0]) << 32) | r[1];
      const auto j = static_cast<std::int64_t>(bits % static_cast<std::uint64_t>(i + 1));
      std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
  }
  cached_epoch_ = epoch;
  cached_order_ = order;
  return order;
}

std::vector<std::int64_t> BatchPlan::global_batch(std::int64_t epoch, std::int64_t index) const {
  require(index >= 0 && index < batches_per_epoch(), "global batch ", index, " of an epoch of ",
          batches_per_epoch());
  const std::vector<std::int64_t> order = epoch_order(epoch);
  const auto begin = order.begin() + static_cast<std::ptrdiff_t>(index * global_batch_);
  return {begin, begin + static_cast<std::ptrdiff_t>(global_batch_)};
}

std::vector<std::vector<std::int64_t>> BatchPlan::micro_batches(std::int64_t epoch,
                                                                std::int64_t index,
                                                                int dp_rank) const {
  const std::vector<std::int64_t> batch = global_batch(epoch, index);
  const std::int64_t share = global_batch_ / dp_;  // this replica's: the dp_rank-th contiguous share
  return cut_micro_batches(
      std::span(batch).subspan(static_cast<std::size_t>(dp_rank * share), static_cast<std::size_t>(share)), {},
      micro_batch_);
}

namespace {
// Micro-batches `cut` (of consecutive samples, their weights `weight`) split until they are `count`:
// the fullest of two samples or more where its halves weigh closest. With count at most the samples
// there is always one to split (cut_micro_batches).
void split_to(std::vector<std::vector<std::int64_t>>& cut, std::span<const std::int64_t> weight, std::size_t count) {
  std::vector<std::vector<std::int64_t>> w;  // each micro-batch's weights
  std::size_t at = 0;
  for (const auto& mb : cut) {
    w.emplace_back(weight.begin() + static_cast<std::ptrdiff_t>(at),
                   weight.begin() + static_cast<std::ptrdiff_t>(at + mb.size()));
    at += mb.size();
  }
  const auto sum = [](const std::vector<std::int64_t>& v) {
    return std::accumulate(v.begin(), v.end(), std::int64_t{0});
  };
  while (cut.size() < count) {
    std::size_t best = cut.size();
    for (std::size_t i = 0; i < cut.size(); ++i) {
      if (cut[i].size() >= 2 && (best == cut.size() || sum(w[i]) > sum(w[best]))) best = i;
    }
    const std::int64_t total = sum(w[best]);
    std::size_t k = 1;  // the first sample of the second half
    std::int64_t prefix = 0, gap = -1;
    for (std::size_t j = 1; j < w[best].size(); ++j) {
      prefix += w[best][j - 1];
      const std::int64_t g = std::abs(2 * prefix - total);
      if (gap < 0 || g < gap) gap = g, k = j;
    }
    const auto split = static_cast<std::ptrdiff_t>(k);
    const auto after = static_cast<std::ptrdiff_t>(best) + 1;
    cut.insert(cut.begin() + after, std::vector<std::int64_t>(cut[best].begin() + split, cut[best].end()));
    w.insert(w.begin() + after, std::vector<std::int64_t>(w[best].begin() + split, w[best].end()));
    cut[best].resize(k);
    w[best].resize(k);
  }
}
}  // namespace

std::vector<std::vector<std::int64_t>> cut_micro_batches(std::span<const std::int64_t> samples,
                                                         std::span<const std::int64_t> tokens, std::int64_t max_items,
                                                         std::int64_t max_tokens, std::int64_t groups_of) {
  require(max_items >= 1 && max_tokens >= 0, "micro-batches need at least one sample (", max_items,
          ") and a token limit >= 0 (", max_tokens, ")");
  require(max_tokens == 0 || tokens.size() == samples.size(), "micro-batches by tokens: ", tokens.size(),
          " token counts for ", samples.size(), " samples");
  const auto n_samples = static_cast<std::int64_t>(samples.size());
  require(groups_of >= 1 && (groups_of == 1 || n_samples >= groups_of), "at least ", groups_of,
          " micro-batches (interleaved pipeline stages) from ", samples.size(), " samples");
  std::vector<std::vector<std::int64_t>> out;
  std::int64_t held = 0;  // tokens in out.back()
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const std::int64_t n = max_tokens > 0 ? tokens[i] : 0;
    if (out.empty() || static_cast<std::int64_t>(out.back().size()) == max_items ||
        (max_tokens > 0 && held + n > max_tokens)) {
      out.emplace_back();
      held = 0;
    }
    out.back().push_back(samples[i]);
    held += n;
  }
  if (groups_of > 1) {
    const auto have = static_cast<std::int64_t>(out.size());
    const std::int64_t want =
        n_samples % groups_of == 0 ? (have + groups_of - 1) / groups_of * groups_of : std::max(have, groups_of);
    const std::vector<std::int64_t> ones(samples.size(), 1);  // without tokens: samples weigh alike
    split_to(out, max_tokens > 0 ? tokens : std::span<const std::int64_t>(ones), static_cast<std::size_t>(want));
  }
  return out;
}

std::vector<std::int64_t> replica_share(std::int64_t count, int dp_rank, int dp) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = dp_rank; i < count; i += dp) out.push_back(i);
  return out;
}

}  // namespace spin::data
