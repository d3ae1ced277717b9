#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/mass_histogram.h"
#include "core/philox_rounds.h"
#include "core/workspace.h"

namespace spin::generate {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Candidate {
  double score;  // the value ranked (a processed logit, or processed logit + noise)
  double id;     // global token id
};

// The better of two candidates: higher score, then the smaller id (a fixed tie-break).
bool better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// The sampler's per-row arrays on the kernels' device: host vectors go up, kernel outputs are
// allocated there and come back down. Everything lives until the Staging does.
class Staging {
 public:
  explicit Staging(Device device) : device_(device) {}
  template <class T>
  const T* up(std::span<const T> values) {
    UploadBuffer buffer;
    keep_.push_back(buffer.upload(values, device_));
    return keep_.back().template data<T>();
  }
  template <class T>
  const T* up(const std::vector<T>& values) { return up(std::span<const T>(values)); }
  template <class T>
  T* out(std::size_t n) {
    keep_.push_back(Tensor::zeros({static_cast<std::int64_t>(std::max<std::size_t>(n, 1))}, dtype_of<T>(), device_));
    return keep_.back().template data<T>();
  }
  template <class T>
  std::vector<T> down(const T* p, std::size_t n) const {
    std::vector<T> host(n);
    copy_bytes(host.data(), Device::Cpu, p, device_, n * sizeof(T));
    return host;
  }

 private:
  Device device_;
  std::vector<Tensor> keep_;
};

}  // namespace

std::vector<double> top_p_floor(const kernels::Kernels& kernels, parallel::Communicator& tp, const float* z,
                                std::int64_t n, std::int64_t valid, std::span<const double> zmax, float top_p) {
  const auto rows = static_cast<std::size_t>(n);
  require(zmax.size() == rows, "top_p_floor: ", zmax.size(), " row maxima for ", n, " rows");
  Staging dev(kernels.device());
  const double* shift = dev.up(zmax);
  constexpr auto kBuckets = static_cast<std::size_t>(kMassBuckets);
  std::uint64_t* histogram_d = dev.out<std::uint64_t>(rows * kBuckets);
  std::vector<std::uint64_t> prefix(rows, 0);  // the key's bytes fixed so far
  std::vector<std::uint64_t> above(rows, 0);   // the mass of the keys above the prefix's range
  std::vector<double> limit(rows, 0.0);        // top_p of the row's mass
  for (int bits = 0; bits < 32; bits += kMassBucketBits) {
    kernels.row_mass_histogram(histogram_d, z, n, valid, valid, shift, dev.up(prefix), bits);
    std::vector<std::uint64_t> histogram = dev.down(histogram_d, rows * kBuckets);
    tp.all_reduce(histogram.data(), histogram.size());
    for (std::size_t r = 0; r < rows; ++r) {
      const std::uint64_t* bucket = histogram.data() + r * kBuckets;
      if (bits == 0) {
        std::uint64_t total = 0;
        for (std::size_t b = 0; b < kBuckets; ++b) total += bucket[b];
        limit[r] = static_cast<double>(top_p) * static_cast<double>(total);
      }
      // The lowest bucket b whose mass above (the buckets over it, and `above`) is below the
      // limit: the floor's key is in it -- b's highest key passes, the bucket below's fails.
      // above[r] < limit[r] holds from the start (0 < top_p x the row's mass) and stays so.
      std::size_t b = kBuckets - 1;
      while (b > 0 && static_cast<double>(above[r] + bucket[b]) < limit[r]) above[r] += bucket[b--];
      prefix[r] = prefix[r] << kMassBucketBits | b;
    }
  }
  std::vector<double> floor(rows);
  for (std::size_t r = 0; r < rows; ++r) floor[r] = float_from_order_key(static_cast<std::uint32_t>(prefix[r]));
  return floor;
}

