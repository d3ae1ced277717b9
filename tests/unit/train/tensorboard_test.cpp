#include "train/tensorboard.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/scratch_dir.h"

namespace spin::train {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the standard check value.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[static_cast<std::size_t>(i)] = static_cast<char>(i);
  EXPECT_EQ(crc32c(ascending.data(), 32), 0x46DD794Eu);
}

TEST(TensorBoard, RecordsAreFramedAndChecksummed) {
  const testing::ScratchDir scratch("spin_tb");
  const auto dir = scratch / "events";
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    w.scalar("train/loss", 0.5, 7);
    path = w.path();
  }
  EXPECT_NE(path.find("events.out.tfevents."), std::string::npos);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::size_t at = 0;
  int records = 0;
  std::string last;
  while (at < bytes.size()) {
    ASSERT_LE(at + 12, bytes.size());
    std::uint64_t length = 0;
    std::uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + at, 8);
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, masked_crc32c(bytes.data() + at, 8));
    ASSERT_LE(at + 12 + length + 4, bytes.size());
    last = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, masked_crc32c(last.data(), last.size()));
    at += 12 + length + 4;
    ++records;
  }
  EXPECT_EQ(records, 2);
  EXPECT_NE(last.find("train/loss"), std::string::npos);
  const float half = 0.5f;
  EXPECT_NE(last.find(std::string(reinterpret_cast<const char*>(&half), 4)), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace spin::train
