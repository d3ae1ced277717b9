#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "common/test_util.h"
#include "core/error.h"

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

}  // namespace
}  // namespace spin