void SamplingParams::validate() const {
  require(std::isfinite(temperature) && temperature > 0.0f, "sampling: temperature must be > 0, got ",
          temperature, " (use greedy decoding for a deterministic argmax)");
  require(top_k >= 0, "sampling: top_k must be >= 0 (0 disables it), got ", top_k);
  require(top_p > 0.0f && top_p <= 1.0f, "sampling: top_p must be in (0, 1], got ", top_p);
  require(min_p >= 0.0f && min_p <= 1.0f, "sampling: min_p must be in [0, 1] (0 disables it), got ", min_p);
  require(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f,
          "sampling: repetition_penalty must be > 0 (1 disables it), got ", repetition_penalty);
}

VocabParallelSampler::VocabParallelSampler(const model::TpDims& dims, parallel::Communicator& tp,
                                           const kernels::Kernels& kernels, const SamplingParams& params,
                                           std::uint64_t seed, std::vector<std::int32_t> eos_ids)
    : dims_(dims), tp_(tp), kernels_(kernels), params_(params), seed_(seed), eos_(std::move(eos_ids)) {
  params_.validate();
}

double VocabParallelSampler::gumbel(const SampleRow& row, std::int64_t v) const {
  return gumbel_noise(seed_, row.sample_id, row.position, v, [](double x) { return std::log(x); });
}

