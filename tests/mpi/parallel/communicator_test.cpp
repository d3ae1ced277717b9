// Run with 4 ranks.
#include "parallel/communicator.h"

#include <gtest/gtest.h>

#include <numeric>

#include "mpi/mpi_test.h"

namespace spin::parallel {
namespace {

using spin::testing::mpi_world;

TEST(MpiCommunicator, CollectivesComputeTheirDefinitions) {
  Communicator& w = mpi_world();
  const int r = w.rank();
  const int n = w.size();
  ASSERT_EQ(n, 4);

  std::vector<float> sum = {static_cast<float>(r), 1.0f};
  w.all_reduce(sum.data(), 2);
  EXPECT_EQ(sum, (std::vector<float>{6.0f, 4.0f}));
  std::int64_t mx = 10 * r;
  w.all_reduce(&mx, 1, ReduceOp::Max);
  EXPECT_EQ(mx, 30);
  double mn = 1.5 + r;
  w.all_reduce(&mn, 1, ReduceOp::Min);
  EXPECT_EQ(mn, 1.5);

  std::vector<std::int32_t> mine = {r, -r};
  std::vector<std::int32_t> all(8);
  w.all_gather(mine.data(), all.data(), 2);
  EXPECT_EQ(all, (std::vector<std::int32_t>{0, 0, 1, -1, 2, -2, 3, -3}));

  // Block b of rank r holds r * 10 + b; rank b receives sum_r (r * 10 + b) = 60 + 4b.
  std::vector<float> blocks(4);
  for (int b = 0; b < 4; ++b) blocks[b] = static_cast<float>(r * 10 + b);
  float got = 0;
  w.reduce_scatter(blocks.data(), &got, 1);
  EXPECT_EQ(got, static_cast<float>(60 + 4 * r));

  std::vector<std::uint8_t> msg(3, static_cast<std::uint8_t>(r));
  w.broadcast(msg.data(), 3, 2);
  EXPECT_EQ(msg, std::vector<std::uint8_t>(3, 2));
}

// Blocks of different lengths (rank r holds r values, rank 0 none) reach every rank in rank order,
// and rank 0's text reaches rank 0 from every rank (gather_strings).
TEST(MpiCommunicator, GathersBlocksOfDifferentLengths) {
  Communicator& w = mpi_world();
  const int r = w.rank();
  std::vector<double> mine;
  for (int i = 0; i < r; ++i) mine.push_back(10.0 * r + i + 0.5);
  const std::vector<std::vector<double>> all = all_gather_varying(w, mine);
  ASSERT_EQ(all.size(), 4u);
  for (int q = 0; q < 4; ++q) {
    ASSERT_EQ(all[static_cast<std::size_t>(q)].size(), static_cast<std::size_t>(q)) << q;
    for (int i = 0; i < q; ++i) EXPECT_EQ(all[static_cast<std::size_t>(q)][static_cast<std::size_t>(i)], 10.0 * q + i + 0.5);
  }
  const std::vector<std::string> texts = gather_strings(w, std::string(static_cast<std::size_t>(r), 'a' + r));
  if (r == 0) {
    EXPECT_EQ(texts, (std::vector<std::string>{"", "b", "cc", "ddd"}));
  } else {
    EXPECT_TRUE(texts.empty());
  }
}

// The distributed optimizer's pattern: reduce-scatter and all-gather in place.
TEST(MpiCommunicator, InPlaceReduceScatterAndAllGather) {
  Communicator& w = mpi_world();
  const int r = w.rank();
  std::vector<float> buf(8);
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<float>(10 * r + i);
  w.reduce_scatter(buf.data(), buf.data(), 2);  // block r summed over ranks -> buf[0..2)
  EXPECT_EQ(buf[0], static_cast<float>(60 + 4 * (2 * r)));
  EXPECT_EQ(buf[1], static_cast<float>(60 + 4 * (2 * r + 1)));
  std::vector<float> all(8, -1.0f);
  all[2 * r] = static_cast<float>(r);
  all[2 * r + 1] = static_cast<float>(-r);
  w.all_gather(all.data() + 2 * r, all.data(), 2);
  EXPECT_EQ(all, (std::vector<float>{0, 0, 1, -1, 2, -2, 3, -3}));
}

// The overlapped distributed optimizer's pattern: nonblocking reductions of pieces of one
// buffer, each into its owner, in place; several in flight at once, waited for together.
TEST(MpiCommunicator, NonblockingReducesIntoEachOwnerInPlace) {
  Communicator& w = mpi_world();
  const int r = w.rank();
  std::vector<float> buf(8);
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<float>(10 * r + i);
  const std::uint64_t reduces = w.stats().calls_of(CommOp::Reduce);
  std::vector<std::unique_ptr<PendingOp>> ops;
  for (int owner = 0; owner < 4; ++owner) ops.push_back(w.ireduce(buf.data() + 2 * owner, 2, owner));
  for (auto& op : ops) op->wait();
  EXPECT_EQ(buf[2 * r], static_cast<float>(60 + 4 * (2 * r)));
  EXPECT_EQ(buf[2 * r + 1], static_cast<float>(60 + 4 * (2 * r + 1)));
  EXPECT_EQ(w.stats().calls_of(CommOp::Reduce) - reduces, 4u);
}

TEST(MpiCommunicator, PointToPointRing) {
  Communicator& w = mpi_world();
  const int r = w.rank();
  const int n = w.size();
  float out = static_cast<float>(r), in = -1;
  if (r % 2 == 0) {
    w.send(&out, 1, (r + 1) % n);
    w.recv(&in, 1, (r + n - 1) % n);
  } else {
    w.recv(&in, 1, (r + n - 1) % n);
    w.send(&out, 1, (r + 1) % n);
  }
  EXPECT_EQ(in, static_cast<float>((r + n - 1) % n));
}

TEST(MpiCommunicator, SplitGroupsByColourOrderedByKey) {
  Communicator& w = mpi_world();
  auto half = w.split(w.rank() % 2, -w.rank());  // reversed order inside each group
  EXPECT_EQ(half->size(), 2);
  std::vector<std::int32_t> members(2);
  const std::int32_t me = w.rank();
  half->all_gather(&me, members.data(), 1);
  if (w.rank() % 2 == 0) EXPECT_EQ(members, (std::vector<std::int32_t>{2, 0}));
  else EXPECT_EQ(members, (std::vector<std::int32_t>{3, 1}));
}

TEST(MpiCommunicator, CountsCallsAndPayloadBytesPerOperation) {
  Communicator& w = mpi_world();
  auto c = w.split(0, w.rank());
  std::vector<float> buf(10);
  std::vector<float> big(40);
  c->all_reduce(buf.data(), 10);
  c->all_reduce(buf.data(), 5);
  c->all_gather(buf.data(), big.data(), 10);
  c->reduce_scatter(big.data(), buf.data(), 10);
  c->barrier();
  const CommStats& s = c->stats();
  EXPECT_EQ(s.calls_of(CommOp::AllReduce), 2u);
  EXPECT_EQ(s.bytes_of(CommOp::AllReduce), 60u);
  EXPECT_EQ(s.bytes_of(CommOp::AllGather), 40u);
  EXPECT_EQ(s.bytes_of(CommOp::ReduceScatter), 160u);
  EXPECT_EQ(s.calls_of(CommOp::Barrier), 1u);
  EXPECT_EQ(s.calls_of(CommOp::Send), 0u);
  c->reset_stats();
  EXPECT_EQ(c->stats().calls_of(CommOp::AllReduce), 0u);
}

}  // namespace
}  // namespace spin::parallel
