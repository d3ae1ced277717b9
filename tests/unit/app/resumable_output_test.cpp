// app/resumable_output.h: rounds appended and renamed at the end, resumed after the complete
// lines under the same fingerprint only, and the files that cannot be resumed refused by name.
#include "app/resumable_output.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/scratch_dir.h"
#include "common/test_util.h"

namespace spin::app {
namespace {

namespace fs = std::filesystem;

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct ResumableOutputTest : ::testing::Test {
  testing::ScratchDir scratch{"spin_resumable"};
  fs::path dir = scratch.path();
  OutputTarget out = output_target((dir / "out.jsonl").string(), "--output");
};

TEST(Fnv1a, KnownVectors) {
  EXPECT_EQ(fnv1a(""), 0xcbf29ce484222325ull);  // the offset basis
  EXPECT_EQ(fnv1a("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(fnv1a("bar", fnv1a("foo")), fnv1a("foobar")) << "continues from a hash";
}

TEST_F(ResumableOutputTest, LinesGoToThePartialFileAndTheLastRoundRenamesIt) {
  {
    ResumableOutput o(out, 7, 3);
    EXPECT_EQ(o.lines_done(), 0);
    EXPECT_TRUE(fs::exists(out.path + ".partial.run"));
    o.append("{\"a\": 1}\n{\"a\": 2}\n", 2);
    EXPECT_EQ(contents(out.path + ".partial"), "{\"a\": 1}\n{\"a\": 2}\n") << "written as each round ends";
    EXPECT_NE(testing::error_of([&] { o.finish(); }).find("2 of 3 lines written"), std::string::npos);
    o.append("{\"a\": 3}\n", 1);
    o.finish();
  }
  EXPECT_EQ(contents(out.path), "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n");
  EXPECT_FALSE(fs::exists(out.path + ".partial"));
  EXPECT_FALSE(fs::exists(out.path + ".partial.run"));
}

// A run stopped after two lines and half of a third goes on after the two, under the same
// fingerprint only; another's is refused and left as it was.
TEST_F(ResumableOutputTest, TheSameFingerprintGoesOnAfterTheCompleteLines) {
  {
    ResumableOutput o(out, 7, 3);
    o.append("{\"a\": 1}\n{\"a\": 2}\n", 2);
  }
  std::ofstream(out.path + ".partial", std::ios::app) << "{\"a\":";  // torn by a crash
  const std::string torn = contents(out.path + ".partial");
  EXPECT_NE(testing::error_of([&] { ResumableOutput(out, 8, 3); }).find("a partial output of another run"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { ResumableOutput(out, 7, 4); }).find("a partial output of another run"),
            std::string::npos)
      << "another number of lines";
  EXPECT_EQ(contents(out.path + ".partial"), torn) << "left alone";
  {
    ResumableOutput o(out, 7, 3);
    EXPECT_EQ(o.lines_done(), 2);
    EXPECT_EQ(contents(out.path + ".partial"), "{\"a\": 1}\n{\"a\": 2}\n") << "the torn line dropped";
    o.append("{\"a\": 3}\n", 1);
    o.finish();
  }
  EXPECT_EQ(contents(out.path), "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n");
}

TEST_F(ResumableOutputTest, PartialFilesThatCannotBeResumedAreRefusedByName) {
  std::ofstream(out.path + ".partial") << "{\"a\": 1}\n";
  EXPECT_NE(testing::error_of([&] { ResumableOutput(out, 7, 3); }).find("out.jsonl.partial: exists without"),
            std::string::npos)
      << "lines without the run that wrote them";
  const OutputTarget other = output_target((dir / "other.jsonl").string(), "--output");
  {
    ResumableOutput o(other, 9, 1);
    o.append("{\"a\": 1}\n{\"a\": 2}\n", 2);  // more than the run has
  }
  EXPECT_NE(testing::error_of([&] { ResumableOutput(other, 9, 1); }).find("holds 2 lines, more than the run's 1"),
            std::string::npos);
  // Without a complete line there is nothing to lose: whatever wrote it, a new output.
  std::ofstream(out.path + ".partial") << "{\"a\":";
  ResumableOutput fresh(out, 7, 3);
  EXPECT_EQ(fresh.lines_done(), 0);
  EXPECT_EQ(contents(out.path + ".partial"), "");
}

// Checked before any work: a directory, or a missing parent directory, named with the option.
TEST_F(ResumableOutputTest, OutputTargetsRefuseDirectoriesAndFollowLinks) {
  fs::create_directory(dir / "adir");
  const std::string is_dir = testing::error_of([&] { output_target((dir / "adir").string(), "--output"); });
  EXPECT_NE(is_dir.find("--output " + (dir / "adir").string() + ": a directory, where the output is a file"),
            std::string::npos)
      << is_dir;
  const std::string no_parent = testing::error_of([&] { output_target((dir / "no/out.jsonl").string(), "--output"); });
  EXPECT_NE(no_parent.find(": the parent directory " + (dir / "no").string() + " does not exist"), std::string::npos)
      << no_parent;
  // A link is written through: its target replaced, the link kept.
  fs::create_directory(dir / "real");
  fs::create_symlink(dir / "real" / "out.jsonl", dir / "link.jsonl");
  const OutputTarget linked = output_target((dir / "link.jsonl").string(), "--output");
  EXPECT_EQ(linked.path, (dir / "real" / "out.jsonl").string());
  EXPECT_FALSE(linked.in_place);
}

// A FIFO (as /dev/null, /dev/stdout) is written in place, lines as they come, and stays what it was: written
// beside and renamed over, it became a regular file -- /dev/null itself, run as root.
TEST_F(ResumableOutputTest, SpecialFilesAreWrittenInPlaceNeverReplaced) {
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string read;
  std::thread reader([&] { read = contents(fifo); });  // the writer's open waits for it
  {
    const OutputTarget target = output_target(fifo.string(), "--output");
    EXPECT_TRUE(target.in_place);
    ResumableOutput o(target, 7, 2);
    o.append("{\"a\": 1}\n", 1);
    o.append("{\"a\": 2}\n", 1);
    o.finish();
  }
  reader.join();
  EXPECT_EQ(read, "{\"a\": 1}\n{\"a\": 2}\n");
  EXPECT_EQ(fs::status(fifo).type(), fs::file_type::fifo);
  EXPECT_FALSE(fs::exists(fifo.string() + ".partial.run"));
}

}  // namespace
}  // namespace spin::app
