// Run with 4 ranks. Overlapping the data-parallel gradient all-reduce with the backward (each
// layer's gradients reduced as soon as the last micro-batch's backward is done with them,
// Optimizer::reduce_layer_async) changes when the sums happen, not what they are: with two
// replicas every element is the same two-term sum, so SFT runs on PP 2 x DP 2 (tied embeddings:
// the embedding group's all-reduce still comes first for the embedding) and TP 2 x DP 2 give
// bitwise the same losses, norms and weights with and without overlap -- and the overlapped
// runs did issue per-layer all-reduces.
#include <gtest/gtest.h>

#include "common/sft_fixture.h"
#include "mpi/mpi_test.h"

namespace spin::testing {
namespace {

TEST(GradientReduceOverlap, SameResultsAsReducingEverythingAtTheEnd) {
  for (const auto& [layout, tie] : {std::pair{parallel::Layout{1, 2, 2}, true},
                                    std::pair{parallel::Layout{2, 1, 2}, false}}) {
    SftSetup s{layout};
    s.tie = tie;
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
    // Per step: the loss sum and one gradient bucket without overlap; with it, one per local
    // layer besides (and the rest, before and after the layers, in one bucket each).
    const std::uint64_t local_layers = static_cast<std::uint64_t>(4 / layout.pp);
    EXPECT_EQ(plain.dp_all_reduces, 4u * 2) << what;
    EXPECT_GE(overlapped.dp_all_reduces, 4u * (1 + local_layers)) << what;
  }
}

}  // namespace
}  // namespace spin::testing
