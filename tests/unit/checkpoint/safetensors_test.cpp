#include "checkpoint/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/scratch_dir.h"
#include "common/test_util.h"
#include "core/error.h"

namespace spin::ckpt {
namespace {

namespace fs = std::filesystem;
using spin::testing::error_of;

class Safetensors : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A 5x4 matrix "w" (values 0..19) and a vector "b", written as `dtype`.
  std::string write_sample(DType dtype) {
    for (int i = 0; i < 20; ++i) w_[static_cast<std::size_t>(i)] = static_cast<float>(i) * 0.25f;
    const std::string p = path("sample.safetensors");
    write_safetensors(p, {{"w", dtype, {5, 4}, w_.data()}, {"b", dtype, {3}, b_.data()}},
                      {{"format", "pt"}});
    return p;
  }

  testing::ScratchDir scratch_{"spin_safetensors"};
  fs::path dir_ = scratch_.path();
  std::vector<float> w_ = std::vector<float>(20);
  std::vector<float> b_ = {1.5f, -2.0f, 0.125f};
};

TEST_F(Safetensors, ReadsEveryFloatTypeAndShardsAlongEitherDimension) {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const SafetensorsFile f(write_sample(dtype));
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(f.entry("w").shape, (Shape{5, 4}));

    // Rows [3, 5) of w into a 3-row local tensor: the third row is padding and stays 0.
    Tensor rows = Tensor::zeros({3, 4});
    rows.f32()[11] = 42.0f;
    f.read_shard({"w", rows, {5, 4}, 0, 3, 2});
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c)
        EXPECT_EQ(rows.f32()[r * 4 + c], r < 2 ? w_[static_cast<std::size_t>((3 + r) * 4 + c)] : 0.0f);

    // Columns [2, 4) of w.
    Tensor cols = Tensor::zeros({5, 2});
    f.read_shard({"w", cols, {5, 4}, 1, 2, 2});
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 2; ++c)
        EXPECT_EQ(cols.f32()[r * 2 + c], w_[static_cast<std::size_t>(r * 4 + 2 + c)]);

    Tensor b = Tensor::zeros({3});
    f.read_shard({"b", b, {3}, -1, 0, 0});
    EXPECT_EQ(std::vector<float>(b.f32(), b.f32() + 3), b_);
  }
}

TEST_F(Safetensors, TruncatedFileIsAnErrorNamingFileAndTensor) {
  const std::string p = write_sample(DType::F32);
  fs::resize_file(p, fs::file_size(p) - 5);
  const std::string e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("\"b\""), std::string::npos) << e;
}

TEST_F(Safetensors, MalformedHeadersAreErrors) {
  const auto write_raw = [&](const std::string& header, std::uint64_t claimed_len, std::size_t data) {
    std::ofstream out(path("bad.safetensors"), std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(claimed_len >> (8 * i)));
    out << header << std::string(data, '\0');
    return path("bad.safetensors");
  };
  const auto open_error = [&](const std::string& p) { return error_of([&] { SafetensorsFile f(p); }); };
  EXPECT_NE(open_error(write_raw("", 0, 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(open_error(write_raw("{}", 1000, 0)).find("does not fit"), std::string::npos);
  EXPECT_NE(open_error(write_raw("{\"a\": 3}", 8, 0)).find("expected an object"), std::string::npos);
  const std::string wrong_span = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})";
  EXPECT_NE(open_error(write_raw(wrong_span, wrong_span.size(), 4)).find("needs 8"), std::string::npos);
  const std::string negative = R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})";
  EXPECT_NE(open_error(write_raw(negative, negative.size(), 8)).find("shape"), std::string::npos);
  // Ranges each sound on their own that do not tile the data: the safetensors library refuses them.
  const std::string overlap = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                              R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})";
  const std::string overlapped = open_error(write_raw(overlap, overlap.size(), 8));
  EXPECT_NE(overlapped.find("tensor \"b\": data_offsets [4, 8] overlap the tensor before it, which ends at 8"),
            std::string::npos)
      << overlapped;
  const std::string gap = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})";
  EXPECT_NE(open_error(write_raw(gap, gap.size(), 8)).find("leave a gap after the tensor before it, which ends at 0"),
            std::string::npos);
  const std::string trailing = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
  EXPECT_NE(open_error(write_raw(trailing, trailing.size(), 8)).find("4 bytes after the last tensor's data"),
            std::string::npos);
  {
    std::ofstream(path("short.safetensors")) << "abc";
  }
  EXPECT_NE(open_error(path("short.safetensors")).find("too short"), std::string::npos);
  // A directory (an index's weight_map naming ".") was "cannot map: No such device"; a named pipe's open waited for a
  // writer.
  EXPECT_NE(open_error(dir_.string()).find(": not a safetensors file (a directory, device or pipe)"),
            std::string::npos);
  ASSERT_EQ(::mkfifo(path("pipe.safetensors").c_str(), 0600), 0);
  EXPECT_NE(open_error(path("pipe.safetensors")).find(": not a safetensors file"), std::string::npos);
  EXPECT_NE(open_error(path("missing.safetensors")).find("cannot open"), std::string::npos);
}

