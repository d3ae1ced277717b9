#include "checkpoint/sharded_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "checkpoint/h5.h"
#include "common/file_size_limit.h"
#include "common/scratch_dir.h"
#include "common/test_util.h"
#include "core/error.h"

namespace spin::ckpt {
namespace {

namespace fs = std::filesystem;
using spin::testing::error_of;
using spin::testing::FileSizeLimit;

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    std::iota(a_.begin(), a_.end(), 0.0f);
    std::iota(b_.begin(), b_.end(), 100.0f);
  }

  // A 4x3 tensor "w" saved as two row pieces of one file, and a vector "n".
  std::string save(std::int64_t step, int keep_last = 0) {
    parallel::SelfCommunicator world;
    CheckpointWriter writer(world, checkpoint_dir(dir_.string(), step));
    writer.write_file("shard.h5", {{"policy", "w", {4, 3}, {0, 0}, {1, 3}, a_.data()},
                                   {"policy", "w", {4, 3}, {1, 0}, {3, 3}, a_.data() + 3},
                                   {"policy", "n", {5}, {0}, {5}, b_.data()}});
    writer.commit({{"state", "{\"step\": " + std::to_string(step) + "}"}}, keep_last);
    return checkpoint_dir(dir_.string(), step);
  }

  testing::ScratchDir scratch_{"spin_ckpt_unit"};
  fs::path dir_ = scratch_.path();
  std::vector<float> a_ = std::vector<float>(12), b_ = std::vector<float>(5);
};

TEST_F(Checkpoint, RoundTripOfAnyRectangleAcrossPieces) {
  const std::string path = save(7);
  EXPECT_EQ(latest_checkpoint(dir_.string()), path);
  const CheckpointReader r(path);
  EXPECT_EQ(r.attribute("state"), "{\"step\": 7}");
  EXPECT_EQ(r.shape("policy", "w"), (Shape{4, 3}));
  EXPECT_EQ(r.pieces("policy", "w").size(), 2u);
  std::vector<float> out(6);
  r.read("policy", "w", {0, 1}, {3, 2}, out.data());  // rows 0..2 x cols 1..2: both pieces
  EXPECT_EQ(out, (std::vector<float>{1, 2, 4, 5, 7, 8}));
  std::vector<float> n(2);
  r.read("policy", "n", {3}, {2}, n.data());
  EXPECT_EQ(n, (std::vector<float>{103, 104}));
  EXPECT_FALSE(r.has("reference", "w"));
  EXPECT_NE(error_of([&] { r.read("policy", "w", {3, 0}, {2, 3}, out.data()); }).find("has no rectangle"),
            std::string::npos);
}

// A model of thousands of tensors (a mixture of experts: Mixtral 8x7B's 995, with the optimizer's
// moments and LoRA's adapters several times that) makes the index's catalog far larger than the
// 64 KiB an HDF5 attribute may take in the earliest file format (where saving failed): 3,000
// tensors' catalog is written and read back, every tensor readable.
TEST_F(Checkpoint, ACatalogOfThousandsOfTensorsIsWrittenAndReadBack) {
  parallel::SelfCommunicator world;
  const std::string path = checkpoint_dir(dir_.string(), 1);
  CheckpointWriter writer(world, path);
  std::vector<PieceWrite> pieces;
  std::vector<std::string> names;
  for (int i = 0; i < 3000; ++i)
    names.push_back(cat("model.layers.", i / 100, ".mlp.experts.", i % 100, ".gate_proj.lora_A.weight"));
  for (const std::string& name : names) pieces.push_back({"lora", name, {5}, {0}, {5}, b_.data()});
  writer.write_file("shard.h5", pieces);
  writer.commit({{"state", "{}"}}, 0);
  const CheckpointReader r(path);
  EXPECT_GT(r.attribute("catalog").size(), 65536u);
  EXPECT_EQ(r.names("lora").size(), names.size());
  std::vector<float> out(5);
  r.read("lora", names.back(), {0}, {5}, out.data());
  EXPECT_EQ(out, b_);
}

TEST_F(Checkpoint, KeepLastRemovesOnlyOlderCompleteCheckpoints) {
  save(1);
  save(2);
  fs::create_directories(checkpoint_dir(dir_.string(), 9) + ".tmp");  // an interrupted save
  save(3, 2);
  EXPECT_FALSE(fs::exists(checkpoint_dir(dir_.string(), 1)));
  EXPECT_TRUE(fs::exists(checkpoint_dir(dir_.string(), 2)));
  EXPECT_EQ(latest_checkpoint(dir_.string()), checkpoint_dir(dir_.string(), 3));
}

TEST(Checksum, IsXxh3SixtyFourBits) {
  // Reference values from python-xxhash 3 (xxhash.xxh3_64_intdigest).
  EXPECT_EQ(h5::checksum("", 0), 0x2D06800538D394C2ull);
  EXPECT_EQ(h5::checksum("spin checkpoint", 15), 0x4642E107F9391F39ull);
  const float values[4] = {1, 2, 3, 4};  // the bytes of a float32 tensor
  EXPECT_EQ(h5::checksum(values, sizeof values), 0xA82F522EC4510DB4ull);
}

TEST_F(Checkpoint, AFlippedByteIsACheckSumErrorNamingFileAndTensor) {
  const std::string path = save(1);
  // Flip one float of piece 2 of "w" in place: find its bytes (values 3..11) in the file.
  const std::string file = path + "/shard.h5";
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const float marker = 7.0f;
  const std::string needle(reinterpret_cast<const char*>(&marker), 4);
  const auto at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 0x01;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  const CheckpointReader r(path);
  std::vector<float> out(12);
  const std::string e = error_of([&] { r.read("policy", "w", {0, 0}, {4, 3}, out.data()); });
  EXPECT_NE(e.find("shard.h5: checksum mismatch in tensor policy/w#1"), std::string::npos) << e;
}

