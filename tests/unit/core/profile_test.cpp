#include "core/profile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/scratch_dir.h"
#include "core/error.h"

namespace spin::profile {
namespace {

// Records what a device backend is told, as the CUDA backend's NVTX and profiler hooks would be.
class RecordingHooks final : public DeviceHooks {
 public:
  std::vector<std::string> calls;
  void push(const char* name) override { calls.push_back(std::string("push ") + name); }
  void pop() override { calls.push_back("pop"); }
  void start() override { calls.push_back("start"); }
  void stop() override { calls.push_back("stop"); }
};

nlohmann::json read(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<nlohmann::json> ranges(const nlohmann::json& trace) {
  std::vector<nlohmann::json> out;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "X") out.push_back(e);
  }
  return out;
}

// Only the window's ranges are written -- not one opened before it or still open after it --
// nested as they ran, with their arguments, as a Chrome trace; the backend sees every range
// and the window, balanced.
TEST(Profile, TheWindowsRangesAreWrittenAsAChromeTrace) {
  const testing::ScratchDir scratch("spin_profile");
  const std::string path = scratch.file("trace.json");
  RecordingHooks hooks;
  register_device_hooks(&hooks);
  { const Range before("before"); }
  EXPECT_FALSE(active());
  start(3);
  EXPECT_TRUE(active());
  auto open_across = std::make_unique<Range>("open across the end");
  {
    const Range outer("step", "step", 7);
    for (int mb = 0; mb < 2; ++mb) {
      const Range inner("forward", "mb", mb);
    }
  }
  stop(path);
  EXPECT_FALSE(active());
  open_across.reset();
  { const Range after("after"); }
  register_device_hooks(nullptr);

  const nlohmann::json trace = read(path);
  const auto got = ranges(trace);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].at("name"), "step");
  EXPECT_EQ(got[0].at("args").at("step"), 7);
  EXPECT_EQ(got[0].at("pid"), 3);
  for (int mb = 0; mb < 2; ++mb) {
    const auto& e = got[static_cast<std::size_t>(mb) + 1];
    EXPECT_EQ(e.at("name"), "forward");
    EXPECT_EQ(e.at("args").at("mb"), mb);
    EXPECT_GE(e.at("ts").get<double>(), got[0].at("ts").get<double>());
    EXPECT_LE(e.at("ts").get<double>() + e.at("dur").get<double>(),
              got[0].at("ts").get<double>() + got[0].at("dur").get<double>() + 1e-3);
  }
  EXPECT_LE(got[1].at("ts").get<double>() + got[1].at("dur").get<double>(), got[2].at("ts").get<double>() + 1e-3);
  EXPECT_EQ(hooks.calls, (std::vector<std::string>{"start", "push open across the end", "push step", "push forward",
                                                   "pop", "push forward", "pop", "pop", "stop", "pop"}));
}

TEST(Profile, AnUnwritableFileIsAnErrorNamingIt) {
  start(0);
  { const Range r("step"); }
  try {
    stop("/nonexistent-dir/rank0.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/rank0.json: cannot write the profile"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(active()) << "the window is closed either way";
}

}  // namespace
}  // namespace spin::profile
