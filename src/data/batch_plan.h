// BatchPlan: the order in which a run visits its samples, the same on every rank and for every
// parallel layout. Epoch e visits a permutation of [0, n) keyed by (seed, e) through Philox;
// global batch i of an epoch is positions [i G, (i + 1) G) of that permutation (an incomplete
// last batch is dropped, and counted); data-parallel rank r takes the r-th contiguous share of
// each global batch and cuts it into micro-batches. So global batch i holds the same samples
// whatever the DP size, micro-batch size or number of micro-batches.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace spin::data {

class BatchPlan {
 public:
  // Throws spin::Error when the global batch is not a multiple of micro_batch x dp, or larger
  // than the data.
  BatchPlan(std::int64_t num_samples, std::int64_t global_batch, std::int64_t micro_batch,
            int dp, std::uint64_t seed, bool shuffle = true);

  std::int64_t batches_per_epoch() const { return num_samples_ / global_batch_; }
  std::int64_t dropped_per_epoch() const { return num_samples_ % global_batch_; }
  std::int64_t micro_batches_per_step() const { return global_batch_ / (micro_batch_ * dp_); }

  // The samples of global batch `index` of `epoch`, in order.
  std::vector<std::int64_t> global_batch(std::int64_t epoch, std::int64_t index) const;
  // Data-parallel rank `dp_rank`'s micro-batches of that global batch.
  std::vector<std::vector<std::int64_t>> micro_batches(std::int64_t epoch, std::int64_t index,
                                                       int dp_rank) const;

 private:
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const;

  std::int64_t num_samples_, global_batch_, micro_batch_;
  int dp_;
  std::uint64_t seed_;
  bool shuffle_;
  mutable std::int64_t cached_epoch_ = -1;
  mutable std::vector<std::int64_t> cached_order_;
};

// `samples`, in order, cut into micro-batches of consecutive samples: at most `max_items` each and,
// with max_tokens > 0, at most `max_tokens` tokens -- tokens[i] the i-th sample's, needed only then --,
// each closed before the next sample would pass either, a sample longer than max_tokens alone. By tokens
// this is NeMo-RL's dynamic batching (its train_mb_tokens): the step's samples and their order stay the
// plan's, only where micro-batches end moves, so a step's loss and gradients are the same up to the order
// of their float sums, while every micro-batch holds about max_tokens tokens: bounded activations, fewer
// and fuller products. With `groups_of` > 1 (interleaved pipeline stages: at least one micro-batch a
// stage, best in whole groups of the stages -- parallel::interleaved_group) the count is then made at
// least groups_of, and a multiple of it where the samples are, by splitting the fullest micro-batch of
// two samples or more where its halves' tokens (without tokens, samples) are closest, again while
// needed -- the samples, their order and the limits kept. Throws when the samples are fewer than
// groups_of.
std::vector<std::vector<std::int64_t>> cut_micro_batches(std::span<const std::int64_t> samples,
                                                         std::span<const std::int64_t> tokens, std::int64_t max_items,
                                                         std::int64_t max_tokens = 0, std::int64_t groups_of = 1);

// Data-parallel replica `dp_rank`'s share of `count` items dealt round-robin: every dp-th, from
// dp_rank (spin score's records, spin eval's, validation examples).
std::vector<std::int64_t> replica_share(std::int64_t count, int dp_rank, int dp);

}  // namespace spin::data
