// SpinTrainer's caches of an iteration: the reference's responses, generated into them step by
// step, all at once (spin.pregenerate) or for the samples the first epoch left out; and the caches
// as floats for a checkpoint, and back (spin_trainer.h).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "train/spin_trainer.h"

namespace spin::train {

namespace {

// The responses' layout (reuse_cache(), previous_responses()): a version, then the iteration,
// steps per epoch, number of examples, whether the left-out samples are in, a flag per
// first-epoch step, the number of responses and per response (by index) its index, capped flag,
// log-probability sum, length and tokens.
constexpr float kReuseCacheVersion = 1.0f;
constexpr std::size_t kReuseCacheHeader = 5;
constexpr std::int64_t kExactInFloat = std::int64_t{1} << 24;

// Appends `responses` by index to `out`; false when a value is not exact in a float.
template <typename Response>
bool encode_responses(const std::unordered_map<std::int64_t, Response>& responses, std::vector<float>& out) {
  std::vector<std::int64_t> indices;
  for (const auto& [idx, r] : responses) indices.push_back(idx);
  std::sort(indices.begin(), indices.end());
  out.push_back(static_cast<float>(indices.size()));
  for (std::int64_t idx : indices) {
    const Response& r = responses.at(idx);
    if (static_cast<std::int64_t>(r.tokens.size()) >= kExactInFloat) return false;
    out.insert(out.end(), {static_cast<float>(idx), r.capped ? 1.0f : 0.0f, r.logprob_sum,
                           static_cast<float>(r.tokens.size())});
    for (std::int32_t t : r.tokens) {
      if (t >= kExactInFloat) return false;
      out.push_back(static_cast<float>(t));
    }
  }
  return true;
}

// The responses encode_responses() wrote from saved[at] on, to the end; throws for a malformed list.
template <typename Response>
std::unordered_map<std::int64_t, Response> decode_responses(std::span<const float> saved, std::size_t at,
                                                             std::int64_t examples) {
  const auto value = [&](std::size_t i) { return i < saved.size() ? static_cast<std::int64_t>(saved[i]) : -1; };
  std::unordered_map<std::int64_t, Response> out;
  const std::int64_t count = value(at++);
  for (std::int64_t k = 0; k < count; ++k) {
    const std::int64_t idx = value(at), n = value(at + 3);
    require(idx >= 0 && idx < examples && n >= 0 && at + 4 + static_cast<std::size_t>(n) <= saved.size(),
            "SPIN: a malformed reuse cache (response ", k, " of ", count, ")");
    Response r;
    r.capped = saved[at + 1] != 0.0f;
    r.logprob_sum = saved[at + 2];
    for (std::int64_t t = 0; t < n; ++t) r.tokens.push_back(static_cast<std::int32_t>(saved[at + 4 + static_cast<std::size_t>(t)]));
    out[idx] = std::move(r);
    at += 4 + static_cast<std::size_t>(n);
  }
  require(at == saved.size(), "SPIN: a malformed reuse cache (", saved.size() - std::min(at, saved.size()),
          " values left over)");
  return out;
}

// Whether `saved` is a responses list of `iteration` with `steps` steps per epoch for `examples`.
bool responses_of(std::span<const float> saved, std::int64_t iteration, std::int64_t steps, std::int64_t examples) {
  const auto value = [&](std::size_t i) { return i < saved.size() ? static_cast<std::int64_t>(saved[i]) : -1; };
  return saved.size() >= kReuseCacheHeader + static_cast<std::size_t>(steps) + 1 && saved[0] == kReuseCacheVersion &&
         value(1) == iteration && value(2) == steps && value(3) == examples;
}

}  // namespace

const SpinTrainer::Response& SpinTrainer::cached_response(std::int64_t sample) const {
  const auto n = static_cast<std::int64_t>(examples_.size());
  const Responses& responses = sample < n ? cache_ : previous_;
  const auto found = responses.find(sample % n);
  require(found != responses.end(), "SPIN: no ", sample < n ? "" : "previous iteration's ",
          "response to example ", sample % n, " (an internal error)");
  return found->second;
}

SpinTrainer::Rollout SpinTrainer::cached_pairs(const std::vector<std::vector<std::int64_t>>& groups) const {
  std::vector<const Response*> responses;
  for (const auto& g : groups) {
    for (std::int64_t idx : g) responses.push_back(&cached_response(idx));
  }
  return pairs(groups, examples_, responses, training_groups());
}

void SpinTrainer::generate_into_cache(const std::vector<std::int64_t>& indices, std::uint64_t stream) {
  const std::vector<Response> generated = generate(indices, examples_, stream);
  if (!config_.generations_from_data) responses_generated_ += static_cast<std::int64_t>(generated.size());
  // Shared over DP: per response its index, capped flag, log-probability sum, length and tokens.
  std::vector<double> mine;
  for (std::size_t i = 0; i < generated.size(); ++i) {
    const Response& g = generated[i];
    mine.insert(mine.end(), {static_cast<double>(indices[i]), g.capped ? 1.0 : 0.0, static_cast<double>(g.logprob_sum),
                             static_cast<double>(g.tokens.size())});
    mine.insert(mine.end(), g.tokens.begin(), g.tokens.end());
  }
  for (const std::vector<double>& block : parallel::all_gather_varying(grid_.dp(), std::move(mine))) {
    const double* end = block.data() + block.size();
    for (const double* at = block.data(); at < end;) {
      Response r;
      const auto idx = static_cast<std::int64_t>(at[0]);
      r.capped = at[1] != 0.0;
      r.logprob_sum = static_cast<float>(at[2]);
      const auto n = static_cast<std::size_t>(at[3]);
      r.tokens.assign(at + 4, at + 4 + n);
      at += 4 + n;
      cache_[idx] = std::move(r);
    }
  }
}

void SpinTrainer::fill_cache(std::int64_t iteration, std::int64_t epoch, std::int64_t index) {
  if (cache_iteration_ != iteration) {
    cache_.clear();
    cached_steps_.assign(static_cast<std::size_t>(steps_per_epoch(iteration)), false);
    cached_rest_ = false;
    cache_iteration_ = iteration;
  }
  // The first epoch's steps, each as it ran (its groups, its rollout batches, its noise) -- in
  // a later epoch all of them, for a process that started past them. With pregenerate they
  // ran as one: every step's samples of this replica in one continuous batch.
  const std::int64_t first_epoch = iteration * config_.epochs;
  const auto stream = static_cast<std::uint64_t>(first_epoch);
  const bool all = epoch > 0 || config_.pregenerate;
  const std::int64_t from = all ? 0 : index, to = all ? steps_per_epoch(iteration) : index + 1;
  const auto n = static_cast<std::int64_t>(examples_.size());
  std::vector<std::int64_t> together;
  bool missing = false;  // the same on every rank: all run the same steps
  for (std::int64_t s = from; s < to; ++s) {
    if (cached_steps_[static_cast<std::size_t>(s)]) continue;
    missing = true;
    std::vector<std::int64_t> indices;
    for (const auto& g : plan(iteration).micro_batches(first_epoch, s, grid_.dp_rank())) {
      for (std::int64_t idx : g) {
        if (idx < n) indices.push_back(idx);  // the others have the previous iteration's
      }
    }
    if (config_.pregenerate) {
      together.insert(together.end(), indices.begin(), indices.end());
    } else {
      generate_into_cache(indices, stream);
    }
    cached_steps_[static_cast<std::size_t>(s)] = true;
  }
  if (config_.pregenerate && missing) {
    generate_into_cache(together, stream);
    // And their reference sums, step by step as the steps will pack them (the same values): the
    // reference then works once for the whole first epoch -- under ref_offload, one upload.
    if (keeps_ref_sum(0)) {
      for (std::int64_t s = 0; s < steps_per_epoch(iteration); ++s) {
        reference_sums(cached_pairs(plan(iteration).micro_batches(first_epoch, s, grid_.dp_rank())), iteration);
      }
    }
  }
  if (epoch > 0) generate_left_out(iteration);
}

void SpinTrainer::generate_left_out(std::int64_t iteration) {
  if (cached_rest_) return;
  // The samples the first epoch left out, in index order, each replica a contiguous share.
  const auto stream = static_cast<std::uint64_t>(iteration * config_.epochs);
  std::vector<std::int64_t> rest;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(examples_.size()); ++i) {
    if (!cache_.contains(i)) rest.push_back(i);
  }
  const auto dp = static_cast<std::size_t>(grid_.dp_size());
  const std::size_t share = (rest.size() + dp - 1) / dp;
  const std::size_t begin = std::min(rest.size(), share * static_cast<std::size_t>(grid_.dp_rank()));
  const std::size_t end = std::min(rest.size(), begin + share);
  if (!rest.empty()) {
    const auto at = [&](std::size_t i) { return rest.begin() + static_cast<std::ptrdiff_t>(i); };
    generate_into_cache(std::vector<std::int64_t>(at(begin), at(end)), stream);
  }
  cached_rest_ = true;
}

