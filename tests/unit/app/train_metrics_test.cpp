#include "app/train_metrics.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/file_size_limit.h"
#include "common/scratch_dir.h"
#include "common/test_util.h"

namespace spin::app {
namespace {

using testing::error_of;
using testing::FileSizeLimit;

std::string contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const std::string kStep1 = "{\"kind\": \"train\", \"step\": 1, \"loss\": 0.69}\n";
const std::string kStep2 = "{\"kind\": \"train\", \"step\": 2, \"loss\": 0.68}\n";
const std::string kStep3 = "{\"kind\": \"train\", \"step\": 3, \"loss\": 0.67}\n";

// A resumed run keeps the lines up to its step, redoes the later ones, and drops what a killed run left
// half-written -- a line cut off anywhere, in its "step" too -- instead of failing on it.
TEST(MetricsFile, AResumedRunKeepsTheLinesUpToItsStep) {
  const testing::ScratchDir dir("metrics");
  const std::string path = dir.file("metrics.jsonl");
  write_file(path, kStep1 + "{\"kind\": \"train\", \"step\": 2, \"lo\n" + kStep2 + kStep3 +
                       "{\"kind\": \"train\", \"step\": ");
  {
    MetricsFile file(path, 2);
    EXPECT_EQ(contents(path), kStep1 + kStep2);
    file.append("{\"kind\": \"train\", \"step\": 3, \"loss\": 0.5}\n");
  }
  EXPECT_EQ(contents(path), kStep1 + kStep2 + "{\"kind\": \"train\", \"step\": 3, \"loss\": 0.5}\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  { MetricsFile fresh(path, 0); }  // a fresh run starts empty
  EXPECT_EQ(contents(path), "");
}

// /dev/full takes the open and fails every write with ENOSPC.
TEST(MetricsFile, AFullDiskIsAnErrorNamingTheFile) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  SftMetricsLog log("/dev/full", "", 0);
  train::StepMetrics m;
  m.loss = 0.5;
  const std::string error = error_of([&] { log.step(1, 1, m, 100.0, 1.0); });
  EXPECT_NE(error.find("/dev/full: write failed (a full disk or an I/O error?)"), std::string::npos) << error;
}

// The lines a resumed run keeps are written beside the file: a disk too full for them leaves the old
// file whole (it was truncated, and the lines lost, when they were written into the file itself).
TEST(MetricsFile, AResumeOnAFullDiskLeavesTheFileWhole) {
  const testing::ScratchDir dir("metrics");
  const std::string path = dir.file("metrics.jsonl");
  std::string lines;
  for (int step = 1; step <= 40; ++step) lines += "{\"kind\": \"train\", \"step\": " + std::to_string(step) + "}\n";
  write_file(path, lines);
  std::string error;
  {
    const FileSizeLimit limit(256);
    error = error_of([&] { MetricsFile file(path, 30); });
  }
  EXPECT_NE(error.find(path + ".tmp: write failed"), std::string::npos) << error;
  EXPECT_EQ(contents(path), lines);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// A pipe (or /dev/null) resumed: written in place -- the kept lines renamed over it had made it a regular file.
TEST(MetricsFile, APipeIsWrittenInPlaceEvenOnAResume) {
  const testing::ScratchDir dir("metrics");
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string read;
  std::thread reader([&] { read = contents(fifo); });
  {
    MetricsFile file(fifo, 2);
    file.append(kStep3);
  }
  reader.join();
  EXPECT_EQ(read, kStep3);
  EXPECT_EQ(std::filesystem::status(fifo).type(), std::filesystem::file_type::fifo);
}

TEST(MetricsLog, AFullDiskIsAnErrorNamingTheTensorBoardFile) {
  const testing::ScratchDir dir("metrics");
  SftMetricsLog log("", dir.file("tensorboard"), 0);
  train::StepMetrics m;
  std::string error;
  {
    const FileSizeLimit limit(512);
    error = error_of([&] {
      for (int step = 1; step <= 20; ++step) log.step(1, step, m, 100.0, 1.0);
    });
  }
  EXPECT_NE(error.find("/tensorboard/events.out.tfevents."), std::string::npos) << error;
  EXPECT_NE(error.find(": write failed (a full disk or an I/O error?)"), std::string::npos) << error;
}

}  // namespace
}  // namespace spin::app
