#include "core/json_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/scratch_dir.h"
#include "common/test_util.h"

namespace spin {
namespace {

using testing::error_of;

TEST(TextFiles, WrittenAndReadBack) {
  const testing::ScratchDir dir("text_files");
  const std::string path = (dir.path() / "latest").string();
  write_text_file(path, "step_00000004\n");
  write_text_file(path, "step_00000008\n");  // replaced, not appended
  EXPECT_EQ(read_text_file(path), "step_00000008\n");
}

// /dev/full takes the open and fails every write with ENOSPC: what a full disk does to a small file,
// whose bytes sit in the stream's buffer -- the stream looks good until the close writes them.
TEST(TextFiles, AFullDiskIsAnErrorNamingTheFile) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  const std::string full_disk = error_of([] { write_text_file("/dev/full", "step_00000004\n"); });
  EXPECT_NE(full_disk.find("/dev/full: write failed (a full disk or an I/O error?)"), std::string::npos) << full_disk;

  std::ofstream out("/dev/full");
  out << "{\"examples\": 3}\n";
  ASSERT_TRUE(out.good());  // buffered: nothing has reached the file yet
  const std::string closed = error_of([&] { close_checked(out, "/dev/full"); });
  EXPECT_NE(closed.find("/dev/full: write failed"), std::string::npos) << closed;
}

TEST(TextFiles, AFileThatCannotBeCreatedIsAnErrorNamingIt) {
  const std::string missing = error_of([] { write_text_file("/nonexistent-dir/latest", "x"); });
  EXPECT_NE(missing.find("/nonexistent-dir/latest: cannot create"), std::string::npos) << missing;
}

}  // namespace
}  // namespace spin
