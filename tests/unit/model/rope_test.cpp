// RoPE tables (model/rope.h) with rope_scaling: llama3's inverse frequencies equal what Hugging
// Face's _compute_llama3_parameters gives in torch float32 (the hex constants below: that
// function's code, from transformers' modeling_rope_utils, run with python3-torch at head_dim 16, theta 500000, factor
// 8, low_freq_factor 1, high_freq_factor 8, original context 256: two frequencies kept, two interpolated, four divided
// by the factor), and at Llama 3.1's parameters; yarn's likewise (tests/data/yarn_oracle.py); linear divides every
// frequency by the factor; and the tables' angles are the positions times those frequencies.
#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/test_util.h"

namespace spin::model {
namespace {

RopeScaling llama3(float factor, float low_freq_factor, float high_freq_factor, std::int64_t original) {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = factor;
  s.low_freq_factor = low_freq_factor;
  s.high_freq_factor = high_freq_factor;
  s.original_max_position_embeddings = original;
  return s;
}

TEST(RopeTable, Llama3ScalingMatchesHuggingFaceBitwise) {
  const RopeScaling s = llama3(8.0f, 1.0f, 8.0f, 256);
  const std::vector<float> plain = {0x1.0p+0f,       0x1.8d276p-3f,  0x1.34119p-5f,   0x1.ddee9ep-8f,
                                    0x1.72ba42p-10f, 0x1.1f91fp-12f, 0x1.be2188p-15f, 0x1.5a0f4ep-17f};
  const std::vector<float> scaled = {0x1.0p+0f,       0x1.883ec2p-3f, 0x1.d80664p-8f,  0x1.ddee9ep-11f,
                                     0x1.72ba42p-13f, 0x1.1f91fp-15f, 0x1.be2188p-18f, 0x1.5a0f4ep-20f};
  EXPECT_EQ(rope_inv_freq(16, 500000.0f, std::nullopt), plain);
  EXPECT_EQ(rope_inv_freq(16, 500000.0f, s), scaled);
}

// Llama 3.1 8B's own parameters (head_dim 128, theta 500000, factor 8, 1 / 4, 8192): 64
// frequencies, six of them interpolated, against the same torch computation.
TEST(RopeTable, Llama31ParametersMatchHuggingFaceBitwise) {
  const RopeScaling s = llama3(8.0f, 1.0f, 4.0f, 8192);
  const std::vector<float> hf = {
      0x1.p+0f,        0x1.a11582p-1f,  0x1.53c38cp-1f,  0x1.14c708p-1f,  0x1.c2ef78p-2f,  0x1.6f56fap-2f,
      0x1.2b3dc6p-2f,  0x1.e788c2p-3f,  0x1.8d2760p-3f,  0x1.438740p-3f,  0x1.078d40p-3f,  0x1.ad6338p-4f,
      0x1.5dc95ap-4f,  0x1.1cf130p-4f,  0x1.d03ccep-5f,  0x1.7a2d08p-5f,  0x1.341190p-5f,  0x1.f5ea7ep-6f,
      0x1.98de92p-6f,  0x1.4d1272p-6f,  0x1.0f5386p-6f,  0x1.ba0dd8p-7f,  0x1.681adap-7f,  0x1.2558fep-7f,
      0x1.ddee9ep-8f,  0x1.8554ecp-8f,  0x1.3d2804p-8f,  0x1.025c6ap-8f,  0x1.a4ee40p-9f,  0x1.1bfa0cp-9f,
      0x1.67a23ap-10f, 0x1.c12f3cp-11f, 0x1.132ba4p-11f, 0x1.47e210p-12f, 0x1.765ba4p-13f, 0x1.90d10cp-14f,
      0x1.46831ap-14f, 0x1.09fb7ep-14f, 0x1.b15902p-15f, 0x1.610332p-15f, 0x1.1f91f0p-15f, 0x1.d484dep-16f,
      0x1.7da9e8p-16f, 0x1.36e8eap-16f, 0x1.fa8b86p-17f, 0x1.9ca3eap-17f, 0x1.5024d6p-17f, 0x1.11d41ep-17f,
      0x1.be2188p-18f, 0x1.6b6d0ep-18f, 0x1.280d96p-18f, 0x1.e25700p-19f, 0x1.88ec20p-19f, 0x1.4014d2p-19f,
      0x1.04be68p-19f, 0x1.a8d010p-20f, 0x1.5a0f4ep-20f, 0x1.19e800p-20f, 0x1.cb4a9ap-21f, 0x1.76258ep-21f,
      0x1.30c94ep-21f, 0x1.f09184p-22f, 0x1.948360p-22f, 0x1.4985fep-22f};
  EXPECT_EQ(rope_inv_freq(128, 500000.0f, s), hf);
}

RopeScaling yarn(float factor, std::int64_t original) {
  RopeScaling s;
  s.type = RopeScaling::Type::Yarn;
  s.factor = factor;
  s.original_max_position_embeddings = original;
  return s;
}

// YaRN's frequencies against transformers' _compute_yarn_parameters run in torch float32
// (tests/data/yarn_oracle.py prints these constants): at head_dim 16, theta 10000, an original
// context of 64, the ramp runs over dims 0..3 (one frequency kept, two blended, five divided by
// the factor); with truncate false and betas 16 / 2 over 0..1.414; at factor 40; and at Qwen3's
// YaRN setting (head_dim 128, theta 1e6, factor 4, original 32768: the ramp over dims 23..40).
TEST(RopeTable, YarnScalingMatchesHuggingFaceBitwise) {
  EXPECT_EQ(rope_inv_freq(16, 10000.0f, yarn(4.0f, 64)),
            (std::vector<float>{0x1.p+0f, 0x1.e5b9dp-3f, 0x1.999998p-5f, 0x1.030dc6p-7f, 0x1.47ae14p-9f, 0x1.9e7c7p-11f,
                                0x1.0624dep-12f, 0x1.4b96cp-14f}));
  RopeScaling untruncated = yarn(4.0f, 64);
  untruncated.truncate = false;
  untruncated.beta_fast = 16;
  untruncated.beta_slow = 2;
  EXPECT_EQ(rope_inv_freq(16, 10000.0f, untruncated),
            (std::vector<float>{0x1.p+0f, 0x1.301ba8p-3f, 0x1.99999ap-6f, 0x1.030dc6p-7f, 0x1.47ae14p-9f, 0x1.9e7c7p-11f,
                                0x1.0624dep-12f, 0x1.4b96cp-14f}));
  EXPECT_EQ(rope_inv_freq(16, 10000.0f, yarn(40.0f, 64)),
            (std::vector<float>{0x1.p+0f, 0x1.b5273ap-3f, 0x1.1eb85p-5f, 0x1.9e7c7p-11f, 0x1.0624dep-12f, 0x1.4b96cp-14f,
                                0x1.a36e2ep-16f, 0x1.094566p-17f}));
  const std::vector<float> qwen3 = {
      0x1.p+0f,        0x1.9c975ap-1f,  0x1.4c7bcp-1f,   0x1.0beddep-1f,  0x1.afd136p-2f,  0x1.5bf9fep-2f,
      0x1.186a08p-2f,  0x1.c3f06ap-3f,  0x1.6c310ep-3f,  0x1.257b22p-3f,  0x1.d8ffacp-4f,  0x1.7d298cp-4f,
      0x1.33281ap-4f,  0x1.ef0a26p-5f,  0x1.8eec7ep-5f,  0x1.41783ap-5f,  0x1.030dc6p-5f,  0x1.a1835p-6f,
      0x1.507316p-6f,  0x1.0f201p-6f,   0x1.b4f7e4p-7f,  0x1.6020a4p-7f,  0x1.1bc25ap-7f,  0x1.c9548cp-8f,
      0x1.6046eep-8f,  0x1.0ec71p-8f,   0x1.9f4aap-9f,   0x1.3da49p-9f,   0x1.e483bep-10f, 0x1.70578p-10f,
      0x1.17040ep-10f, 0x1.a4fb7p-11f,  0x1.3c1d64p-11f, 0x1.d832dp-12f,  0x1.5e7a04p-12f, 0x1.02387cp-12f,
      0x1.79277cp-13f, 0x1.107c7p-13f,  0x1.847d34p-14f, 0x1.103a14p-14f, 0x1.74eea6p-15f, 0x1.2c8648p-15f,
      0x1.e459c4p-16f, 0x1.864f6ap-16f, 0x1.3a8748p-16f, 0x1.faeba8p-17f, 0x1.987f7cp-17f, 0x1.492f56p-17f,
      0x1.094564p-17f, 0x1.ab8882p-18f, 0x1.58863ap-18f, 0x1.15a1dap-18f, 0x1.bf749ep-19f, 0x1.68941cp-19f,
      0x1.2291c6p-19f, 0x1.d44e64p-20f, 0x1.796182p-20f, 0x1.301c04p-20f, 0x1.ea20ep-21f,  0x1.8af756p-21f,
      0x1.3e47c8p-21f, 0x1.007bd8p-21f, 0x1.9d5ef2p-22f, 0x1.4d1c98p-22f};
  // Torch's CPU pow (Sleef's, within an ulp) and the C library's powf, which spin's frequencies
  // use with or without scaling, round theta^(74/128) apart in its last bit: one frequency of the
  // 64 is an ulp off; the rest are bitwise.
  const std::vector<float> spin = rope_inv_freq(128, 1e6f, yarn(4.0f, 32768));
  ASSERT_EQ(spin.size(), qwen3.size());
  int ulp_off = 0;
  for (std::size_t i = 0; i < spin.size(); ++i) {
    if (spin[i] == qwen3[i]) continue;
    ++ulp_off;
    EXPECT_TRUE(spin[i] == std::nextafter(qwen3[i], 0.0f) || spin[i] == std::nextafter(qwen3[i], 1.0f))
        << i << ": " << spin[i] << " against " << qwen3[i];
  }
  EXPECT_EQ(ulp_off, 1);
}

// The tables carry YaRN's attention factor on cos and sin, as the rotary embedding scales them.
TEST(RopeTable, YarnTablesScaleCosAndSinByTheAttentionFactor) {
  RopeScaling s = yarn(4.0f, 64);
  s.attention_factor = 1.138629436111989f;
  const std::vector<float> inv = rope_inv_freq(16, 10000.0f, s);
  const RopeTable table(16, 128, 10000.0f, Device::Cpu, s);
  for (std::int64_t p : {0, 1, 63, 64, 127}) {
    for (std::size_t i = 0; i < inv.size(); ++i) {
      const float angle = static_cast<float>(p) * inv[i];
      EXPECT_EQ(table.cos()[p * 8 + static_cast<std::int64_t>(i)],
                static_cast<float>(std::cos(double{angle})) * s.attention_factor);
      EXPECT_EQ(table.sin()[p * 8 + static_cast<std::int64_t>(i)],
                static_cast<float>(std::sin(double{angle})) * s.attention_factor);
    }
  }
}

TEST(RopeTable, LinearScalingDividesEveryFrequencyAndTheTableFollows) {
  RopeScaling s;
  s.factor = 4.0f;
  const std::vector<float> plain = rope_inv_freq(8, 10000.0f, std::nullopt);
  const std::vector<float> linear = rope_inv_freq(8, 10000.0f, s);
  for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(linear[i], plain[i] / 4.0f);
  const RopeTable table(8, 32, 10000.0f, Device::Cpu, s);
  for (std::int64_t p : {0, 1, 17, 31}) {
    for (std::size_t i = 0; i < linear.size(); ++i) {
      const float angle = static_cast<float>(p) * linear[i];
      EXPECT_EQ(table.cos()[p * 4 + static_cast<std::int64_t>(i)], static_cast<float>(std::cos(double{angle})));
      EXPECT_EQ(table.sin()[p * 4 + static_cast<std::int64_t>(i)], static_cast<float>(std::sin(double{angle})));
    }
  }
}

// The tables hold 4096 positions, or the model's limit when fewer, and grow by doubling as
// sequences need more -- to values bitwise those a table of every position holds; asking past
// the limit is an error.
TEST(RopeTable, GrowsToTheSequencesItServesWithTheSameValues) {
  EXPECT_EQ(RopeTable::rows_for(0, 1'024'000), 4096);
  EXPECT_EQ(RopeTable::rows_for(4097, 1'024'000), 8192);
  EXPECT_EQ(RopeTable::rows_for(20'000, 1'024'000), 32768);
  EXPECT_EQ(RopeTable::rows_for(1'000'000, 1'024'000), 1'024'000);
  EXPECT_EQ(RopeTable::rows_for(10, 96), 96);
  RopeTable grown(16, 20'000, 1e6f);
  EXPECT_EQ(grown.positions(), 4096);
  EXPECT_EQ(grown.bytes(), 2u * 4096 * 8 * 4);
  const std::vector<float> first(grown.cos(), grown.cos() + 4096 * 8);
  grown.cover(4000);
  EXPECT_EQ(grown.positions(), 4096);
  grown.cover(9000);
  EXPECT_EQ(grown.positions(), 16384);
  grown.cover(20'000);
  EXPECT_EQ(grown.positions(), 20'000);
  EXPECT_EQ(std::vector<float>(grown.cos(), grown.cos() + 4096 * 8), first);
  const std::vector<float> inv = rope_inv_freq(16, 1e6f, std::nullopt);
  for (std::int64_t p : {0, 4095, 4096, 9001, 16383, 16384, 19'999}) {
    for (std::int64_t i = 0; i < 8; ++i) {
      const float angle = static_cast<float>(p) * inv[static_cast<std::size_t>(i)];
      EXPECT_EQ(grown.cos()[p * 8 + i], static_cast<float>(std::cos(double{angle}))) << p;
      EXPECT_EQ(grown.sin()[p * 8 + i], static_cast<float>(std::sin(double{angle}))) << p;
    }
  }
  EXPECT_NE(testing::error_of([&] { grown.cover(20'001); }).find("position 20000 is beyond the RoPE tables' 20000"),
            std::string::npos);
}

// LongRoPE: the short factors' table for positions [0, L) (L = 100 here), computed at once, then
// the long factors' for positions [0, limit) from row L on, grown only once a long sequence asks
// (rows_held counts both as spin plan does); every value is 1 / (factor_i theta^(2i / d)) times
// the position, its cos and sin times the attention factor.
TEST(RopeTable, LongRopeHoldsTheShortTableThenTheLongOneFromRowL) {
  RopeScaling s;
  s.type = RopeScaling::Type::LongRope;
  s.original_max_position_embeddings = 100;
  s.short_factor = {1.0f, 1.5f, 2.0f, 4.0f};
  s.long_factor = {3.0f, 9.0f, 27.0f, 81.0f};
  s.attention_factor = 1.25f;
  RopeTable table(8, 10'000, 1e4f, Device::Cpu, s);
  EXPECT_EQ(table.positions(), 100);
  EXPECT_EQ(table.long_positions(), 0);
  EXPECT_EQ(table.long_row(7), 107);
  EXPECT_EQ(RopeTable::rows_held(100, 10'000, s), 100);
  EXPECT_EQ(RopeTable::rows_held(101, 10'000, s), 100 + 4096);
  EXPECT_EQ(RopeTable::rows_held(9000, 10'000, s), 100 + 10'000);
  table.cover(60);
  EXPECT_EQ(table.bytes(), 2u * 100 * 4 * 4);
  table.cover(100, 5000);
  EXPECT_EQ(table.long_positions(), 8192);
  EXPECT_EQ(table.bytes(), 2u * (100 + 8192) * 4 * 4);
  for (const bool long_factors : {false, true}) {
    const std::vector<float> inv = rope_inv_freq(8, 1e4f, s, long_factors);
    const std::vector<float>& factor = long_factors ? s.long_factor : s.short_factor;
    for (std::int64_t p : {0, 1, 99, 4000, 8191}) {
      if (!long_factors && p >= 100) continue;
      const std::int64_t row = long_factors ? table.long_row(p) : p;
      for (std::int64_t i = 0; i < 4; ++i) {
        const auto k = static_cast<std::size_t>(i);
        EXPECT_EQ(inv[k], 1.0f / (factor[k] * std::pow(1e4f, static_cast<float>(2 * i) / 8.0f)));
        const float angle = static_cast<float>(p) * inv[k];
        EXPECT_EQ(table.cos()[row * 4 + i], static_cast<float>(std::cos(double{angle})) * 1.25f) << p;
        EXPECT_EQ(table.sin()[row * 4 + i], static_cast<float>(std::sin(double{angle})) * 1.25f) << p;
      }
    }
  }
  EXPECT_NE(testing::error_of([&] { table.cover(101); }).find("beyond LongRoPE's short factors' 100 positions"),
            std::string::npos);
  RopeTable plain(8, 10'000, 1e4f);
  EXPECT_NE(testing::error_of([&] { plain.cover(10, 10); }).find("long RoPE factors asked of a table without them"),
            std::string::npos);
}

}  // namespace
}  // namespace spin::model
