// Run with 4 ranks. The vocab-parallel sampler chooses the same tokens, with the same
// log-probabilities, at TP = 2 and 4 as at TP = 1, for every sampling mode (vocabulary 37:
// padded shards at both sizes).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "generate/sampling.h"
#include "kernels/cpu/cpu_kernels.h"
#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"

namespace spin::generate {
namespace {

const kernels::CpuKernels& cpu_kernels() {
  static const kernels::CpuKernels k;
  return k;
}

std::vector<Sampled> sample_at(parallel::Communicator& tp, const std::vector<float>& full,
                               std::int64_t vocab, const SamplingParams& p,
                               const std::vector<SampleRow>& rows) {
  testing::TinyShape shape;
  shape.vocab = static_cast<int>(vocab);
  shape.heads = shape.kv_heads = 4;
  const model::TpDims d = model::tp_dims(testing::tiny_config(shape), tp.rank(), tp.size());
  std::vector<float> shard(rows.size() * static_cast<std::size_t>(d.vocab_rows), 1e9f);  // padding junk
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::int64_t v = 0; v < d.vocab_valid; ++v)
      shard[r * static_cast<std::size_t>(d.vocab_rows) + static_cast<std::size_t>(v)] =
          full[r * static_cast<std::size_t>(vocab) + static_cast<std::size_t>(d.vocab_start + v)];
  return VocabParallelSampler(d, tp, cpu_kernels(), p, 1234, {3}).sample(shard.data(), rows);
}

TEST(VocabParallelSampling, EveryModeChoosesTheSameTokensAtEveryTpSize) {
  const std::int64_t vocab = 37, n = 64;
  const auto full = testing::random_vector(static_cast<std::size_t>(vocab * n), 8, 2.5f);
  std::vector<std::vector<std::int32_t>> histories;
  for (std::int64_t i = 0; i < n; ++i) histories.push_back(testing::random_ids(6, 37, 40 + i));
  std::vector<SampleRow> rows;
  for (std::int64_t i = 0; i < n; ++i)
    rows.push_back({static_cast<std::uint64_t>(1000 + i), 5 + i % 3, histories[static_cast<std::size_t>(i)], i % 4 == 0});

  std::vector<SamplingParams> modes(9);
  modes[1].temperature = 0.8f;
  modes[2].top_k = 5;
  modes[3].top_p = 0.7f;
  modes[4].top_k = 6, modes[4].top_p = 0.8f, modes[4].temperature = 1.3f;
  modes[5].greedy = true;
  modes[6].repetition_penalty = 1.5f, modes[6].top_p = 0.9f;
  modes[7].min_p = 0.2f, modes[7].temperature = 0.9f;
  modes[8].min_p = 0.1f, modes[8].top_k = 8, modes[8].top_p = 0.95f;
  for (int tp_size : {2, 4}) {
    parallel::ProcessGrid grid(spin::testing::mpi_world(), {tp_size, 1, 0});
    for (std::size_t m = 0; m < modes.size(); ++m) {
      parallel::SelfCommunicator self;
      const auto want = sample_at(self, full, vocab, modes[m], rows);
      const auto got = sample_at(grid.tp(), full, vocab, modes[m], rows);
      for (std::size_t r = 0; r < rows.size(); ++r) {
        EXPECT_EQ(got[r].token, want[r].token) << "mode " << m << ", TP " << tp_size << ", row " << r;
        EXPECT_NEAR(got[r].logprob, want[r].logprob, 1e-5) << "mode " << m << ", row " << r;
        if (r % 4 == 0) {
          EXPECT_NE(got[r].token, 3) << "EOS is banned in this row";
        }
      }
    }
  }
}

// A NaN or +infinite logit in one rank's shard stops every rank of the TP group with the error
// naming the prompt (each shard's log-sum-exp is combined on every rank: the same verdict).
TEST(VocabParallelSampling, ANonFiniteLogitInOneShardIsAnErrorOnEveryRank) {
  const std::int64_t vocab = 37, n = 3;
  auto full = testing::random_vector(static_cast<std::size_t>(vocab * n), 9, 2.0f);
  const std::vector<SampleRow> rows = {{7, 2, {}, false}, {8, 2, {}, false}, {9, 2, {}, false}};
  parallel::ProcessGrid grid(spin::testing::mpi_world(), {4, 1, 0});
  for (const float bad : {std::nanf(""), INFINITY}) {
    full[static_cast<std::size_t>(vocab + 33)] = bad;  // row 1, in the last rank's shard
    try {
      sample_at(grid.tp(), full, vocab, {}, rows);
      ADD_FAILURE() << "rank " << grid.tp().rank() << " sampled from logit " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the logits of prompt 8 at position 2 are not finite"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace spin::generate