TEST_F(Safetensors, ShapeMismatchMissingTensorAndUnreadableDtypeAreErrors) {
  const SafetensorsFile f(write_sample(DType::F32));
  Tensor t = Tensor::zeros({4, 4});
  const std::string shape = error_of([&] { f.read_shard({"w", t, {4, 4}, -1, 0, 0}); });
  EXPECT_NE(shape.find("has shape [5, 4] but the model expects [4, 4]"), std::string::npos) << shape;
  EXPECT_NE(error_of([&] { f.read_shard({"nope", t, {4, 4}, -1, 0, 0}); }).find("no tensor \"nope\""),
            std::string::npos);

  const std::string header = R"({"i": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]}})";
  {
    std::ofstream out(path("int8.safetensors"), std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(header.size() >> (8 * i)));
    out << header << "ab";
  }
  const SafetensorsFile ints(path("int8.safetensors"));
  Tensor two = Tensor::zeros({2});
  EXPECT_NE(error_of([&] { ints.read_shard({"i", two, {2}, -1, 0, 0}); }).find("dtype I8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ints.read_all("i"); }).find("tensor \"i\" has dtype I8"), std::string::npos);
  // An FP8 checkpoint's weight (DeepSeek-V3's F8_E4M3) without its block scales (HfReader passes them).
  const std::string fp8 = R"({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})";
  {
    std::ofstream out(path("fp8.safetensors"), std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(fp8.size() >> (8 * i)));
    out << fp8 << "ab";
  }
  const std::string quantized = error_of([&] {
    SafetensorsFile(path("fp8.safetensors")).read_shard({"w", two, {2}, -1, 0, 0});
  });
  EXPECT_NE(quantized.find("has dtype F8_E4M3; spin reads F32, BF16, F16 and F64 -- an FP8 weight, read only with its "
                           "block scales"),
            std::string::npos)
      << quantized;
}

// Block quantization on threads (the writers' default: one a CPU): the codes and scales of one thread, bit for bit,
// for any number -- bands and blocks cut short at the edges ([301, 190] in blocks of [16, 64]), a block of zeros;
// with non-finite values in two bands, the error names the first in row-major order whichever thread meets it.
TEST(Fp8Blocks, AnyNumberOfThreadsGivesOneThreadsCodesAndItsFirstError) {
  const std::int64_t rows = 301, cols = 190;
  std::vector<float> w(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.37f) * (1.0f + i % 7);
  for (std::int64_t r = 32; r < 48; ++r) {
    for (std::int64_t c = 64; c < 128; ++c) w[static_cast<std::size_t>(r * cols + c)] = 0.0f;
  }
  std::vector<std::uint8_t> one(w.size());
  const BlockScales want = quantize_fp8_blocks("w", w.data(), rows, cols, 16, 64, one.data(), 1);
  EXPECT_EQ(want.scales.size(), 19u * 3u);
  EXPECT_EQ(want.scales[2 * 3 + 1], 1.0f);  // the zero block's
  for (int threads : {0, 2, 3, 8}) {
    std::vector<std::uint8_t> codes(w.size(), 0xAA);
    const BlockScales got = quantize_fp8_blocks("w", w.data(), rows, cols, 16, 64, codes.data(), threads);
    EXPECT_EQ(got.scales, want.scales) << threads;
    EXPECT_EQ(codes, one) << threads;
  }
  w[static_cast<std::size_t>(250 * cols + 3)] = std::numeric_limits<float>::infinity();
  w[static_cast<std::size_t>(17 * cols + 189)] = std::nanf("");
  for (int threads : {1, 4}) {
    std::vector<std::uint8_t> codes(w.size());
    const std::string e =
        error_of([&] { quantize_fp8_blocks("w", w.data(), rows, cols, 16, 64, codes.data(), threads); });
    EXPECT_NE(e.find("tensor \"w\" holds nan at [17, 189], which FP8 cannot hold"), std::string::npos) << e;
  }
  const std::string negative =
      error_of([&] { quantize_fp8_blocks("w", w.data(), rows, cols, 16, 64, one.data(), -1); });
  EXPECT_NE(negative.find("FP8 quantization threads must be >= 0, got -1"), std::string::npos) << negative;
}

// A block larger than the matrix is one block (spin ckpt export-hf --fp8-block takes any positive size): the grid
// rounded up without overflow -- ceil by (n + block - 1) / block made a block of 2^63 - 1 a grid of [0, 0], whose
// empty scales a reader then indexed -- and its codes those of a block of the matrix's own size.
TEST(Fp8Blocks, ABlockLargerThanTheMatrixIsOneBlock) {
  constexpr std::int64_t kHuge = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(block_grid(301, 190, kHuge, kHuge), (Shape{1, 1}));
  EXPECT_EQ(block_grid(301, 190, 16, kHuge), (Shape{19, 1}));
  EXPECT_EQ(block_grid(301, 190, 16, 64), (Shape{19, 3}));
  EXPECT_EQ(block_grid(256, 128, 128, 128), (Shape{2, 1}));
  const std::int64_t rows = 37, cols = 23;
  std::vector<float> w(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(static_cast<float>(i) * 0.11f) * (1.0f + i % 5);
  std::vector<std::uint8_t> huge(w.size()), exact(w.size());
  const BlockScales got = quantize_fp8_blocks("w", w.data(), rows, cols, kHuge, kHuge, huge.data(), 1);
  const BlockScales want = quantize_fp8_blocks("w", w.data(), rows, cols, rows, cols, exact.data(), 1);
  ASSERT_EQ(got.scales.size(), 1u);
  EXPECT_EQ(got.scales, want.scales);
  EXPECT_EQ(huge, exact);
}

}  // namespace
}  // namespace spin::ckpt
