// Run with 4 ranks. ckpt::ModelGather: rank 0 pulls each tensor whole from the ranks holding its
// primary shards -- split along either dimension with padding rows past their length, or replicated
// with one primary copy -- in any order, while the others serve; shards that do not tile a tensor are an
// error on every rank; and save_hf_model's replicas, sharing the files, write the files one replica
// writes alone, byte for byte.
#include "checkpoint/model_gather.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "checkpoint/hf_reader.h"
#include "checkpoint/hf_writer.h"
#include "common/test_util.h"
#include "mpi/mpi_test.h"

namespace spin::ckpt {
namespace {

using spin::testing::mpi_world;
namespace fs = std::filesystem;

// Element k of whole tensor `name`: a value no other tensor or element has.
float value_of(const std::string& name, std::int64_t k) { return static_cast<float>(name[0] * 1000 + k); }

// This rank's shard of `name` (whole shape `global`), `length` entries of dimension `dim` from `offset`,
// held in a buffer of `rows` along it (padding past `length`: NaN, which no whole tensor may show).
ShardedTensor shard(const std::string& name, const Shape& global, int dim, std::int64_t offset, std::int64_t length,
                    std::int64_t rows, bool primary = true) {
  Shape local = global;
  if (dim >= 0) local[static_cast<std::size_t>(dim)] = rows;
  Tensor t = Tensor::zeros(local);
  std::int64_t inner = 1;
  for (std::size_t d = static_cast<std::size_t>(dim) + 1; dim >= 0 && d < global.size(); ++d) inner *= global[d];
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    if (dim < 0) {
      t.f32()[i] = value_of(name, i);
      continue;
    }
    const std::int64_t along = (i / inner) % rows, outer = i / (inner * rows);
    const std::int64_t at = (outer * global[static_cast<std::size_t>(dim)] + offset + along) * inner + i % inner;
    t.f32()[i] = along < length ? value_of(name, at) : std::numeric_limits<float>::quiet_NaN();
  }
  return {name, t, global, dim, offset, length, primary};
}

// "a" [6, 4] split along rows over the 4 ranks (2, 1, 2, 1 rows, each in a buffer of 2); "b" [3, 8] split
// along columns over ranks 1 and 3; "c" [5] replicated, its primary copy on rank 2.
std::vector<ShardedTensor> shards_of(int rank) {
  const std::int64_t offsets[] = {0, 2, 3, 5}, lengths[] = {2, 1, 2, 1};
  std::vector<ShardedTensor> local = {shard("a", {6, 4}, 0, offsets[rank], lengths[rank], 2)};
  if (rank % 2 == 1) local.push_back(shard("b", {3, 8}, 1, rank == 1 ? 0 : 4, 4, 4));
  local.push_back(shard("c", {5}, -1, 0, 0, 0, rank == 2));
  return local;
}

TEST(ModelGather, PullsEveryTensorWholeInAnyOrder) {
  parallel::Communicator& world = mpi_world();
  ASSERT_EQ(world.size(), 4);
  const std::vector<ShardedTensor> local = shards_of(world.rank());
  ModelGather gather(local, world);
  ASSERT_EQ(gather.tensors().size(), 3u);
  EXPECT_EQ(gather.tensors()[0].name, "a");
  EXPECT_EQ(gather.tensors()[1].name, "b");
  EXPECT_EQ(gather.tensors()[2].name, "c");
  EXPECT_EQ(gather.tensors()[1].shape, (Shape{3, 8}));
  if (world.rank() != 0) {
    gather.serve();
    return;
  }
  for (std::size_t i : {2, 0, 1, 0}) {
    const WholeTensor& t = gather.tensors()[i];
    const float* got = gather.pull(i);
    for (std::int64_t k = 0; k < shape_numel(t.shape); ++k) ASSERT_EQ(got[k], value_of(t.name, k)) << t.name << k;
  }
  gather.finish();
}

TEST(ModelGather, ShardsThatDoNotTileATensorAreAnErrorOnEveryRank) {
  parallel::Communicator& world = mpi_world();
  std::vector<ShardedTensor> local = shards_of(world.rank());
  if (world.rank() == 3) local.erase(local.begin());  // "a"'s last row on no rank
  const std::string e = testing::error_of([&] { ModelGather gather(local, world); });
  EXPECT_NE(e.find("tensor \"a\": its primary shards do not add up to its [6, 4]"), std::string::npos) << e;
}

std::string bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Two replicas of a model split over 2 ranks each (ranks 0, 1 and 2, 3): in files of a tensor each, the
// replicas' rank 0s writing every other file, the files replica 0 writes alone.
TEST(ModelGather, ReplicasShareTheFilesOneReplicaWrites) {
  parallel::Communicator& world = mpi_world();
  const int replica = world.rank() / 2, rank = world.rank() % 2;
  const auto mp = world.split(replica, world.rank());
  const auto writers = world.split(rank, world.rank());  // on mp rank 0: the replicas' rank 0s
  std::vector<ShardedTensor> local;
  for (const char* name : {"p", "q", "r", "s", "t"}) local.push_back(shard(name, {4, 3}, 0, 2 * rank, 2, 2));
  HfFormat format;
  format.max_shard_bytes = 1;
  const std::string shared = testing::shared_temp_dir("spin_gather_shared");
  const std::string alone = testing::shared_temp_dir("spin_gather_alone");
  save_hf_model(shared, "{}", local, *mp, format, {}, "", writers.get());
  if (replica == 0) save_hf_model(alone, "{}", local, *mp, format, {}, "");
  world.barrier();
  if (world.rank() == 0) {
    std::vector<std::string> names;
    for (const auto& f : fs::directory_iterator(alone)) names.push_back(f.path().filename().string());
    EXPECT_EQ(names.size(), 7u);  // 5 files, the index, config.json
    for (const std::string& name : names) {
      EXPECT_EQ(bytes_of(fs::path(shared) / name), bytes_of(fs::path(alone) / name)) << name;
    }
    HfReader read(shared);
    for (const char* name : {"p", "q", "r", "s", "t"}) {
      const std::vector<float> whole = read.read_all(name);
      for (std::size_t k = 0; k < whole.size(); ++k) EXPECT_EQ(whole[k], value_of(name, static_cast<std::int64_t>(k)));
    }
    fs::remove_all(shared);
    fs::remove_all(alone);
  }
  world.barrier();
}

}  // namespace
}  // namespace spin::ckpt
