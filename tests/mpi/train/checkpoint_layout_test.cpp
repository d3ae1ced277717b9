// Run with 4 ranks. Checkpoints load under any layout: a run saved after 2 of 5 steps at one
// (TP, PP, DP) layout and optimizer mode, resumed at another, ends where an uninterrupted
// single-rank run ends (losses and weights to 1e-5) -- across expert parallelism and interleaved
// stages (a stage's layers not contiguous) too; resumed at the same layout, bitwise.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "common/sft_fixture.h"
#include "mpi/mpi_test.h"

namespace spin::train {
namespace {

using spin::testing::mpi_world;
using spin::testing::Result;
using spin::testing::SftSetup;

namespace fs = std::filesystem;

std::string shared_dir(const std::string& tag) { return testing::shared_temp_dir("spin_ckpt_" + tag); }

// The run on the first ranks of the world that `layout` needs; nullopt on the others.
std::optional<Result> run_on(const SftSetup& s, const testing::Checkpointing& ck) {
  parallel::Communicator& world = mpi_world();
  const int size = s.layout.tp * s.layout.pp * s.layout.dp;
  auto group = world.split(world.rank() < size ? 0 : 1, world.rank());
  if (world.rank() >= size) return std::nullopt;
  return testing::train(*group, s, 5, ck);
}

void expect_close_runs(const Result& got, const Result& want, std::size_t from_step,
                       const std::string& what, double weight_tolerance = 1e-5) {
  const std::vector<double> tail(want.losses.begin() + static_cast<std::ptrdiff_t>(from_step), want.losses.end());
  testing::expect_close(got.losses, tail, 1e-5, 1e-7, (what + " losses").c_str());
  if (got.weights.empty()) return;
  ASSERT_EQ(got.weights.size(), want.weights.size());
  for (std::size_t t = 0; t < got.weights.size(); ++t) {
    EXPECT_LE(testing::relative_error(got.weights[t].data, want.weights[t].data), weight_tolerance)
        << what << ": " << got.weights[t].name;
  }
}

TEST(CheckpointLayouts, SavedAtOneLayoutResumedAtAnotherMatchesAnUninterruptedRun) {
  parallel::SelfCommunicator self;
  const Result uninterrupted = testing::train(self, {{1, 1, 1}});
  SftSetup one_mha{{1, 1, 1}};
  one_mha.kv_heads = 4;
  const Result uninterrupted_mha = testing::train(self, one_mha);  // no GQA: TP 4 is possible
  struct Case {
    SftSetup save, load;
  };
  const auto mha = [](SftSetup s) {
    s.kv_heads = 4;
    return s;
  };
  const auto interleaved = [](SftSetup s) {  // two model chunks a stage
    s.chunks = 2;
    return s;
  };
  const std::vector<Case> cases = {
      {{{2, 2, 1}, false}, {{1, 2, 2}, true}},               // TP 2 x PP 2 -> PP 2 x DP 2, distributed
      {{{2, 2, 1}, false}, {{2, 1, 2}, false}},              // -> TP 2 x DP 2
      {{{1, 2, 2}, true}, {{2, 2, 1}, false}},               // distributed at DP 2 -> DP 1, plain
      {{{1, 1, 4}, true}, {{1, 1, 1}, false}},               // distributed at DP 4 -> one rank
      {mha({{2, 2, 1}, false}), mha({{4, 1, 1}, false})},    // TP 2 x PP 2 -> TP 4
      {interleaved({{1, 2, 2}, true}), {{2, 2, 1}, false}},  // PP 2 x 2 chunks, distributed -> TP 2 x PP 2
      {{{1, 2, 2}, true}, interleaved({{2, 2, 1}, false})},  // -> TP 2 x PP 2 x 2 chunks
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const std::string dir = shared_dir(std::to_string(c));
    SCOPED_TRACE(cat("case ", c));
    run_on(cases[c].save, {dir, 2, ""});
    const std::string saved = ckpt::checkpoint_dir(dir, 2);
    const std::string what = cat("case ", c);
    EXPECT_EQ(ckpt::latest_checkpoint(dir), saved);
    const auto resumed = run_on(cases[c].load, {"", -1, saved});
    if (resumed) expect_close_runs(*resumed, cases[c].load.kv_heads == 4 ? uninterrupted_mha : uninterrupted, 2, what);
    mpi_world().barrier();
    if (mpi_world().rank() == 0) fs::remove_all(dir);
  }
}

// Expert parallelism: a Mixtral saved with each TP rank holding half its experts whole (TP 2 x PP 2, ep 2) --
// each expert's weights and AdamW state by name, from whichever rank held it -- resumes with every rank its
// share of every expert (PP 2 x DP 2, ZeRO-1), and the other way, where the uninterrupted run ends.
TEST(CheckpointLayouts, ExpertParallelCheckpointsResumeAtAnotherLayout) {
  parallel::SelfCommunicator self;
  SftSetup one{{1, 1, 1}};
  one.family = testing::TinyFamily::Mixtral;
  const Result uninterrupted = testing::train(self, one);
  const auto mixtral = [](SftSetup s) {
    s.family = testing::TinyFamily::Mixtral;
    return s;
  };
  const SftSetup ep{{2, 2, 1, 2}, false}, zero{{1, 2, 2}, true};
  for (const auto& [save, load] : {std::pair{ep, zero}, std::pair{zero, ep}}) {
    const std::string dir = shared_dir("ep");
    const std::string what = cat("saved at ep ", save.layout.ep, ", resumed at ep ", load.layout.ep);
    SCOPED_TRACE(what);
    run_on(mixtral(save), {dir, 2, ""});
    const auto resumed = run_on(mixtral(load), {"", -1, ckpt::checkpoint_dir(dir, 2)});
    if (resumed) expect_close_runs(*resumed, uninterrupted, 2, what);
    mpi_world().barrier();
    if (mpi_world().rank() == 0) fs::remove_all(dir);
  }
}

// RMSprop (the SPIN code's optimizer): its state (square_avg alone) saved by a distributed
// optimizer at PP 2 x DP 2 and resumed plain at TP 2 x PP 2 ends where the uninterrupted
// single-rank RMSprop run ends -- which differs from AdamW's; an AdamW run refuses the checkpoint.
TEST(CheckpointLayouts, RmsPropStateCarriesAcrossLayouts) {
  parallel::SelfCommunicator self;
  SftSetup one{{1, 1, 1}};
  one.optimizer = OptimizerAlgorithm::RmsProp;
  const Result uninterrupted = testing::train(self, one);
  const Result adamw = testing::train(self, {{1, 1, 1}});
  EXPECT_NE(uninterrupted.losses.back(), adamw.losses.back());
  SftSetup save{{1, 2, 2}, true}, load{{2, 2, 1}, false};
  save.optimizer = load.optimizer = OptimizerAlgorithm::RmsProp;
  const std::string dir = shared_dir("rmsprop");
  run_on(save, {dir, 2, ""});
  const std::string saved = ckpt::checkpoint_dir(dir, 2);
  const auto resumed = run_on(load, {"", -1, saved});
  // RMSprop has no bias correction: its first steps move a weight by lr g / (sqrt(1 - alpha) |g|),
  // 10 lr, where AdamW's move it by lr -- and the rounding differences between layouts with them.
  if (resumed) expect_close_runs(*resumed, uninterrupted, 2, "rmsprop", 5e-5);
  EXPECT_THROW(run_on(SftSetup{{2, 2, 1}, false}, {"", -1, saved}), Error) << "an AdamW run";
  mpi_world().barrier();
  if (mpi_world().rank() == 0) fs::remove_all(dir);
}

TEST(CheckpointLayouts, ResumingAtTheSameLayoutIsBitwiseExact) {
  for (const SftSetup& s : {SftSetup{{2, 2, 1}, false}, SftSetup{{1, 2, 2}, true}}) {
    const std::string dir = shared_dir("exact");
    const auto whole = run_on(s, {dir, 2, ""});
    const auto resumed = run_on(s, {"", -1, ckpt::checkpoint_dir(dir, 2)});
    const std::vector<double> tail(whole->losses.begin() + 2, whole->losses.end());
    EXPECT_EQ(resumed->losses, tail);
    for (std::size_t t = 0; t < resumed->weights.size(); ++t) {
      EXPECT_EQ(resumed->weights[t].data, whole->weights[t].data) << resumed->weights[t].name;
    }
    mpi_world().barrier();
    if (mpi_world().rank() == 0) fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace spin::train
