#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "core/workspace.h"

namespace spin {
namespace {

TEST(Tensor, ZerosIsZeroedAndAligned) {
  const Tensor t = Tensor::zeros({3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw()) % 64, 0u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.f32()[i], 0.0f);
}

TEST(Tensor, ViewsShareStorageAndCloneDoesNot) {
  Tensor flat = Tensor::zeros({10});
  Tensor v = flat.view(4, {2, 3});
  v.f32()[0] = 7.0f;
  EXPECT_EQ(flat.f32()[4], 7.0f);
  Tensor c = flat.clone();
  c.f32()[4] = 1.0f;
  EXPECT_EQ(flat.f32()[4], 7.0f);
  EXPECT_EQ(v.size(-1), 3);
}

TEST(Tensor, BadViewsAndTypesAreErrors) {
  const Tensor flat = Tensor::zeros({10});
  EXPECT_THROW(flat.view(5, {2, 3}), Error);
  EXPECT_THROW(flat.data<std::int32_t>(), Error);
  EXPECT_THROW(Tensor().raw(), Error);
  Tensor other = Tensor::zeros({9});
  EXPECT_THROW(other.copy_from(flat), Error);
}

// The shapes in these messages are streamed only when a check fails (shape_text), and read as shape_str writes them.
TEST(Tensor, ErrorsNameTheShapes) {
  EXPECT_EQ(shape_str({2, 3}), "[2, 3]");
  EXPECT_EQ(cat(shape_text({4, 5, 6})), "[4, 5, 6]");
  EXPECT_EQ(cat(shape_text({})), "[]");
  const Tensor flat = Tensor::zeros({10});
  EXPECT_EQ(testing::error_of([&] {
              flat.view(5, {2, 3});
            }),
            "view of 6 elements at offset 5 exceeds a tensor of shape [10]");
  EXPECT_EQ(testing::error_of([&] { Tensor::zeros({9}).copy_from(flat); }),
            "copy from a F32 tensor of shape [10] into a F32 tensor of shape [9]");
  EXPECT_EQ(testing::error_of([&] { shape_numel({3, -1}); }), "negative dimension in shape [3, -1]");
  EXPECT_EQ(testing::error_of([&] { flat.size(1); }), "dimension 1 out of range for shape [10]");
}

// Several arrays of different element types in one buffer: each at an 8-byte boundary, its values
// as given (empty ones too: a pointer inside the buffer); the buffer reused while they fit and
// doubled when they outgrow it.
TEST(PackedUpload, ArraysOfMixedTypesInOneAlignedBuffer) {
  PackedUpload packed;
  const std::vector<std::int32_t> ids = {5, -3, 7};
  const std::vector<std::uint8_t> flags = {1, 0, 1, 1, 0};
  const std::vector<std::int64_t> none;
  const std::vector<double> values = {0.5, -2.25};
  const auto [a, b, c, d] = packed.upload(Device::Cpu, ids, flags, none, values);
  const auto* base = static_cast<const std::uint8_t*>(packed.buffer().raw());
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(a), base);
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(b), base + 16);  // 12 bytes, rounded to 16
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(c), base + 24);
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(d), base + 24);  // after the empty array
  EXPECT_EQ(std::vector<std::int32_t>(a, a + 3), ids);
  EXPECT_EQ(std::vector<std::uint8_t>(b, b + 5), flags);
  EXPECT_EQ(std::vector<double>(d, d + 2), values);
  EXPECT_EQ(packed.buffer().numel(), 40);

  const std::vector<std::int32_t> fewer = {9};
  const auto [e] = packed.upload(Device::Cpu, fewer);
  EXPECT_EQ(static_cast<const void*>(e), packed.buffer().raw());
  EXPECT_EQ(*e, 9);
  EXPECT_EQ(packed.buffer().numel(), 40);  // reused
  const std::vector<std::int32_t> more(11, 4);
  packed.upload(Device::Cpu, more);
  EXPECT_EQ(packed.buffer().numel(), 80);  // 48 bytes needed: twice the 40 held
}

}  // namespace
}  // namespace spin