std::vector<float> SpinTrainer::reuse_cache() const {
  if (cache_iteration_ < 0 || cache_.empty()) return {};
  const auto examples = static_cast<std::int64_t>(examples_.size());
  const std::int64_t steps = steps_per_epoch(cache_iteration_);
  if (examples >= kExactInFloat || cache_iteration_ >= kExactInFloat || steps >= kExactInFloat) return {};
  std::vector<float> out = {kReuseCacheVersion, static_cast<float>(cache_iteration_), static_cast<float>(steps),
                            static_cast<float>(examples), cached_rest_ ? 1.0f : 0.0f};
  for (bool step : cached_steps_) out.push_back(step ? 1.0f : 0.0f);
  if (!encode_responses(cache_, out)) return {};
  return out;
}

bool SpinTrainer::restore_reuse_cache(std::span<const float> saved, std::int64_t iteration) {
  const std::int64_t steps = steps_per_epoch(iteration);
  if (!responses_of(saved, iteration, steps, static_cast<std::int64_t>(examples_.size()))) return false;
  cache_ = decode_responses<Response>(saved, kReuseCacheHeader + static_cast<std::size_t>(steps),
                                      static_cast<std::int64_t>(examples_.size()));
  cache_iteration_ = iteration;
  cached_rest_ = saved[4] != 0.0f;
  cached_steps_.assign(static_cast<std::size_t>(steps), false);
  for (std::size_t s = 0; s < cached_steps_.size(); ++s) cached_steps_[s] = saved[kReuseCacheHeader + s] != 0.0f;
  return true;
}