TEST_F(Checkpoint, MissingShardTruncatedFileAndNewerVersionAreClearErrors) {
  const std::string path = save(1);
  std::vector<float> out(12);
  fs::copy_file(path + "/shard.h5", dir_ / "shard.bak");
  fs::resize_file(path + "/shard.h5", fs::file_size(path + "/shard.h5") / 2);
  const CheckpointReader truncated(path);
  EXPECT_FALSE(error_of([&] { truncated.read("policy", "w", {0, 0}, {4, 3}, out.data()); }).empty());
  fs::remove(path + "/shard.h5");
  const std::string missing = error_of([&] { truncated.read("policy", "w", {0, 0}, {4, 3}, out.data()); });
  EXPECT_NE(missing.find("shard.h5: missing"), std::string::npos) << missing;

  // An index from a future spin.
  {
    h5::File f = h5::File::create(dir_.string() + "/future_index.h5");
    f.write_string_attribute("spin_checkpoint_version", "99");
    f.write_string_attribute("catalog", "{}");
  }
  fs::create_directories(dir_ / "future");
  fs::rename(dir_ / "future_index.h5", dir_ / "future" / "index.h5");
  EXPECT_NE(error_of([&] { CheckpointReader r((dir_ / "future").string()); }).find("version 99 is newer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { CheckpointReader r((dir_ / "nowhere").string()); }).find("nowhere: no such checkpoint"),
            std::string::npos);
  // A directory without an index, said of what is there: one of shard files never committed, a Hugging Face
  // model, anything else.
  fs::create_directories(dir_ / "uncommitted");
  std::ofstream((dir_ / "uncommitted" / "shard_tp0_pp0_dp0.h5").string()) << "x";
  EXPECT_NE(error_of([&] {
              CheckpointReader r((dir_ / "uncommitted").string());
            }).find("uncommitted/index.h5: missing (the checkpoint is incomplete)"),
            std::string::npos);
  fs::create_directories(dir_ / "hf");
  std::ofstream((dir_ / "hf" / "config.json").string()) << "{}";
  EXPECT_NE(error_of([&] {
              CheckpointReader r((dir_ / "hf").string());
            }).find("hf: a Hugging Face model directory, not a spin checkpoint (spin ckpt import-hf converts one"),
            std::string::npos);
  fs::create_directories(dir_ / "empty");
  EXPECT_NE(error_of([&] {
              CheckpointReader r((dir_ / "empty").string());
            }).find("empty: not a spin checkpoint (no index.h5, no shard files)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { CheckpointReader r("/dev/null"); }).find("/dev/null: not a checkpoint (a device"),
            std::string::npos);
}

// HDF5 holds a small dataset's bytes and the file's metadata in its caches until the close: a disk
// that fills after the create shows only there -- which must be an error naming the file, not a shard
// committed that its index cannot read.
TEST_F(Checkpoint, AFullDiskIsAnErrorWhenTheFileCloses) {
  const std::vector<float> values(16, 1.0f);
  const std::string path = (dir_ / "shard.h5").string();
  std::string error;
  {
    const FileSizeLimit limit(1024);
    error = error_of([&] {
      h5::File f = h5::File::create(path);  // the superblock: under the limit
      f.write_floats("policy/w", {4, 4}, values.data());
      f.write_string_attribute("catalog", std::string(2048, 'x'));
      f.close();
    });
  }
  EXPECT_NE(error.find(path + ": HDF5 could not write its metadata and close it (a full disk?)"), std::string::npos)
      << error;
}

TEST_F(Checkpoint, VerifyFindsCorruptionGapsAndOverlaps) {
  EXPECT_TRUE(CheckpointReader(save(1)).verify().empty());
  // A gap (row 3 of "w" nowhere) and an overlap (row 0 of "n" twice), streamed piece by piece.
  parallel::SelfCommunicator world;
  CheckpointWriter writer(world, checkpoint_dir(dir_.string(), 2));
  writer.begin_file("a.h5");
  writer.add_piece({"policy", "w", {4, 3}, {0, 0}, {3, 3}, a_.data()});
  writer.add_piece({"policy", "n", {5}, {0}, {3}, b_.data()});
  writer.end_file();
  writer.write_file("b.h5", {{"policy", "n", {5}, {2}, {3}, b_.data() + 2}});
  writer.commit({}, 0);
  const CheckpointReader r(checkpoint_dir(dir_.string(), 2));
  const std::vector<std::string> problems = r.verify();
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0], "policy/n: pieces a.h5:policy/n and b.h5:policy/n overlap");
  EXPECT_EQ(problems[1], "policy/n: the pieces hold 6 of its 5 values");
  EXPECT_EQ(problems[2], "policy/w: the pieces hold 9 of its 12 values");
}

TEST_F(Checkpoint, MergedIsOneFileThatLoadsLikeTheShards) {
  const CheckpointReader sharded(save(4));
  const std::string merged = (dir_ / "merged.h5").string();
  merge_checkpoint(sharded, merged);
  const CheckpointReader r(merged);
  EXPECT_EQ(r.attribute("state"), "{\"step\": 4}");
  EXPECT_EQ(r.read_all("policy", "w"), a_);
  EXPECT_EQ(r.read_all("policy", "n"), b_);
  EXPECT_EQ(r.pieces("policy", "w").size(), 1u);
  EXPECT_TRUE(r.verify().empty());
  // Whole datasets in the file itself.
  std::vector<float> w(12);
  h5::File::open_read(merged).read_floats_verified("policy/w", {4, 3}, w.data());
  EXPECT_EQ(w, a_);
}

}  // namespace
}  // namespace spin::ckpt
