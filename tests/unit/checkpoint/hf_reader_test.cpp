#include "checkpoint/hf_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace spin::ckpt {
namespace {

namespace fs = std::filesystem;

class HfReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spin_hf_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::vector<float> a_ = {1, 2, 3, 4};
  std::vector<float> b_ = {5, 6};
};

TEST_F(HfReaderTest, FollowsTheShardIndex) {
  write_safetensors((dir_ / "model-00001-of-00002.safetensors").string(), {{"a", DType::BF16, {2, 2}, a_.data()}});
  write_safetensors((dir_ / "model-00002-of-00002.safetensors").string(), {{"b", DType::F32, {2}, b_.data()}});
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                             "b": "model-00002-of-00002.safetensors"}})";
  Tensor a = Tensor::zeros({1, 2});
  Tensor b = Tensor::zeros({2});
  HfReader reader(dir_.string());
  reader.load({{"a", a, {2, 2}, 0, 1, 1}, {"b", b, {2}, -1, 0, 0}});
  EXPECT_EQ(a.f32()[0], 3.0f);
  EXPECT_EQ(a.f32()[1], 4.0f);
  EXPECT_EQ(b.f32()[1], 6.0f);
  Tensor c = Tensor::zeros({2});
  EXPECT_THROW(reader.load({{"c", c, {2}, -1, 0, 0}}), Error);
}

TEST_F(HfReaderTest, MissingWeightsAndBadIndexAreErrors) {
  EXPECT_THROW(HfReader((dir_ / "absent").string()), Error);
  EXPECT_THROW(HfReader(dir_.string()), Error);  // no weights at all
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map": {"a": "gone.safetensors"}})";
  HfReader reader(dir_.string());
  Tensor a = Tensor::zeros({2});
  try {
    reader.load({{"a", a, {2}, -1, 0, 0}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gone.safetensors: cannot open"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace spin::ckpt