std::vector<float> SpinTrainer::previous_responses() const {
  const auto examples = static_cast<std::int64_t>(examples_.size());
  if (previous_iteration_ < 0 || examples >= kExactInFloat || previous_iteration_ >= kExactInFloat) return {};
  // All of them, so no step flags (0 steps) and the left-out samples in.
  std::vector<float> out = {kReuseCacheVersion, static_cast<float>(previous_iteration_), 0.0f,
                            static_cast<float>(examples), 1.0f};
  if (!encode_responses(previous_, out)) return {};
  return out;
}

bool SpinTrainer::restore_previous_responses(std::span<const float> saved, std::int64_t iteration) {
  const auto examples = static_cast<std::int64_t>(examples_.size());
  if (!mixes(iteration) || !responses_of(saved, iteration - 1, 0, examples)) return false;
  Responses responses = decode_responses<Response>(saved, kReuseCacheHeader, examples);
  if (static_cast<std::int64_t>(responses.size()) != examples) return false;
  previous_ = std::move(responses);
  previous_iteration_ = iteration - 1;
  return true;
}

namespace {
// ref_logprobs_cache()'s layout: a version, the iteration, the number of samples, then per
// sample its real and generated reference sums (NaN: not known).
constexpr float kRefSumsVersion = 1.0f;
constexpr std::size_t kRefSumsHeader = 3;
}  // namespace

std::vector<float> SpinTrainer::ref_logprobs_cache() const {
  const auto count = static_cast<std::int64_t>(ref_sums_.size() / 2);
  if (ref_sums_iteration_ < 0 || count >= kExactInFloat || ref_sums_iteration_ >= kExactInFloat ||
      std::all_of(ref_sums_.begin(), ref_sums_.end(), [](float v) { return std::isnan(v); })) {
    return {};
  }
  std::vector<float> out = {kRefSumsVersion, static_cast<float>(ref_sums_iteration_), static_cast<float>(count)};
  out.insert(out.end(), ref_sums_.begin(), ref_sums_.end());
  return out;
}

bool SpinTrainer::restore_ref_logprobs_cache(std::span<const float> saved, std::int64_t iteration) {
  const std::int64_t count = samples(iteration);
  if (!keeps_ref_sum(0) || saved.size() < kRefSumsHeader || saved[0] != kRefSumsVersion ||
      static_cast<std::int64_t>(saved[1]) != iteration || static_cast<std::int64_t>(saved[2]) != count) {
    return false;
  }
  require(saved.size() == kRefSumsHeader + 2 * static_cast<std::size_t>(count),
          "SPIN: a malformed reference log-probability cache (", saved.size() - kRefSumsHeader, " sums for ", count,
          " samples)");
  ref_sums_.assign(saved.begin() + kRefSumsHeader, saved.end());
  ref_sums_iteration_ = iteration;
  // Sums of halves this run does not keep (a run saved with fixed responses, resumed without).
  for (std::size_t i = 0; i < ref_sums_.size(); ++i) {
    if (!keeps_ref_sum(static_cast<int>(i % 2))) ref_sums_[i] = std::numeric_limits<float>::quiet_NaN();
  }
  return true;
}

}  // namespace spin::train
