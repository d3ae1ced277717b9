#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>

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

}  // namespace
}  // namespace spin
