#include "generate/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "core/error.h"

namespace spin::generate {
namespace {

const kernels::CpuKernels& cpu_kernels() {
  static const kernels::CpuKernels k;
  return k;
}

model::TpDims one_shard(std::int64_t vocab) {
  model::TpDims d;
  d.vocab_rows = d.vocab_valid = vocab;
  return d;
}

// `draws` rows of the same logits, each its own sample id: independent draws.
std::vector<int> histogram(const std::vector<float>& logits, const SamplingParams& p, int draws,
                           std::uint64_t seed = 5) {
  parallel::SelfCommunicator tp;
  const auto vocab = static_cast<std::int64_t>(logits.size());
  VocabParallelSampler sampler(one_shard(vocab), tp, cpu_kernels(), p, seed, {});
  std::vector<float> all;
  std::vector<SampleRow> rows;
  for (int i = 0; i < draws; ++i) {
    all.insert(all.end(), logits.begin(), logits.end());
    rows.push_back({static_cast<std::uint64_t>(i), 17, {}, false});
  }
  std::vector<int> counts(logits.size(), 0);
  for (const Sampled& s : sampler.sample(all.data(), rows)) ++counts[static_cast<std::size_t>(s.token)];
  return counts;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  const double m = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (std::size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp((logits[i] - m) / temperature);
  for (double& x : p) x /= z;
  return p;
}

// Pearson's statistic over the categories with non-zero expectation.
double chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi = 0.0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    const double e = n * probs[i];
    chi += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi;
}

const std::vector<float> kLogits = {2.0f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 1.5f, 0.2f};
constexpr double kChi2Df7At001 = 24.322;  // chi-square quantile 0.999, 7 degrees of freedom

TEST(Sampling, TwentyThousandDrawsMatchTheSoftmax) {
  for (float t : {1.0f, 0.7f}) {
    SamplingParams p;
    p.temperature = t;
    const auto counts = histogram(kLogits, p, 20000);
    EXPECT_LT(chi_square(counts, softmax(kLogits, t), 20000), kChi2Df7At001) << "T " << t;
  }
}

TEST(Sampling, TopKDrawsOnlyTheKHighestInProportion) {
  SamplingParams p;
  p.top_k = 3;  // tokens 0 (2.0), 6 (1.5), 1 (1.0)
  const auto counts = histogram(kLogits, p, 20000);
  std::vector<double> probs(kLogits.size(), 0.0);
  const double z = std::exp(2.0) + std::exp(1.5) + std::exp(1.0);
  probs[0] = std::exp(2.0) / z, probs[6] = std::exp(1.5) / z, probs[1] = std::exp(1.0) / z;
  EXPECT_LT(chi_square(counts, probs, 20000), 5.991);  // 2 degrees of freedom
}

TEST(Sampling, TopPDrawsOnlyTheNucleus) {
  // Softmax of kLogits, most probable first: token 0 0.380, token 6 0.231, token 1 0.140, ...
  // With top_p 0.6 the mass above token 6 (0.380) is below 0.6 and the mass above token 1
  // (0.611) is not: the nucleus is {0, 6} (Hugging Face's rule: drop a token when the mass of
  // the tokens below and including it is <= 1 - top_p; 0.389 <= 0.4).
  for (bool with_top_k : {false, true}) {
    SamplingParams p;
    p.top_p = 0.6f;
    if (with_top_k) p.top_k = 5;
    const auto counts = histogram(kLogits, p, 5000);
    for (std::size_t v = 0; v < counts.size(); ++v) {
      if (v != 0 && v != 6) {
        EXPECT_EQ(counts[v], 0) << "token " << v << " outside the nucleus";
      }
    }
    EXPECT_GT(counts[6], 1500);  // 0.231 / 0.611 of 5000 = 1891 expected
  }
}

// The floor top_p_floor finds is the smallest logit of the nucleus a sort finds: on rows of 3,000
// logits (ties, banned -inf entries) at several top_p, the tokens sorted by logit, largest first,
// and kept while the mass of those strictly above is below top_p (in long double).
TEST(Sampling, TopPFloorIsTheSortedNucleusLowestLogit) {
  parallel::SelfCommunicator tp;
  const std::int64_t n = 40, vocab = 3000;
  auto z = testing::random_vector(static_cast<std::size_t>(n * vocab), 11, 3.0f);
  for (std::int64_t r = 0; r < n; ++r) {
    float* row = z.data() + r * vocab;
    for (std::int64_t v = 0; v < vocab; ++v) row[v] *= static_cast<float>(1 + r % 5);  // peaked to flat
    row[5] = row[6] = row[7];                                                          // ties
    row[r % 9] = -std::numeric_limits<float>::infinity();                              // banned
  }
  std::vector<double> zmax(static_cast<std::size_t>(n));
  cpu_kernels().row_max_f64(zmax.data(), z.data(), n, vocab, vocab, true);
  for (float top_p : {0.05f, 0.5f, 0.9f, 0.95f, 0.999f}) {
    const std::vector<double> floor = top_p_floor(cpu_kernels(), tp, z.data(), n, vocab, zmax, top_p);
    for (std::int64_t r = 0; r < n; ++r) {
      std::vector<float> row(z.begin() + r * vocab, z.begin() + (r + 1) * vocab);
      row.erase(std::remove_if(row.begin(), row.end(), [](float x) { return std::isinf(x); }), row.end());
      std::sort(row.begin(), row.end(), std::greater<>());
      long double total = 0.0L, above = 0.0L;
      for (float x : row) total += std::exp(static_cast<long double>(x) - row.front());
      std::size_t i = 0;  // the nucleus: row[0 .. i], the equal values together
      for (;;) {
        std::size_t end = i;
        long double same = 0.0L;
        while (end < row.size() && row[end] == row[i]) {
          same += std::exp(static_cast<long double>(row[end++]) - row.front());
        }
        if (above + same >= top_p * total || end == row.size()) break;
        above += same;
        i = end;
      }
      EXPECT_EQ(floor[static_cast<std::size_t>(r)], row[i]) << "top_p " << top_p << ", row " << r;
    }
  }
}

// min_p 0.3 keeps the tokens at least 0.3 times as probable as token 0 after temperature:
// at T = 1 z >= 2 + log 0.3 = 0.796 (tokens 0, 6, 1), at T = 0.7 z / 0.7 >= 2 / 0.7 + log 0.3,
// z >= 1.157 (tokens 0, 6); drawn in proportion among them, alone, under top-k (its candidates)
// and with top-p 0.6 (the nucleus {0, 6} within).
TEST(Sampling, MinPDrawsOnlyTokensWithinItsShareOfTheMostProbable) {
  struct Case {
    float temperature;
    std::int64_t top_k;
    float top_p;
    std::vector<std::size_t> kept;
  };
  for (const Case& c : {Case{1.0f, 0, 1.0f, {0, 6, 1}}, Case{1.0f, 5, 1.0f, {0, 6, 1}}, Case{0.7f, 0, 1.0f, {0, 6}},
                        Case{0.7f, 5, 1.0f, {0, 6}}, Case{1.0f, 0, 0.6f, {0, 6}}, Case{1.0f, 5, 0.6f, {0, 6}}}) {
    SamplingParams p;
    p.min_p = 0.3f;
    p.temperature = c.temperature;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    const auto counts = histogram(kLogits, p, 20000);
    const std::vector<double> all = softmax(kLogits, c.temperature);
    std::vector<double> probs(kLogits.size(), 0.0);
    double mass = 0.0;
    for (std::size_t v : c.kept) mass += all[v];
    for (std::size_t v : c.kept) probs[v] = all[v] / mass;
    // Quantiles 0.999 of chi-square with 2 and 1 degrees of freedom.
    EXPECT_LT(chi_square(counts, probs, 20000), c.kept.size() == 3 ? 13.816 : 10.828)
        << "T " << c.temperature << ", top-k " << c.top_k << ", top-p " << c.top_p;
  }
}

TEST(Sampling, GreedyEqualsTopKOneEqualsVanishingTemperature) {
  parallel::SelfCommunicator tp;
  const std::int64_t vocab = 50, n = 200;
  const auto logits = testing::random_vector(static_cast<std::size_t>(vocab * n), 3, 2.0f);
  std::vector<SampleRow> rows;
  for (std::int64_t i = 0; i < n; ++i) rows.push_back({static_cast<std::uint64_t>(i), i, {}, false});
  SamplingParams greedy, top1, cold;
  greedy.greedy = true;
  top1.top_k = 1;
  cold.temperature = 1e-4f;
  const auto a = VocabParallelSampler(one_shard(vocab), tp, cpu_kernels(), greedy, 1, {}).sample(logits.data(), rows);
  const auto b = VocabParallelSampler(one_shard(vocab), tp, cpu_kernels(), top1, 1, {}).sample(logits.data(), rows);
  const auto c = VocabParallelSampler(one_shard(vocab), tp, cpu_kernels(), cold, 1, {}).sample(logits.data(), rows);
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * vocab;
    const auto argmax = static_cast<std::int32_t>(std::max_element(row, row + vocab) - row);
    EXPECT_EQ(a[static_cast<std::size_t>(i)].token, argmax);
    EXPECT_EQ(b[static_cast<std::size_t>(i)].token, argmax);
    EXPECT_EQ(c[static_cast<std::size_t>(i)].token, argmax);
  }
}

TEST(Sampling, LogprobIsUnderTheRawSoftmaxWhateverTheProcessing) {
  parallel::SelfCommunicator tp;
  SamplingParams p;
  p.temperature = 0.5f;
  p.top_k = 2;
  p.repetition_penalty = 1.3f;
  const std::vector<std::int32_t> history = {0, 3};
  VocabParallelSampler sampler(one_shard(8), tp, cpu_kernels(), p, 9, {});
  const std::vector<SampleRow> rows = {{4, 2, history, false}};
  const Sampled s = sampler.sample(kLogits.data(), rows)[0];
  EXPECT_NEAR(s.logprob, std::log(softmax(kLogits, 1.0)[static_cast<std::size_t>(s.token)]), 1e-6);
}

TEST(Sampling, RepetitionPenaltyAndEosBanChangeTheGreedyChoice) {
  parallel::SelfCommunicator tp;
  SamplingParams p;
  p.greedy = true;
  p.repetition_penalty = 2.0f;  // token 0: 2.0 -> 1.0, below token 6's 1.5
  const std::vector<std::int32_t> history = {0, 0, 5};
  VocabParallelSampler sampler(one_shard(8), tp, cpu_kernels(), p, 1, {6});
  EXPECT_EQ(sampler.sample(kLogits.data(), std::vector<SampleRow>{{0, 1, history, false}})[0].token, 6);
  // With EOS = 6 banned, the next best is token 1 (1.0; the penalised token 0 ties at 1.0 and
  // the smaller id wins).
  EXPECT_EQ(sampler.sample(kLogits.data(), std::vector<SampleRow>{{0, 1, history, true}})[0].token, 0);
  EXPECT_EQ(sampler.sample(kLogits.data(), std::vector<SampleRow>{{0, 1, {}, true}})[0].token, 0);
}

TEST(Sampling, InvalidParametersAreErrors) {
  const auto bad = [](SamplingParams p) {
    try {
      p.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(bad(p).find("top_p must be in (0, 1]"), std::string::npos);
  p = {};
  p.min_p = 1.5f;
  EXPECT_NE(bad(p).find("min_p must be in [0, 1]"), std::string::npos);
  p = {};
  p.temperature = -1.0f;
  EXPECT_NE(bad(p).find("temperature must be > 0"), std::string::npos);
  p = {};
  p.top_k = -2;
  EXPECT_NE(bad(p).find("top_k"), std::string::npos);
  p = {};
  p.repetition_penalty = 0.0f;
  EXPECT_NE(bad(p).find("repetition_penalty"), std::string::npos);
}

// A diverged model's NaN or +infinite logits are an error naming the prompt, never a sample, in
// every mode (each checks where its exchange brings the statistics back: with the winners, with
// top-k's offer, before top-p's search); -infinity is probability 0, never chosen.
TEST(Sampler, NonFiniteLogitsAreAnErrorNamingThePrompt) {
  parallel::SelfCommunicator tp;
  std::vector<SamplingParams> modes(5);
  modes[1].greedy = true;
  modes[2].top_k = 2;
  modes[3].top_p = 0.9f;
  modes[4].min_p = 0.1f;
  for (const float bad : {std::nanf(""), INFINITY}) {
    for (const SamplingParams& p : modes) {
      VocabParallelSampler sampler(one_shard(4), tp, cpu_kernels(), p, 5, {});
      std::vector<float> logits = {0.5f, 1.0f, -2.0f, 0.0f, 0.1f, 0.2f, 0.3f, 0.4f};
      logits[6] = bad;  // the second row's
      const std::vector<SampleRow> rows = {{11, 3, {}, false}, {42, 7, {}, false}};
      try {
        sampler.sample(logits.data(), rows);
        ADD_FAILURE() << "logit " << bad << " was sampled from";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("the logits of prompt 42 at position 7 are not finite"), std::string::npos)
            << e.what();
      }
    }
  }
  VocabParallelSampler sampler(one_shard(4), tp, cpu_kernels(), {}, 5, {});
  const std::vector<float> logits = {0.5f, -INFINITY, -2.0f, 0.0f};
  for (std::uint64_t id = 0; id < 50; ++id) {
    const std::vector<SampleRow> row = {{id, 3, {}, false}};
    EXPECT_NE(sampler.sample(logits.data(), row)[0].token, 1);
  }
}

}  // namespace
}  // namespace spin::generate