std::vector<Sampled> VocabParallelSampler::sample(const float* logits,
                                                  std::span<const SampleRow> rows) const {
  const auto n = static_cast<std::int64_t>(rows.size());
  const std::int64_t ld = dims_.vocab_rows;
  const std::int64_t valid = dims_.vocab_valid;
  const std::int64_t start = dims_.vocab_start;
  const auto rows_sz = static_cast<std::size_t>(n);
  // `logits` and z live on the kernels' device; the per-row statistics travel to the host,
  // where the ranks combine them (a few doubles per row).
  Staging dev(kernels_.device());

  // 1. The raw log-sum-exp of every row, for the reported log-probabilities: each shard's maximum
  //    and its sum of exponentials shifted by it, in one copy back and one all-gather, combined as
  //    sum = sum over ranks of sum_k exp(max_k - max).
  double* shard_d = dev.out<double>(2 * rows_sz);  // the maxima, then the sums
  kernels_.row_max_f64(shard_d, logits, n, ld, valid, false);
  kernels_.row_sumexp_f64(shard_d + rows_sz, logits, n, ld, valid, shard_d, false);
  const std::vector<double> shard = dev.down(shard_d, 2 * rows_sz);
  const auto ranks = static_cast<std::size_t>(tp_.size());
  std::vector<double> shards(2 * rows_sz * ranks);
  tp_.all_gather(shard.data(), shards.data(), shard.size());
  std::vector<double> raw_max(rows_sz, kNegInf), raw_sum(rows_sz, 0.0);
  for (std::size_t k = 0; k < ranks; ++k) {
    for (std::size_t r = 0; r < rows_sz; ++r) raw_max[r] = std::max(raw_max[r], shards[k * 2 * rows_sz + r]);
  }
  for (std::size_t k = 0; k < ranks; ++k) {
    for (std::size_t r = 0; r < rows_sz; ++r) {
      const double m = shards[k * 2 * rows_sz + r], s = shards[k * 2 * rows_sz + rows_sz + r];
      raw_sum[r] += m == kNegInf ? 0.0 : s * std::exp(m - raw_max[r]);  // NaN and +inf carry through
    }
  }
  // A NaN or infinite logit anywhere in a row leaves its sum of exponentials non-finite (the
  // same on every TP rank): a diverged model, stopped here rather than sampled from.
  for (std::size_t r = 0; r < rows_sz; ++r) {
    require(std::isfinite(raw_max[r]) && std::isfinite(raw_sum[r]), "generation: the logits of prompt ",
            rows[r].sample_id, " at position ", rows[r].position,
            " are not finite (NaN or infinity: the model's weights or activations overflowed)");
  }

  // 2. Processed logits z of this shard: penalty, EOS ban, temperature.
  const auto z_size = static_cast<std::size_t>(n * std::max<std::int64_t>(valid, 0));
  float* z = dev.out<float>(z_size);
  {
    std::vector<std::int32_t> history;  // every row's tokens, back to back
    std::vector<std::int64_t> offsets = {0};
    std::vector<std::uint8_t> ban(rows_sz);
    for (std::size_t r = 0; r < rows_sz; ++r) {
      if (params_.repetition_penalty != 1.0f) history.insert(history.end(), rows[r].history.begin(), rows[r].history.end());
      offsets.push_back(static_cast<std::int64_t>(history.size()));
      ban[r] = rows[r].ban_eos ? 1 : 0;
    }
    kernels_.sampling_logits(z, logits, n, ld, valid, start, dev.up(history), dev.up(offsets),
                             params_.repetition_penalty, dev.up(ban), dev.up(eos_),
                             static_cast<std::int64_t>(eos_.size()),
                             params_.greedy ? 1.0f : 1.0f / params_.temperature);
  }

  // 3. Which tokens may be chosen: keep[r](v), and the winner among them.
  std::vector<Candidate> best(rows_sz, Candidate{kNegInf, -1.0});
  // This shard's winner of every row (the per-token loop, on the kernels).
  const auto local_winners = [&](const std::vector<double>& threshold, bool noisy) {
    std::vector<std::uint64_t> ids(rows_sz);
    std::vector<std::int64_t> positions(rows_sz);
    for (std::size_t r = 0; r < rows_sz; ++r) ids[r] = rows[r].sample_id, positions[r] = rows[r].position;
    double* winners_d = dev.out<double>(2 * rows_sz);  // the scores, then the ids: one copy back
    kernels_.gumbel_argmax(winners_d, winners_d + rows_sz, z, n, valid, dev.up(threshold), noisy, seed_, dev.up(ids),
                           dev.up(positions), start);
    const std::vector<double> winners = dev.down(winners_d, 2 * rows_sz);
    for (std::size_t r = 0; r < rows_sz; ++r) best[r] = {winners[r], winners[rows_sz + r]};
  };
  const auto reduce_winners = [&] {
    std::vector<double> mine(2 * rows_sz), all(2 * rows_sz * ranks);
    for (std::size_t r = 0; r < rows_sz; ++r) mine[2 * r] = best[r].score, mine[2 * r + 1] = best[r].id;
    tp_.all_gather(mine.data(), all.data(), mine.size());
    for (std::size_t k = 0; k < ranks; ++k) {
      for (std::size_t r = 0; r < rows_sz; ++r) {
        const Candidate c{all[k * 2 * rows_sz + 2 * r], all[k * 2 * rows_sz + 2 * r + 1]};
        if (c.id >= 0 && better(c, best[r])) best[r] = c;
      }
    }
  };

  if (params_.greedy) {
    local_winners(std::vector<double>(rows_sz, kNegInf), false);
    reduce_winners();
  } else if (params_.top_k > 0) {
    // Each rank offers its k best (on the kernels); every rank then holds the same global
    // candidates.
    const std::int64_t k = params_.top_k;
    const auto offer_size = rows_sz * static_cast<std::size_t>(2 * k);
    double* offer_d = dev.out<double>(offer_size);
    kernels_.row_top_k(offer_d, z, n, valid, k, start);
    const std::vector<double> offer = dev.down(offer_d, offer_size);
    std::vector<double> all(offer.size() * ranks);
    tp_.all_gather(offer.data(), all.data(), offer.size());
    for (std::int64_t r = 0; r < n; ++r) {
      std::vector<Candidate> cands;
      for (std::size_t q = 0; q < ranks; ++q) {
        for (std::int64_t i = 0; i < k; ++i) {
          const std::size_t at = q * offer.size() + static_cast<std::size_t>(r * 2 * k + 2 * i);
          if (all[at] != kNegInf) cands.push_back({all[at], all[at + 1]});
        }
      }
      std::sort(cands.begin(), cands.end(), better);
      // Keep every candidate at least as large as the k-th (ties may keep more, as HF does).
      if (static_cast<std::int64_t>(cands.size()) > k) {
        const double kth = cands[static_cast<std::size_t>(k - 1)].score;
        while (!cands.empty() && cands.back().score < kth) cands.pop_back();
      }
      if (params_.top_p < 1.0f && !cands.empty()) {
        // Nucleus on the candidates: keep c while the mass strictly above it is < top_p.
        double z_sum = 0.0;
        for (const Candidate& c : cands) z_sum += std::exp(c.score - cands.front().score);
        double above = 0.0;
        std::size_t keep = 0;
        while (keep < cands.size()) {
          double same = 0.0;  // equal scores stand or fall together
          std::size_t end = keep;
          while (end < cands.size() && cands[end].score == cands[keep].score) {
            same += std::exp(cands[end].score - cands.front().score) / z_sum;
            ++end;
          }
          if (above >= params_.top_p) break;
          above += same;
          keep = end;
        }
        cands.resize(keep);
      }
      if (params_.min_p > 0.0f && !cands.empty()) {
        const double least = cands.front().score + std::log(params_.min_p);
        while (cands.back().score < least) cands.pop_back();  // the front stays
      }
      for (const Candidate& c : cands) {
        const Candidate noisy{c.score + gumbel(rows[static_cast<std::size_t>(r)], std::int64_t(c.id)), c.id};
        if (better(noisy, best[static_cast<std::size_t>(r)])) best[static_cast<std::size_t>(r)] = noisy;
      }
    }
  } else {
    std::vector<double> threshold(rows_sz, kNegInf), zmax;
    if (params_.top_p < 1.0f || params_.min_p > 0.0f) {  // the largest processed logit of each row
      double* zmax_d = dev.out<double>(rows_sz);
      kernels_.row_max_f64(zmax_d, z, n, valid, valid, true);
      zmax = dev.down(zmax_d, rows_sz);
      tp_.all_reduce(zmax.data(), rows_sz, parallel::ReduceOp::Max);
    }
    if (params_.top_p < 1.0f) threshold = top_p_floor(kernels_, tp_, z, n, valid, zmax, params_.top_p);
    if (params_.min_p > 0.0f) {  // p_v >= min_p p_max, i.e. z_v >= z_max + log(min_p)
      for (std::size_t r = 0; r < rows_sz; ++r) threshold[r] = std::max(threshold[r], zmax[r] + std::log(params_.min_p));
    }
    local_winners(threshold, true);
    reduce_winners();
  }

  // 4. The chosen token's raw logit (held by one rank, gathered from the device) and its
  //    log-probability.
  std::vector<std::int64_t> at(rows_sz, 0);
  std::vector<bool> held(rows_sz, false);
  for (std::size_t r = 0; r < rows_sz; ++r) {
    require(best[r].id >= 0, "sampling: no token can be chosen for row ", r,
            " (every candidate is banned)");
    const auto t = static_cast<std::int64_t>(best[r].id);
    held[r] = t >= start && t < start + valid;
    if (held[r]) at[r] = static_cast<std::int64_t>(r) * ld + (t - start);
  }
  float* chosen_d = dev.out<float>(rows_sz);
  kernels_.gather_rows(chosen_d, logits, dev.up(at), n, 1);
  const std::vector<float> chosen_logit = dev.down(chosen_d, rows_sz);
  std::vector<double> chosen(rows_sz, 0.0);
  for (std::size_t r = 0; r < rows_sz; ++r) chosen[r] = held[r] ? chosen_logit[r] : 0.0;
  tp_.all_reduce(chosen.data(), rows_sz);
  std::vector<Sampled> out(rows_sz);
  for (std::size_t r = 0; r < rows_sz; ++r) {
    out[r].token = static_cast<std::int32_t>(best[r].id);
    out[r].logprob = static_cast<float>(chosen[r] - raw_max[r] - std::log(raw_sum[r]));
  }
  return out;
}

}  // namespace spin::generate
