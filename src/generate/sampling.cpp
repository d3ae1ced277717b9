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
  double raw;    // its raw logit (for the reported log-probability)
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
  // Several host arrays in one copy (PackedUpload); their device pointers, in order.
  template <class... R>
  auto up_packed(const R&... arrays) {
    PackedUpload packed;
    const auto pointers = packed.upload(device_, arrays...);
    keep_.push_back(packed.buffer());
    return pointers;
  }
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
  constexpr auto kBuckets = static_cast<std::size_t>(kMassBuckets);
  std::uint64_t* histogram_d = dev.out<std::uint64_t>(rows * kBuckets);
  std::vector<std::uint64_t> prefix(rows, 0);  // the key's bytes fixed so far
  std::vector<std::uint64_t> above(rows, 0);   // the mass of the keys above the prefix's range
  std::vector<double> limit(rows, 0.0);        // top_p of the row's mass
  // The shifts go up with the first round's prefixes: one upload a round.
  const auto [shift, first_prefix] = dev.up_packed(zmax, prefix);
  for (int bits = 0; bits < 32; bits += kMassBucketBits) {
    const std::uint64_t* prefix_d = bits == 0 ? first_prefix : dev.up(std::span<const std::uint64_t>(prefix));
    kernels.row_mass_histogram(histogram_d, z, n, valid, valid, shift, prefix_d, bits);
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
  eos_device_ = UploadBuffer().upload(std::span<const std::int32_t>(eos_), kernels_.device());
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
  const auto ranks = static_cast<std::size_t>(tp_.size());
  // `logits` and z live on the kernels' device. What the ranks combine -- per row a few doubles
  // of statistics and candidates -- is written into one device buffer, comes back in one copy and
  // is all-gathered in one collective: one host round trip a step (greedy, plain sampling,
  // top-k), or two around top-p's search rounds.
  Staging dev(kernels_.device());
  // Every rank's `count` doubles at `d` on the device, rank k's at [k * count, (k + 1) * count).
  const auto exchange = [&](const double* d, std::size_t count) {
    const std::vector<double> mine = dev.down(d, count);
    std::vector<double> all(count * ranks);
    tp_.all_gather(mine.data(), all.data(), count);
    return all;
  };

  // 1. Processed logits z of this shard: penalty, EOS ban, temperature. The step's per-row arrays
  //    go up in one copy (the EOS ids are on the device from the start).
  std::vector<std::int32_t> history;  // every row's tokens, back to back
  std::vector<std::int64_t> offsets = {0};
  std::vector<std::uint8_t> ban(rows_sz);
  std::vector<std::uint64_t> ids(rows_sz);  // the noise's keys
  std::vector<std::int64_t> positions(rows_sz);
  for (std::size_t r = 0; r < rows_sz; ++r) {
    if (params_.repetition_penalty != 1.0f) {
      history.insert(history.end(), rows[r].history.begin(), rows[r].history.end());
    }
    offsets.push_back(static_cast<std::int64_t>(history.size()));
    ban[r] = rows[r].ban_eos ? 1 : 0;
    ids[r] = rows[r].sample_id, positions[r] = rows[r].position;
  }
  const auto [history_d, offsets_d, ban_d, ids_d, positions_d, no_threshold_d] =
      dev.up_packed(history, offsets, ban, ids, positions, std::vector<double>(rows_sz, kNegInf));
  const auto z_size = static_cast<std::size_t>(n * std::max<std::int64_t>(valid, 0));
  float* z = dev.out<float>(z_size);
  kernels_.sampling_logits(z, logits, n, ld, valid, start, history_d, offsets_d, params_.repetition_penalty, ban_d,
                           eos_device_.data<std::int32_t>(), static_cast<std::int64_t>(eos_.size()),
                           params_.greedy ? 1.0f : 1.0f / params_.temperature);

  // 2. The raw log-sum-exp of every row, for the reported log-probabilities: each shard's maximum
  //    and its sum of exponentials shifted by it (fields 0 and 1 of the exchanged buffer), combined
  //    as sum = sum over ranks of sum_k exp(max_k - max).
  const auto raw_statistics = [&](double* d) {
    kernels_.row_max_f64(d, logits, n, ld, valid, false);
    kernels_.row_sumexp_f64(d + rows_sz, logits, n, ld, valid, d, false);
  };
  std::vector<double> raw_max(rows_sz, kNegInf), raw_sum(rows_sz, 0.0);
  const auto combine_raw = [&](const std::vector<double>& all, std::size_t width) {
    for (std::size_t k = 0; k < ranks; ++k) {
      for (std::size_t r = 0; r < rows_sz; ++r) raw_max[r] = std::max(raw_max[r], all[k * width + r]);
    }
    for (std::size_t k = 0; k < ranks; ++k) {
      for (std::size_t r = 0; r < rows_sz; ++r) {
        const double m = all[k * width + r], s = all[k * width + rows_sz + r];
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
  };

  // 3. Which tokens may be chosen, and the winner among them with its raw logit (from the rank
  //    that holds it: candidates travel with their raw logits).
  std::vector<Candidate> best(rows_sz, Candidate{kNegInf, -1.0, 0.0});
  // This shard's winner of every row (the per-token loop, on the kernels) into d's three fields:
  // the scores, the ids, the raw logits.
  const auto local_winners = [&](double* d, const double* threshold_d, bool noisy) {
    kernels_.gumbel_argmax(d, d + rows_sz, z, n, valid, threshold_d, noisy, seed_, ids_d, positions_d, start);
    kernels_.logits_at_ids(d + 2 * rows_sz, logits, n, ld, valid, d + rows_sz, 1, 1, start);
  };
  // The best of the ranks' winners, the fields at `at` of each rank's `width` doubles.
  const auto combine_winners = [&](const std::vector<double>& all, std::size_t width, std::size_t at) {
    for (std::size_t k = 0; k < ranks; ++k) {
      const double* w = all.data() + k * width + at;
      for (std::size_t r = 0; r < rows_sz; ++r) {
        const Candidate c{w[r], w[rows_sz + r], w[2 * rows_sz + r]};
        if (c.id >= 0 && better(c, best[r])) best[r] = c;
      }
    }
  };

  if (params_.greedy || (params_.top_k == 0 && params_.top_p == 1.0f && params_.min_p == 0.0f)) {
    // Greedy or plain sampling: the statistics and the winners in one exchange.
    const std::size_t width = 5 * rows_sz;
    double* d = dev.out<double>(width);
    raw_statistics(d);
    local_winners(d + 2 * rows_sz, no_threshold_d, !params_.greedy);
    const std::vector<double> all = exchange(d, width);
    combine_raw(all, width);
    combine_winners(all, width, 2 * rows_sz);
  } else if (params_.top_k > 0) {
    // Each rank offers its k best (on the kernels) with their raw logits, beside the statistics;
    // every rank then holds the same global candidates.
    const std::int64_t k = params_.top_k;
    const auto offer = rows_sz * static_cast<std::size_t>(k);  // candidates a rank offers
    const std::size_t width = 2 * rows_sz + 3 * offer;         // statistics, (value, id) pairs, raw logits
    double* d = dev.out<double>(width);
    raw_statistics(d);
    double* pairs = d + 2 * rows_sz;
    kernels_.row_top_k(pairs, z, n, valid, k, start);
    kernels_.logits_at_ids(pairs + 2 * offer, logits, n, ld, valid, pairs + 1, k, 2, start);
    const std::vector<double> all = exchange(d, width);
    combine_raw(all, width);
    for (std::int64_t r = 0; r < n; ++r) {
      std::vector<Candidate> cands;
      for (std::size_t q = 0; q < ranks; ++q) {
        const double* p = all.data() + q * width + 2 * rows_sz;
        for (std::int64_t i = 0; i < k; ++i) {
          const auto at = static_cast<std::size_t>(r * k + i);
          if (p[2 * at] != kNegInf) cands.push_back({p[2 * at], p[2 * at + 1], p[2 * offer + at]});
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
      Candidate& chosen = best[static_cast<std::size_t>(r)];
      for (const Candidate& c : cands) {
        const Candidate noisy{c.score + gumbel(rows[static_cast<std::size_t>(r)], std::int64_t(c.id)), c.id, c.raw};
        if (better(noisy, chosen)) chosen = noisy;
      }
    }
  } else {
    // Top-p or min-p without top-k: a threshold below each row's largest processed logit, which
    // comes with the statistics (field 2); then top-p's search rounds; then the winners.
    const std::size_t width = 3 * rows_sz;
    double* d = dev.out<double>(width);
    raw_statistics(d);
    kernels_.row_max_f64(d + 2 * rows_sz, z, n, valid, valid, true);
    const std::vector<double> all = exchange(d, width);
    combine_raw(all, width);  // before the search: a diverged row's NaN never reaches it
    std::vector<double> zmax(rows_sz, kNegInf), threshold(rows_sz, kNegInf);
    for (std::size_t k = 0; k < ranks; ++k) {
      for (std::size_t r = 0; r < rows_sz; ++r) zmax[r] = std::max(zmax[r], all[k * width + 2 * rows_sz + r]);
    }
    if (params_.top_p < 1.0f) threshold = top_p_floor(kernels_, tp_, z, n, valid, zmax, params_.top_p);
    if (params_.min_p > 0.0f) {  // p_v >= min_p p_max, i.e. z_v >= z_max + log(min_p)
      for (std::size_t r = 0; r < rows_sz; ++r) threshold[r] = std::max(threshold[r], zmax[r] + std::log(params_.min_p));
    }
    double* w = dev.out<double>(3 * rows_sz);
    local_winners(w, dev.up(std::span<const double>(threshold)), true);
    combine_winners(exchange(w, 3 * rows_sz), 3 * rows_sz, 0);
  }

  // 4. The chosen token and its log-probability under the raw softmax.
  std::vector<Sampled> out(rows_sz);
  for (std::size_t r = 0; r < rows_sz; ++r) {
    require(best[r].id >= 0, "sampling: no token can be chosen for row ", r, " (every candidate is banned)");
    out[r].token = static_cast<std::int32_t>(best[r].id);
    out[r].logprob = static_cast<float>(best[r].raw - raw_max[r] - std::log(raw_sum[r]));
  }
  return out;
}

}  // namespace spin::generate
