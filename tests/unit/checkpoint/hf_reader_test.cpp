#include "checkpoint/hf_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <utility>

#include "checkpoint/hf_writer.h"
#include "checkpoint/safetensors.h"
#include "common/scratch_dir.h"
#include "common/test_util.h"
#include "core/error.h"
#include "core/json_file.h"

namespace spin::ckpt {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

class HfReaderTest : public ::testing::Test {
 protected:
  testing::ScratchDir scratch_{"spin_hf"};
  fs::path dir_ = scratch_.path();
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

// A bf16 shard (a frozen model's matrix): the rounding of the float32 values the same read gives a
// float32 shard -- of a TP shard, of a fused tensor's part, and from bf16 files exactly their values.
TEST_F(HfReaderTest, Bf16ShardsHoldTheRoundingOfTheFloat32Read) {
  const std::vector<float> values = {1.0f + 1.0f / 256, -2.7182818f, 3.1415927f, 1e-3f, 65504.5f, -0.0f};
  write_safetensors((dir_ / "model.safetensors").string(),
                    {{"w", DType::F32, {3, 2}, values.data()}, {"h", DType::BF16, {3, 2}, values.data()},
                     {"x.qk", DType::F32, {3, 2}, values.data()}});
  Tensor wide = Tensor::zeros({2, 2}), half = Tensor::zeros({2, 2}, DType::BF16);
  HfReader reader(dir_.string());
  reader.load({{"w", wide, {3, 2}, 0, 1, 2}, {"w", half, {3, 2}, 0, 1, 2}});
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(wide.f32()[i], values[static_cast<std::size_t>(2 + i)]) << i;
    EXPECT_EQ(half.bf16()[i], f32_to_bf16(wide.f32()[i])) << i;
  }
  Tensor from_bf16 = Tensor::zeros({3, 2}, DType::BF16), from_bf16_wide = Tensor::zeros({3, 2});
  reader.load({{"h", from_bf16, {3, 2}, -1, 0, 0}, {"h", from_bf16_wide, {3, 2}, -1, 0, 0}});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(bf16_to_f32(from_bf16.bf16()[i]), from_bf16_wide.f32()[i]) << i;
  // A part of a fused tensor (Phi-3's qkv) into a bf16 shard.
  const HfLayout layout{"", false, {{"qk", {{"q", 2}, {"k", 1}}, 1}}, {}, {}, {}, {}};
  Tensor k = Tensor::zeros({1, 2}, DType::BF16);
  HfReader(dir_.string(), layout).load({{"x.k", k, {1, 2}, -1, 0, 0}});
  EXPECT_EQ(k.bf16()[0], f32_to_bf16(values[4]));
  EXPECT_EQ(k.bf16()[1], f32_to_bf16(values[5]));
}

TEST_F(HfReaderTest, WrittenModelsShardAboveTheLimitAndReadBack) {
  const std::vector<HfTensor> tensors = {{"a", {2, 2}}, {"b", {2}}, {"c", {2}}};
  const std::vector<const float*> values = {a_.data(), b_.data(), b_.data()};
  const auto write = [&](const std::string& name, std::uint64_t limit) {
    write_hf_model((dir_ / name).string(), "{}", tensors, [&](std::size_t i) { return values[i]; }, DType::F32, limit);
    return dir_ / name;
  };
  // 16 + 8 + 8 bytes: one file under the default limit, three under a 15-byte limit (a tensor
  // larger than the limit gets a file of its own) and two under 20 (a and b cannot share, b and
  // c can).
  EXPECT_TRUE(fs::exists(write("one", kDefaultMaxShardBytes) / "model.safetensors"));
  const fs::path three = write("three", 15);
  EXPECT_TRUE(fs::exists(three / "model-00003-of-00003.safetensors"));
  const fs::path two = write("two", 20);
  EXPECT_TRUE(fs::exists(two / "model-00002-of-00002.safetensors"));
  EXPECT_FALSE(fs::exists(two / "model.safetensors"));
  EXPECT_EQ(SafetensorsFile((two / "model-00002-of-00002.safetensors").string()).names(),
            (std::vector<std::string>{"b", "c"}));
  for (const fs::path& dir : {dir_ / "one", three, two}) {
    Tensor a = Tensor::zeros({2, 2}), c = Tensor::zeros({2});
    HfReader(dir.string()).load({{"a", a, {2, 2}, -1, 0, 0}, {"c", c, {2}, -1, 0, 0}});
    EXPECT_EQ(std::vector<float>(a.f32(), a.f32() + 4), a_) << dir;
    EXPECT_EQ(std::vector<float>(c.f32(), c.f32() + 2), b_) << dir;
  }
}

// Phi-3's fused tensors: a layout whose "x.qkv" holds "x.q" (2 rows), "x.k" and "x.v" (1 row
// each). Written from spin's tensors, the file holds one [4, 2] tensor of their rows in order;
// read back, each tensor gets its rows -- a TP shard its share of them, a replicated tensor
// all -- under a prefix too.
TEST_F(HfReaderTest, FusedTensorsAreWrittenAsRowBlocksAndReadBackAsParts) {
  const HfLayout layout{"", false, {{"qkv", {{"q", 2}, {"k", 1}, {"v", 1}}, 1}}, {}, {}, {}, {}};
  const std::vector<float> q = {1, 2, 3, 4}, k = {5, 6}, v = {7, 8}, other = {9};
  const std::vector<HfTensor> tensors = {{"x.q", {2, 2}}, {"x.k", {1, 2}}, {"x.v", {1, 2}}, {"x.norm", {1}}};
  const std::vector<const float*> values = {q.data(), k.data(), v.data(), other.data()};
  const FileTensors files = fuse_tensors(layout, tensors, [&](std::size_t i) { return values[i]; });
  ASSERT_EQ(files.tensors.size(), 2u);
  EXPECT_EQ(files.tensors[0].name, "x.qkv");
  EXPECT_EQ(files.tensors[0].shape, (Shape{4, 2}));
  EXPECT_EQ(std::vector<float>(files.values(0), files.values(0) + 8), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(files.values(1)[0], 9.0f);
  write_hf_model((dir_ / "m").string(), "{}", files.tensors, files.values, DType::F32);

  Tensor q1 = Tensor::zeros({1, 2}), k0 = Tensor::zeros({1, 2}), v_all = Tensor::zeros({1, 2});
  HfReader((dir_ / "m").string(), layout)
      .load({{"x.q", q1, {2, 2}, 0, 1, 1}, {"x.k", k0, {1, 2}, 0, 0, 1}, {"x.v", v_all, {1, 2}, -1, 0, 0}});
  EXPECT_EQ(std::vector<float>(q1.f32(), q1.f32() + 2), (std::vector<float>{3, 4}));  // q's second row
  EXPECT_EQ(std::vector<float>(k0.f32(), k0.f32() + 2), k);
  EXPECT_EQ(std::vector<float>(v_all.f32(), v_all.f32() + 2), v);
  // The same under a prefix (the reader's), and a part whose rows do not fit is an error naming
  // the file tensor.
  fs::create_directories(dir_ / "p");
  write_safetensors((dir_ / "p" / "model.safetensors").string(),
                    {{"lm.x.qkv", DType::F32, {4, 2}, files.values(0)}});
  Tensor v2 = Tensor::zeros({1, 2});
  HfReader((dir_ / "p").string(), {"lm.", true, layout.fusions, {}, {}, {}}).load({{"x.v", v2, {1, 2}, -1, 0, 0}});
  EXPECT_EQ(std::vector<float>(v2.f32(), v2.f32() + 2), v);
  Tensor wide = Tensor::zeros({1, 3});
  try {
    HfReader((dir_ / "m").string(), layout).load({{"x.k", wide, {1, 3}, -1, 0, 0}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.qkv"), std::string::npos) << e.what();
  }
  // Parts out of the fusion's order cannot be written as its rows.
  const std::vector<HfTensor> swapped = {{"x.k", {1, 2}}, {"x.q", {2, 2}}, {"x.v", {1, 2}}};
  EXPECT_THROW(fuse_tensors(layout, swapped, [&](std::size_t i) { return values[i]; }), Error);
}

// GPT-NeoX's query_key_value: q, k and v fused per head ([q_0; k_0; v_0; q_1; k_1; v_1], 2 rows a
// head here), under the family's own names (renames). Written from spin's tensors the file holds
// the heads' blocks in turn; read back, a TP shard of one head gets that head's rows of each, a
// replicated tensor all of its heads', and the renamed unfused tensor its own.
TEST_F(HfReaderTest, TensorsFusedPerHeadAndRenamedAreWrittenAndReadBack) {
  const HfLayout layout{
      "",
      false,
      {{"attention.query_key_value.weight",
        {{"self_attn.q_proj.weight", 2}, {"self_attn.k_proj.weight", 2}, {"self_attn.v_proj.weight", 2}},
        2}},
      {{"model.layers.", "gpt_neox.layers."}, {"self_attn.o_proj.", "attention.dense."}},
      {},
      {},
      {}};
  std::vector<float> q(4 * 3), k(4 * 3), v(4 * 3), o = {7, 8, 9};
  for (std::size_t i = 0; i < q.size(); ++i) {
    q[i] = static_cast<float>(100 + i), k[i] = static_cast<float>(200 + i), v[i] = static_cast<float>(300 + i);
  }
  const std::vector<HfTensor> tensors = {{"model.layers.0.self_attn.q_proj.weight", {4, 3}},
                                         {"model.layers.0.self_attn.k_proj.weight", {4, 3}},
                                         {"model.layers.0.self_attn.v_proj.weight", {4, 3}},
                                         {"model.layers.0.self_attn.o_proj.weight", {1, 3}}};
  const std::vector<const float*> values = {q.data(), k.data(), v.data(), o.data()};
  const FileTensors files = fuse_tensors(layout, tensors, [&](std::size_t i) { return values[i]; });
  ASSERT_EQ(files.tensors.size(), 2u);
  EXPECT_EQ(files.tensors[0].name, "gpt_neox.layers.0.attention.query_key_value.weight");
  EXPECT_EQ(files.tensors[0].shape, (Shape{12, 3}));
  EXPECT_EQ(files.tensors[1].name, "gpt_neox.layers.0.attention.dense.weight");
  std::vector<float> want;  // head 0's q, k, v rows, then head 1's
  for (int head = 0; head < 2; ++head) {
    for (const auto* part : {&q, &k, &v})
      want.insert(want.end(), part->begin() + head * 6, part->begin() + head * 6 + 6);
  }
  EXPECT_EQ(std::vector<float>(files.values(0), files.values(0) + 36), want);
  write_hf_model((dir_ / "neox").string(), "{}", files.tensors, files.values, DType::F32);

  Tensor q1 = Tensor::zeros({2, 3}), v_all = Tensor::zeros({4, 3}), o_all = Tensor::zeros({1, 3});
  HfReader((dir_ / "neox").string(), layout)
      .load({{"model.layers.0.self_attn.q_proj.weight", q1, {4, 3}, 0, 2, 2},
             {"model.layers.0.self_attn.v_proj.weight", v_all, {4, 3}, -1, 0, 0},
             {"model.layers.0.self_attn.o_proj.weight", o_all, {1, 3}, -1, 0, 0}});
  EXPECT_EQ(std::vector<float>(q1.f32(), q1.f32() + 6), std::vector<float>(q.begin() + 6, q.end()));  // head 1
  EXPECT_EQ(std::vector<float>(v_all.f32(), v_all.f32() + 12), v);
  EXPECT_EQ(std::vector<float>(o_all.f32(), o_all.f32() + 3), o);
}

// StableLM 2 12B's per-head norms: spin's q_norm [heads, head_dim] as a file tensor a row
// (self_attn.q_layernorm.norms.<h>.weight). Written, the rows come out in order, each its row's
// values (the tensor's values asked once); read back, a TP shard of rows [1, 3) gets those rows and
// a replicated copy all of them; the tensors beside stay as they are.
TEST_F(HfReaderTest, RowSplitTensorsAreWrittenARowEachAndReadBackByShard) {
  const HfLayout layout{"", false, {}, {}, {{"self_attn.q_norm.weight", "self_attn.q_layernorm.norms.", ".weight"}},
                        {}, {}};
  const std::vector<float> norm = {1, 2, 3, 4, 5, 6}, o = {7, 8};
  const std::vector<HfTensor> tensors = {{"model.layers.0.self_attn.q_norm.weight", {3, 2}},
                                         {"model.layers.0.self_attn.o_proj.weight", {1, 2}}};
  const std::vector<const float*> values = {norm.data(), o.data()};
  int calls = 0;
  const FileTensors files = fuse_tensors(layout, tensors, [&](std::size_t i) {
    ++calls;
    return values[i];
  });
  ASSERT_EQ(files.tensors.size(), 4u);
  for (int h = 0; h < 3; ++h) {
    const auto k = static_cast<std::size_t>(h);
    EXPECT_EQ(files.tensors[k].name, "model.layers.0.self_attn.q_layernorm.norms." + std::to_string(h) + ".weight");
    EXPECT_EQ(files.tensors[k].shape, (Shape{2}));
    const float* row = files.values(k);
    EXPECT_EQ(std::vector<float>(row, row + 2), std::vector<float>(norm.begin() + 2 * h, norm.begin() + 2 * h + 2));
  }
  EXPECT_EQ(files.tensors[3].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(calls, 1) << "the split tensor's values asked once";
  write_hf_model((dir_ / "stablelm").string(), "{}", files.tensors, files.values, DType::F32);

  Tensor shard = Tensor::zeros({2, 2}), whole = Tensor::zeros({3, 2}), o_all = Tensor::zeros({1, 2});
  HfReader((dir_ / "stablelm").string(), layout)
      .load({{"model.layers.0.self_attn.q_norm.weight", shard, {3, 2}, 0, 1, 2},
             {"model.layers.0.self_attn.q_norm.weight", whole, {3, 2}, -1, 0, 0},
             {"model.layers.0.self_attn.o_proj.weight", o_all, {1, 2}, -1, 0, 0}});
  EXPECT_EQ(std::vector<float>(shard.f32(), shard.f32() + 4), std::vector<float>(norm.begin() + 2, norm.end()));
  EXPECT_EQ(std::vector<float>(whole.f32(), whole.f32() + 6), norm);
  EXPECT_EQ(std::vector<float>(o_all.f32(), o_all.f32() + 2), o);
}

// A block-scaled FP8 checkpoint (DeepSeek-V3's layout): "w" [5, 6] in F8_E4M3 beside "w_scale_inv" [3, 2]
// float32 (blocks of [2, 4]: the last block row and column partial), and a plain "n". Read dequantized --
// whole, split by rows across a block boundary and by columns -- as value x its block's scale; without
// the layout's block size, or with a scale grid of another shape, an error naming the tensor.
TEST_F(HfReaderTest, Fp8WeightsAreReadTimesTheirBlockScales) {
  // E4M3 bytes and their values: 1, 2, -1, 0.5, 448 (the largest), 2^-9 (the smallest subnormal), 1.125.
  const std::vector<std::pair<std::uint8_t, float>> codes = {
      {0x38, 1.0f}, {0x40, 2.0f}, {0xB8, -1.0f}, {0x30, 0.5f}, {0x7E, 448.0f}, {0x01, 0.001953125f}, {0x39, 1.125f}};
  std::vector<std::uint8_t> bytes(30);
  std::vector<float> values(30);
  for (std::size_t i = 0; i < 30; ++i) std::tie(bytes[i], values[i]) = codes[(i * 3) % codes.size()];
  const std::vector<float> scales = {0.5f, 2.0f, 0.25f, 4.0f, 3.0f, 1.5f}, n = {7, 8};
  const auto want = [&](std::int64_t r, std::int64_t c) {
    return values[static_cast<std::size_t>(r * 6 + c)] * scales[static_cast<std::size_t>((r / 2) * 2 + c / 4)];
  };
  // The file by hand: its header, w's bytes, the scales and n as float32.
  const std::string header = R"({"w": {"dtype": "F8_E4M3", "shape": [5, 6], "data_offsets": [0, 30]}, )"
                             R"("w_scale_inv": {"dtype": "F32", "shape": [3, 2], "data_offsets": [30, 54]}, )"
                             R"("n": {"dtype": "F32", "shape": [2], "data_offsets": [54, 62]}})";
  {
    std::ofstream out(dir_ / "model.safetensors", std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(header.size() >> (8 * i)));
    out << header;
    out.write(reinterpret_cast<const char*>(bytes.data()), 30);
    out.write(reinterpret_cast<const char*>(scales.data()), 24);
    out.write(reinterpret_cast<const char*>(n.data()), 8);
  }
  HfLayout layout;
  layout.fp8_block = {2, 4};
  HfReader reader(dir_.string(), layout);
  Tensor whole = Tensor::zeros({5, 6}), rows = Tensor::zeros({3, 6}), cols = Tensor::zeros({5, 3}),
         plain = Tensor::zeros({2});
  reader.load({{"w", whole, {5, 6}, -1, 0, 0},
               {"w", rows, {5, 6}, 0, 1, 3},
               {"w", cols, {5, 6}, 1, 3, 3},
               {"n", plain, {2}, -1, 0, 0}});
  for (std::int64_t r = 0; r < 5; ++r) {
    for (std::int64_t c = 0; c < 6; ++c) EXPECT_EQ(whole.f32()[r * 6 + c], want(r, c)) << r << ", " << c;
  }
  for (std::int64_t r = 0; r < 3; ++r) {
    for (std::int64_t c = 0; c < 6; ++c) EXPECT_EQ(rows.f32()[r * 6 + c], want(1 + r, c)) << r << ", " << c;
  }
  for (std::int64_t r = 0; r < 5; ++r) {
    for (std::int64_t c = 0; c < 3; ++c) EXPECT_EQ(cols.f32()[r * 3 + c], want(r, 3 + c)) << r << ", " << c;
  }
  EXPECT_EQ(plain.f32()[1], 8.0f);
  const std::string unscaled = error_of([&] { HfReader(dir_.string()).load({{"w", whole, {5, 6}, -1, 0, 0}}); });
  EXPECT_NE(unscaled.find("tensor \"w\" is FP8 (F8_E4M3), but config.json gives no quantization_config"),
            std::string::npos)
      << unscaled;
  layout.fp8_block = {4, 4};
  const std::string grid = error_of([&] { HfReader(dir_.string(), layout).load({{"w", whole, {5, 6}, -1, 0, 0}}); });
  EXPECT_NE(grid.find("\"w_scale_inv\" has shape [3, 2] but w [5, 6] in blocks of [4, 4] needs [2, 2]"),
            std::string::npos)
      << grid;
}

// write_hf_model's FP8 (export-hf --dtype fp8): "w" [5, 6] in blocks of [2, 4] -- a block of zeros, partial
// blocks at the last row and columns -- written as F8_E4M3 codes and w_scale_inv [3, 2] beside them, each block's
// scale its amax / 448 (an all-zero block's 1) and its largest element the code of 448; "n" in the export's dtype.
// Split into two files by a small shard limit, the index names both of w's tensors; read back, every element
// is its code's value times its block's scale. A NaN, or FP8 asked of a vector, is an error naming the tensor.
TEST_F(HfReaderTest, Fp8WritesHoldTheNearestCodeOfEachBlockScaledElement) {
  std::vector<float> w(30);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.7f * static_cast<float>(i) + 0.3f) * (1.0f + i % 7);
  for (const std::size_t i : {0, 1, 2, 3, 6, 7, 8, 9}) w[i] = 0.0f;  // block (0, 0): rows 0-1, columns 0-3
  const std::vector<float> n = {7, 8};
  const std::vector<HfTensor> tensors = {{"w", {5, 6}, false, true}, {"n", {2}}};
  const auto values = [&](std::size_t i) { return i == 0 ? w.data() : n.data(); };
  const fs::path out = dir_ / "fp8";
  write_hf_model(out.string(), "{}", {tensors[0]}, values, DType::BF16, kDefaultMaxShardBytes, {2, 4});
  // The file as written: codes, then the scales.
  const SafetensorsFile file((out / "model.safetensors").string());
  EXPECT_EQ(file.entry("w").dtype_name, "F8_E4M3");
  EXPECT_EQ(file.entry("w_scale_inv").shape, (Shape{3, 2}));
  const std::vector<float> scales = file.read_all("w_scale_inv");
  for (std::int64_t b = 0; b < 6; ++b) {
    float amax = 0.0f;
    for (std::int64_t r = (b / 2) * 2; r < std::min<std::int64_t>(5, (b / 2) * 2 + 2); ++r) {
      for (std::int64_t c = (b % 2) * 4; c < std::min<std::int64_t>(6, (b % 2) * 4 + 4); ++c) {
        amax = std::max(amax, std::fabs(w[static_cast<std::size_t>(r * 6 + c)]));
      }
    }
    EXPECT_EQ(scales[static_cast<std::size_t>(b)], b == 0 ? 1.0f : amax / 448.0f) << b;
  }
  const auto read_back = [&](const fs::path& dir) {
    HfLayout layout;
    layout.fp8_block = {2, 4};
    Tensor got = Tensor::zeros({5, 6});
    HfReader(dir.string(), layout).load({{"w", got, {5, 6}, -1, 0, 0}});
    return std::vector<float>(got.f32(), got.f32() + 30);
  };
  const std::vector<float> got = read_back(out);
  int at_448 = 0;
  for (std::int64_t i = 0; i < 30; ++i) {
    const float s = scales[static_cast<std::size_t>(((i / 6) / 2) * 2 + (i % 6) / 4)];
    const std::uint8_t code = f32_to_f8e4m3(w[static_cast<std::size_t>(i)] / s);
    EXPECT_EQ(got[static_cast<std::size_t>(i)], f8e4m3_to_f32(code) * s) << i;
    at_448 += (code & 0x7F) == 0x7E;
  }
  EXPECT_GE(at_448, 5);  // each non-zero block's largest element (or elements)
  // Two files: the index maps w and its scales to the first.
  write_hf_model(out.string(), "{}", tensors, values, DType::BF16, 40, {2, 4});
  const std::string index = read_text_file((out / "model.safetensors.index.json").string());
  EXPECT_NE(index.find("\"w_scale_inv\": \"model-00001-of-00002.safetensors\""), std::string::npos) << index;
  EXPECT_EQ(read_back(out), got);
  std::vector<float> bad = w;
  bad[13] = std::nanf("");
  const std::string nan = error_of([&] {
    write_hf_model(out.string(), "{}", {tensors[0]}, [&](std::size_t) { return bad.data(); }, DType::BF16,
                   kDefaultMaxShardBytes, {2, 4});
  });
  EXPECT_NE(nan.find("tensor \"w\" holds nan at [2, 1], which FP8 cannot hold"), std::string::npos) << nan;
  const std::string vector = error_of([&] {
    write_hf_model(out.string(), "{}", {{"n", {2}, false, true}}, [&](std::size_t) { return n.data(); }, DType::BF16,
                   kDefaultMaxShardBytes, {2, 4});
  });
  EXPECT_NE(vector.find("cannot write tensor \"n\" of shape [2] block-scaled to FP8"), std::string::npos) << vector;
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
