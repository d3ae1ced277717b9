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

}  // namespace

std::vector<double> top_p_floor(const kernels::Kernels& kernels, parallel::Communicator& tp, const float* z,
                                std::int64_t n, std::int64_t valid, std::span<const double> zmax, float top_p,
                                TopPBuffers* buffers) {
  const auto rows = static_cast<std::size_t>(n);
  require(zmax.size() == rows, "top_p_floor: ", zmax.size(), " row maxima for ", n, " rows");
  TopPBuffers local;
  TopPBuffers& keep = buffers != nullptr ? *buffers : local;
  const Device device = kernels.device();
  constexpr auto kBuckets = static_cast<std::size_t>(kMassBuckets);
  const auto buckets = static_cast<std::int64_t>(rows * kBuckets);
  std::uint64_t* histogram_d = keep.histogram.carve(device, {{buckets}}, 1, DType::U64)[0].data<std::uint64_t>();
  std::vector<std::uint64_t> prefix(rows, 0);  // the key's bytes fixed so far
  std::vector<std::uint64_t> above(rows, 0);   // the mass of the keys above the prefix's range
  std::vector<double> limit(rows, 0.0);        // top_p of the row's mass
  std::vector<std::uint64_t> histogram(rows * kBuckets);
  // The shifts go up with the first round's prefixes: one upload a round.
  const auto [shift, first_prefix] = keep.first_round.upload(device, zmax, prefix);
  for (int bits = 0; bits < 32; bits += kMassBucketBits) {
    const std::uint64_t* prefix_d = first_prefix;
    if (bits > 0) prefix_d = keep.prefixes.upload(std::span<const std::uint64_t>(prefix), device).data<std::uint64_t>();
    kernels.row_mass_histogram(histogram_d, z, n, valid, valid, shift, prefix_d, bits);
    copy_bytes(histogram.data(), Device::Cpu, histogram_d, device, histogram.size() * sizeof(std::uint64_t));
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

// One call of sample(): its rows, the processed logits z on the device and what the ranks combine.
// `logits` and z live on the kernels' device. What the ranks combine -- per row a few doubles of
// statistics and candidates -- is written into one device buffer, comes back in one copy and is
// all-gathered in one collective: one host round trip a step (greedy, plain sampling, top-k), or
// two around top-p's search rounds.
class VocabParallelSampler::Step {
 public:
  Step(const VocabParallelSampler& sampler, const float* logits, std::span<const SampleRow> rows)
      : s_(sampler),
        logits_(logits),
        rows_(rows),
        n_(static_cast<std::int64_t>(rows.size())),
        count_(rows.size()),
        ranks_(static_cast<std::size_t>(sampler.tp_.size())),
        raw_max_(count_, kNegInf),
        raw_sum_(count_, 0.0),
        best_(count_, Candidate{kNegInf, -1.0, 0.0}) {
    process();
  }

  // Greedy or plain sampling: the statistics and the winners in one exchange.
  void choose_plain() {
    const std::size_t width = 5 * count_;
    double* d = exchange_buffer(width);
    raw_statistics(d);
    local_winners(d + 2 * count_, no_threshold_, !s_.params_.greedy);
    const std::vector<double> all = exchange(d, width);
    combine_raw(all, width);
    combine_winners(all, width, 2 * count_);
  }

  // Top-k: each rank offers its k best (on the kernels) with their raw logits, beside the
  // statistics; every rank then holds the same global candidates, narrows them (top-p, min-p) and
  // draws among them.
  void choose_top_k() {
    const std::int64_t k = s_.params_.top_k;
    const auto offer = count_ * static_cast<std::size_t>(k);  // candidates a rank offers
    const std::size_t width = 2 * count_ + 3 * offer;         // statistics, (value, id) pairs, raw logits
    double* d = exchange_buffer(width);
    raw_statistics(d);
    double* pairs = d + 2 * count_;
    s_.kernels_.row_top_k(pairs, z_, n_, valid(), k, start());
    s_.kernels_.logits_at_ids(pairs + 2 * offer, logits_, n_, ld(), valid(), pairs + 1, k, 2, start());
    const std::vector<double> all = exchange(d, width);
    combine_raw(all, width);
    for (std::size_t r = 0; r < count_; ++r) {
      std::vector<Candidate> cands;
      for (std::size_t q = 0; q < ranks_; ++q) {
        const double* p = all.data() + q * width + 2 * count_;
        for (std::size_t i = r * static_cast<std::size_t>(k); i < (r + 1) * static_cast<std::size_t>(k); ++i) {
          if (p[2 * i] != kNegInf) cands.push_back({p[2 * i], p[2 * i + 1], p[2 * offer + i]});
        }
      }
      narrow(cands);
      for (const Candidate& c : cands) {
        const Candidate noisy{c.score + s_.gumbel(rows_[r], static_cast<std::int64_t>(c.id)), c.id, c.raw};
        if (better(noisy, best_[r])) best_[r] = noisy;
      }
    }
  }

  // Top-p or min-p without top-k: a threshold below each row's largest processed logit, which
  // comes with the statistics (field 2); then top-p's search rounds; then the winners above it.
  void choose_above_threshold() {
    const std::size_t width = 3 * count_;
    double* d = exchange_buffer(width);
    raw_statistics(d);
    s_.kernels_.row_max_f64(d + 2 * count_, z_, n_, valid(), valid(), true);
    const std::vector<double> all = exchange(d, width);
    combine_raw(all, width);  // before the search: a diverged row's NaN never reaches it
    std::vector<double> zmax(count_, kNegInf), threshold(count_, kNegInf);
    for (std::size_t k = 0; k < ranks_; ++k) {
      for (std::size_t r = 0; r < count_; ++r) zmax[r] = std::max(zmax[r], all[k * width + 2 * count_ + r]);
    }
    const SamplingParams& p = s_.params_;
    if (p.top_p < 1.0f) threshold = top_p_floor(s_.kernels_, s_.tp_, z_, n_, valid(), zmax, p.top_p, &s_.top_p_);
    if (p.min_p > 0.0f) {  // p_v >= min_p p_max, i.e. z_v >= z_max + log(min_p)
      for (std::size_t r = 0; r < count_; ++r) threshold[r] = std::max(threshold[r], zmax[r] + std::log(p.min_p));
    }
    double* w = exchange_buffer(3 * count_);  // d is spent: its values came back
    local_winners(w, s_.threshold_upload_.upload(std::span<const double>(threshold), device()).data<double>(), true);
    combine_winners(exchange(w, 3 * count_), 3 * count_, 0);
  }

  // The chosen tokens and their log-probabilities under the raw softmax.
  std::vector<Sampled> result() const {
    std::vector<Sampled> out(count_);
    for (std::size_t r = 0; r < count_; ++r) {
      require(best_[r].id >= 0, "sampling: no token can be chosen for row ", r, " (every candidate is banned)");
      out[r].token = static_cast<std::int32_t>(best_[r].id);
      out[r].logprob = static_cast<float>(best_[r].raw - raw_max_[r] - std::log(raw_sum_[r]));
    }
    return out;
  }

 private:
  Device device() const { return s_.kernels_.device(); }
  std::int64_t ld() const { return s_.dims_.vocab_rows; }
  std::int64_t valid() const { return s_.dims_.vocab_valid; }
  std::int64_t start() const { return s_.dims_.vocab_start; }

  // The processed logits z of this shard: penalty, EOS ban, temperature. The step's per-row arrays
  // go up in one copy (the EOS ids are on the device from the start).
  void process() {
    const SamplingParams& p = s_.params_;
    std::vector<std::int32_t> history;  // every row's tokens, back to back
    std::vector<std::int64_t> offsets = {0};
    std::vector<std::uint8_t> ban(count_);
    std::vector<std::uint64_t> ids(count_);  // the noise's keys
    std::vector<std::int64_t> positions(count_);
    for (std::size_t r = 0; r < count_; ++r) {
      if (p.repetition_penalty != 1.0f) history.insert(history.end(), rows_[r].history.begin(), rows_[r].history.end());
      offsets.push_back(static_cast<std::int64_t>(history.size()));
      ban[r] = rows_[r].ban_eos ? 1 : 0;
      ids[r] = rows_[r].sample_id, positions[r] = rows_[r].position;
    }
    const auto [history_d, offsets_d, ban_d, ids_d, positions_d, no_threshold_d] =
        s_.rows_upload_.upload(device(), history, offsets, ban, ids, positions, std::vector<double>(count_, kNegInf));
    ids_ = ids_d, positions_ = positions_d, no_threshold_ = no_threshold_d;
    z_ = s_.z_storage_.carve(device(), {{n_ * std::max<std::int64_t>(valid(), 0)}})[0].f32();
    s_.kernels_.sampling_logits(z_, logits_, n_, ld(), valid(), start(), history_d, offsets_d, p.repetition_penalty,
                                ban_d, s_.eos_device_.data<std::int32_t>(), static_cast<std::int64_t>(s_.eos_.size()),
                                p.greedy ? 1.0f : 1.0f / p.temperature);
  }

  // Every rank's `count` doubles at `d` on the device, rank k's at [k * count, (k + 1) * count).
  // A device buffer of `count` doubles for an exchange (the previous one's is reused).
  double* exchange_buffer(std::size_t count) {
    return s_.exchange_storage_.carve(device(), {{static_cast<std::int64_t>(count)}}, 1, DType::F64)[0].data<double>();
  }
  std::vector<double> exchange(const double* d, std::size_t count) {
    std::vector<double> mine(count);
    copy_bytes(mine.data(), Device::Cpu, d, device(), count * sizeof(double));
    std::vector<double> all(count * ranks_);
    s_.tp_.all_gather(mine.data(), all.data(), count);
    return all;
  }

  // The raw log-sum-exp of every row, for the reported log-probabilities: each shard's maximum
  // and its sum of exponentials shifted by it (fields 0 and 1 of an exchanged buffer), combined as
  // sum = sum over ranks of sum_k exp(max_k - max).
  void raw_statistics(double* d) {
    s_.kernels_.row_max_f64(d, logits_, n_, ld(), valid(), false);
    s_.kernels_.row_sumexp_f64(d + count_, logits_, n_, ld(), valid(), d, false);
  }
  void combine_raw(const std::vector<double>& all, std::size_t width) {
    for (std::size_t k = 0; k < ranks_; ++k) {
      for (std::size_t r = 0; r < count_; ++r) raw_max_[r] = std::max(raw_max_[r], all[k * width + r]);
    }
    for (std::size_t k = 0; k < ranks_; ++k) {
      for (std::size_t r = 0; r < count_; ++r) {
        const double m = all[k * width + r], sum = all[k * width + count_ + r];
        raw_sum_[r] += m == kNegInf ? 0.0 : sum * std::exp(m - raw_max_[r]);  // NaN and +inf carry through
      }
    }
    // A NaN or infinite logit anywhere in a row leaves its sum of exponentials non-finite (the
    // same on every TP rank): a diverged model, stopped here rather than sampled from.
    for (std::size_t r = 0; r < count_; ++r) {
      require(std::isfinite(raw_max_[r]) && std::isfinite(raw_sum_[r]), "generation: the logits of prompt ",
              rows_[r].sample_id, " at position ", rows_[r].position,
              " are not finite (NaN or infinity: the model's weights or activations overflowed)");
    }
  }

  // This shard's winner of every row above `threshold` (the per-token loop, on the kernels) into
  // d's three fields: the scores, the ids, the raw logits (so the chosen token's travels with it).
  void local_winners(double* d, const double* threshold, bool noisy) {
    s_.kernels_.gumbel_argmax(d, d + count_, z_, n_, valid(), threshold, noisy, s_.seed_, ids_, positions_, start());
    s_.kernels_.logits_at_ids(d + 2 * count_, logits_, n_, ld(), valid(), d + count_, 1, 1, start());
  }
  // The best of the ranks' winners, the fields at `at` of each rank's `width` doubles.
  void combine_winners(const std::vector<double>& all, std::size_t width, std::size_t at) {
    for (std::size_t k = 0; k < ranks_; ++k) {
      const double* w = all.data() + k * width + at;
      for (std::size_t r = 0; r < count_; ++r) {
        const Candidate c{w[r], w[count_ + r], w[2 * count_ + r]};
        if (c.id >= 0 && better(c, best_[r])) best_[r] = c;
      }
    }
  }

  // A row's global top-k candidates narrowed as Hugging Face does: every candidate at least as
  // large as the k-th (ties may keep more), then top-p (keep c while the mass strictly above it is
  // < top_p; equal scores stand or fall together), then min-p (the front stays).
  void narrow(std::vector<Candidate>& cands) const {
    const SamplingParams& p = s_.params_;
    std::sort(cands.begin(), cands.end(), better);
    if (static_cast<std::int64_t>(cands.size()) > p.top_k) {
      const double kth = cands[static_cast<std::size_t>(p.top_k - 1)].score;
      while (!cands.empty() && cands.back().score < kth) cands.pop_back();
    }
    if (p.top_p < 1.0f && !cands.empty()) {
      double z_sum = 0.0;
      for (const Candidate& c : cands) z_sum += std::exp(c.score - cands.front().score);
      double above = 0.0;
      std::size_t keep = 0;
      while (keep < cands.size()) {
        double same = 0.0;
        std::size_t end = keep;
        while (end < cands.size() && cands[end].score == cands[keep].score) {
          same += std::exp(cands[end].score - cands.front().score) / z_sum;
          ++end;
        }
        if (above >= p.top_p) break;
        above += same;
        keep = end;
      }
      cands.resize(keep);
    }
    if (p.min_p > 0.0f && !cands.empty()) {
      const double least = cands.front().score + std::log(p.min_p);
      while (cands.back().score < least) cands.pop_back();
    }
  }

  const VocabParallelSampler& s_;
  const float* logits_;
  std::span<const SampleRow> rows_;
  std::int64_t n_;
  std::size_t count_, ranks_;
  float* z_ = nullptr;
  const std::uint64_t* ids_ = nullptr;       // each row's noise key (its sample id), on the device
  const std::int64_t* positions_ = nullptr;  // and position
  const double* no_threshold_ = nullptr;     // -infinity a row, on the device
  std::vector<double> raw_max_, raw_sum_;    // each row's raw log-sum-exp statistics over the TP group
  std::vector<Candidate> best_;              // each row's winner so far
};

std::vector<Sampled> VocabParallelSampler::sample(const float* logits, std::span<const SampleRow> rows) const {
  Step step(*this, logits, rows);
  if (params_.greedy || (params_.top_k == 0 && params_.top_p == 1.0f && params_.min_p == 0.0f)) {
    step.choose_plain();
  } else if (params_.top_k > 0) {
    step.choose_top_k();
  } else {
    step.choose_above_threshold();
  }
  return step.result();
}

}  // namespace spin::generate
