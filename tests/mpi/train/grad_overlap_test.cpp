// Run with 4 ranks. Overlapping the data-parallel gradient all-reduce with the backward (each
// layer's gradients reduced as soon as the last micro-batch's backward is done with them,
// Optimizer::reduce_layer_async) changes when the sums happen, not what they are: with two
// replicas every element is the same two-term sum, so SFT runs on PP 2 x DP 2 (tied embeddings:
// the embedding group's all-reduce still comes first for the embedding) and TP 2 x DP 2 give
// bitwise the same losses, norms and weights with and without overlap -- and the overlapped
// runs did issue per-layer all-reduces. With the distributed optimizer, the overlapped
// reductions go to the owners of each layer's parts (reduces instead of one reduce-scatter):
// bitwise the same as the reduce-scatter too.
#include <gtest/gtest.h>

#include "common/sft_fixture.h"
#include "mpi/mpi_test.h"

namespace spin::testing {
namespace {

// SFT runs with and without overlap on PP 2 x DP 2 (tied) and TP 2 x DP 2 must agree bitwise;
// `counts(plain, overlapped, local_layers, what)` checks the collectives each issued.
template <class Counts>
void expect_overlap_changes_nothing(bool distributed, Counts counts) {
  for (const auto& [layout, tie] : {std::pair{parallel::Layout{1, 2, 2}, true},
                                    std::pair{parallel::Layout{2, 1, 2}, false}}) {
    SftSetup s{layout};
    s.tie = tie;
    s.distributed = distributed;
    s.overlap_grad_reduce = false;
    const Result plain = train(mpi_world(), s, 4);
    s.overlap_grad_reduce = true;
    const Result overlapped = train(mpi_world(), s, 4);
    const std::string what = cat("tp ", layout.tp, " pp ", layout.pp, " dp ", layout.dp);
    EXPECT_EQ(overlapped.losses, plain.losses) << what;
    EXPECT_EQ(overlapped.grad_norms, plain.grad_norms) << what;
    ASSERT_EQ(overlapped.weights.size(), plain.weights.size());
    for (std::size_t t = 0; t < plain.weights.size(); ++t) {
      EXPECT_EQ(overlapped.weights[t].data, plain.weights[t].data) << what << ": " << plain.weights[t].name;
    }
    counts(plain, overlapped, static_cast<std::uint64_t>(4 / layout.pp), what);
  }
}

TEST(GradientReduceOverlap, SameResultsAsReducingEverythingAtTheEnd) {
  // Per step: the loss sum and one gradient bucket without overlap; with it, one per local
  // layer besides (and the rest, before and after the layers, in one bucket each).
  expect_overlap_changes_nothing(false, [](const Result& plain, const Result& overlapped, std::uint64_t layers,
                                           const std::string& what) {
    EXPECT_EQ(plain.dp_all_reduces, 4u * 2) << what;
    EXPECT_GE(overlapped.dp_all_reduces, 4u * (1 + layers)) << what;
  });
}

TEST(GradientReduceOverlap, DistributedOptimizerReducesEachLayerToItsOwners) {
  // Per step, without overlap no reduce (one reduce-scatter); with it, at least one per local
  // layer and one for the rest.
  expect_overlap_changes_nothing(true, [](const Result& plain, const Result& overlapped, std::uint64_t layers,
                                          const std::string& what) {
    EXPECT_EQ(plain.dp_reduces, 0u) << what;
    EXPECT_GE(overlapped.dp_reduces, 4u * (1 + layers)) << what;
  });
}

}  // namespace
}  // namespace spin::testing
