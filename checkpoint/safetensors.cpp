#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

namespace spin::ckpt {

namespace {
using nlohmann::json;

constexpr std::uint64_t kMaxHeader = 100'000'000;  // the format's own limit

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& e,
                             std::uint64_t data_size) {
  const auto bad = [&](const std::string& why) {
    fail(path, ": tensor \"", name, "\": ", why, " (malformed safetensors header)");
  };
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
      !e.contains("data_offsets")) {
    bad("expected an object with dtype, shape and data_offsets");
  }
  SafetensorsEntry out;
  if (!e.at("dtype").is_string()) bad("dtype is not a string");
  out.dtype_name = e.at("dtype").get<std::string>();
  DType t;
  if (parse_dtype(out.dtype_name, &t)) out.dtype = t;
  const json& shape = e.at("shape");
  if (!shape.is_array()) bad("shape is not a list");
  std::uint64_t numel = 1;
  for (const json& d : shape) {
    if (!d.is_number_unsigned()) bad("shape holds something other than non-negative integers");
    const auto dim = d.get<std::uint64_t>();
    if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 16 / dim) {
      bad("shape too large");
    }
    numel *= dim;
    out.shape.push_back(static_cast<std::int64_t>(dim));
  }
  const json& offsets = e.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    bad("data_offsets is not [begin, end]");
  }
  out.begin = offsets[0].get<std::uint64_t>();
  out.end = offsets[1].get<std::uint64_t>();
  if (out.begin > out.end) bad("data_offsets begin > end");
  if (out.end > data_size) {
    bad(cat("data_offsets end ", out.end, " is past the end of the data (", data_size,
            " bytes): the file is truncated"));
  }
  const std::uint64_t element = out.dtype ? dtype_size(*out.dtype) : out.fp8() ? 1 : 0;
  if (element > 0 && out.end - out.begin != numel * element) {
    bad(cat("data_offsets span ", out.end - out.begin, " bytes but shape ", shape_str(out.shape), " of ",
            out.dtype_name, " needs ", numel * element));
  }
  return out;
}

// The tensors' byte ranges tile the data section: each begins where the one before it (by offset) ends,
// and the last ends the file -- the safetensors library's own rule (it refuses a file that breaks it),
// which catches a header whose offsets were damaged into another tensor's bytes, where each range on its
// own looks sound.
void check_tiling(const std::string& path, const std::map<std::string, SafetensorsEntry>& entries,
                  std::uint64_t data_size) {
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, e] : entries) by_offset.emplace_back(&name, &e);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  std::uint64_t at = 0;
  for (const auto& [name, e] : by_offset) {
    if (e->begin != at) {
      fail(path, ": tensor \"", *name, "\": data_offsets [", e->begin, ", ", e->end, "] ",
           e->begin < at ? "overlap" : "leave a gap after", " the tensor before it, which ends at ", at,
           " (malformed safetensors header)");
    }
    at = e->end;
  }
  require(at == data_size, path, ": ", data_size - at,
          " bytes after the last tensor's data (malformed safetensors header)");
}
}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // (a FIFO's open would wait for a writer)
  require(fd_ >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st{};
  if (::fstat(fd_, &st) != 0) {
    ::close(fd_);
    fail(path, ": cannot stat: ", std::strerror(errno));
  }
  size_ = static_cast<std::size_t>(st.st_size);
  try {
    // (A directory -- an index's weight_map naming "." -- was "cannot map: No such device".)
    require(S_ISREG(st.st_mode), path, ": not a safetensors file (a directory, device or pipe)");
    require(size_ >= 8, path, ": too short to be a safetensors file (", size_, " bytes)");
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    require(map_ != MAP_FAILED, path, ": cannot map: ", std::strerror(errno));
    const auto* bytes = static_cast<const unsigned char*>(map_);
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
    require(header_len <= kMaxHeader && header_len <= size_ - 8, path, ": header length ",
            header_len, " does not fit in a file of ", size_,
            " bytes (truncated or not safetensors)");
    data_ = bytes + 8 + header_len;
    data_size_ = size_ - 8 - header_len;

    json header;
    try {
      header = json::parse(bytes + 8, bytes + 8 + header_len);
    } catch (const json::parse_error& e) {
      fail(path, ": the header is not valid JSON: ", e.what());
    }
    require(header.is_object(), path, ": the header is not a JSON object");
    for (const auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        require(value.is_object(), path, ": __metadata__ is not an object");
        for (const auto& [key, text] : value.items()) {
          metadata_[key] = text.is_string() ? text.get<std::string>() : text.dump();
        }
        continue;
      }
      entries_[name] = parse_entry(path, name, value, data_size_);
    }
    check_tiling(path, entries_, data_size_);
  } catch (...) {
    if (map_ != nullptr && map_ != MAP_FAILED) ::munmap(map_, size_);
    ::close(fd_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr && map_ != MAP_FAILED) ::munmap(map_, size_);
  if (fd_ >= 0) ::close(fd_);
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  require(it != entries_.end(), path_, ": no tensor \"", name, "\"");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

DType SafetensorsFile::float_dtype(const std::string& name, const SafetensorsEntry& e) const {
  // (An FP8 weight -- DeepSeek-V3's F8_E4M3 -- is read only with its block scales: read_shard's.)
  require(e.dtype &&
              (*e.dtype == DType::F32 || *e.dtype == DType::BF16 || *e.dtype == DType::F16 || *e.dtype == DType::F64),
          path_, ": tensor \"", name, "\" has dtype ", e.dtype_name, "; spin reads F32, BF16, F16 and F64",
          e.fp8() ? " -- an FP8 weight, read only with its block scales (config.json's quantization_config)"
          : e.dtype_name.starts_with("F8_") ? " (of FP8, spin reads block-scaled F8_E4M3 weights)"
                                            : "");
  return *e.dtype;
}

std::vector<float> SafetensorsFile::read_all(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DType dtype = float_dtype(name, e);
  std::vector<float> out(static_cast<std::size_t>(shape_numel(e.shape)));
  convert_to_f32(data_ + e.begin, dtype, out.size(), out.data());
  return out;
}

void SafetensorsFile::read_shard(const ShardedTensor& t, const Shape& file_shape, const BlockScales* scales) const {
  const SafetensorsEntry& e = entry(t.name);
  const Shape& expected = file_shape.empty() ? t.global_shape : file_shape;
  require(e.shape == expected && shape_numel(expected) == shape_numel(t.global_shape), path_, ": tensor \"", t.name,
          "\" has shape ", shape_text(e.shape), " but the model expects ", shape_text(expected));
  const bool fp8 = e.fp8() && scales != nullptr;
  require(!fp8 || e.shape.size() == 2, path_, ": tensor \"", t.name, "\": an FP8 tensor of shape ", shape_text(e.shape),
          " (block scales are a matrix's)");
  const DType dtype = fp8 ? DType::U8 : float_dtype(t.name, e);
  const std::size_t elem = dtype_size(dtype);
  const unsigned char* src = data_ + e.begin;
  // n elements from the file tensor's flat index `from`, as float32 (an FP8 one times its block's scale).
  const auto to_f32 = [&](const unsigned char* at, DType type, std::size_t n, float* out) {
    if (!fp8) return convert_to_f32(at, type, n, out);
    const auto from = static_cast<std::int64_t>(at - src), cols = e.shape[1];
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t g = from + static_cast<std::int64_t>(i), r = g / cols, c = g % cols;
      const float scale = scales->scales[static_cast<std::size_t>((r / scales->block_rows) * scales->scale_cols +
                                                                  c / scales->block_cols)];
      out[i] = f8e4m3_to_f32(at[i]) * scale;
    }
  };
  const Tensor host = host_readable(t.local);  // converted on the host, then copied to a GPU
  float* dst = host.f32();
  if (t.replicated()) {
    require(t.local.shape() == e.shape, path_, ": tensor \"", t.name, "\": local shape ", shape_text(t.local.shape()),
            " differs from the file's ", shape_text(e.shape));
    to_f32(src, dtype, static_cast<std::size_t>(t.local.numel()), dst);
    t.local.copy_from(host);
    return;
  }
  // Shard along split_dim: `outer` blocks, each copying `length * inner` contiguous elements.
  const auto dim = static_cast<std::size_t>(t.split_dim);
  std::int64_t inner = 1;
  const Shape& g = t.global_shape;  // the index arithmetic's (the file's row-major order)
  for (std::size_t k = dim + 1; k < g.size(); ++k) inner *= g[k];
  const std::int64_t outer = t.local.numel() / (t.local.shape()[dim] * inner);
  const std::int64_t local_len = t.local.shape()[dim];
  require(t.offset >= 0 && t.length >= 0 && t.length <= local_len && t.offset + t.length <= g[dim], path_,
          ": tensor \"", t.name, "\": shard [", t.offset, ", ", t.offset + t.length, ") along dimension ", t.split_dim,
          " is outside shape ", shape_str(g));
  for (std::int64_t o = 0; o < outer; ++o) {
    const std::int64_t from = (o * g[dim] + t.offset) * inner;
    float* to = dst + o * local_len * inner;
    to_f32(src + static_cast<std::size_t>(from) * elem, dtype, static_cast<std::size_t>(t.length * inner), to);
    std::fill(to + t.length * inner, to + local_len * inner, 0.0f);
  }
  t.local.copy_from(host);
}

namespace {
// The scale grid of an FP8 write: [ceil(R / rows), ceil(C / cols)].
Shape scale_shape(const SafetensorsWrite& t) {
  require(t.shape.size() == 2 && t.fp8_block[0] > 0 && t.fp8_block[1] > 0, "cannot write tensor \"", t.name,
          "\" of shape ", shape_text(t.shape), " block-scaled to FP8 in blocks of [", t.fp8_block[0], ", ",
          t.fp8_block[1], "] (block scales are a matrix's)");
  return block_grid(t.shape[0], t.shape[1], t.fp8_block[0], t.fp8_block[1]);
}
}  // namespace

namespace {
// Band i of a block quantization (block_rows rows of w [rows, cols], each row's contiguous columns block by
// block): its blocks' scales into scales[0, grid_cols), then its codes; false, nothing written, where the band
// holds a NaN or an infinity. Every value a parameter or a local: the codes' bytes may alias anything reached
// through a reference, which would reload it every element.
bool quantize_fp8_band(const float* w, std::int64_t rows, std::int64_t cols, std::int64_t block_rows,
                       std::int64_t block_cols, std::int64_t i, float* scales, std::uint8_t* codes) {
  const std::int64_t grid_cols = block_grid(rows, cols, block_rows, block_cols)[1];
  std::vector<float> amax(static_cast<std::size_t>(grid_cols), 0.0f);
  const std::int64_t r0 = i * block_rows, r1 = r0 + std::min(block_rows, rows - r0);  // (r0 + block may overflow)
  bool finite = true;
  for (std::int64_t r = r0; r < r1; ++r) {
    for (std::int64_t j = 0; j < grid_cols; ++j) {
      const float* row = w + r * cols + j * block_cols;
      float m = amax[static_cast<std::size_t>(j)];
      for (std::int64_t c = 0; c < std::min(block_cols, cols - j * block_cols); ++c) {
        finite &= std::fabs(row[c]) <= std::numeric_limits<float>::max();
        m = std::max(m, std::fabs(row[c]));
      }
      amax[static_cast<std::size_t>(j)] = m;
    }
  }
  if (!finite) return false;
  for (std::int64_t j = 0; j < grid_cols; ++j) {
    scales[j] = amax[static_cast<std::size_t>(j)] > 0.0f ? amax[static_cast<std::size_t>(j)] / 448.0f : 1.0f;
  }
  for (std::int64_t r = r0; r < r1; ++r) {
    for (std::int64_t j = 0; j < grid_cols; ++j) {
      const std::int64_t first = r * cols + j * block_cols, n = std::min(block_cols, cols - j * block_cols);
      const float scale = scales[j];
      for (std::int64_t c = 0; c < n; ++c) codes[first + c] = f32_to_f8e4m3(w[first + c] / scale);
    }
  }
  return true;
}
}  // namespace

BlockScales quantize_fp8_blocks(const std::string& name, const float* w, std::int64_t rows, std::int64_t cols,
                                std::int64_t block_rows, std::int64_t block_cols, std::uint8_t* codes, int threads) {
  require(block_rows > 0 && block_cols > 0, "tensor \"", name, "\": FP8 blocks of [", block_rows, ", ", block_cols,
          "]");
  require(threads >= 0, "tensor \"", name, "\": FP8 quantization threads must be >= 0, got ", threads);
  const Shape grid = block_grid(rows, cols, block_rows, block_cols);
  BlockScales b{std::vector<float>(static_cast<std::size_t>(shape_numel(grid))), block_rows, block_cols, grid[1]};
  constexpr std::int64_t kThreadedElements = std::int64_t{1} << 20;  // below it, thread start-up is not repaid
  if (threads == 0) threads = rows * cols < kThreadedElements ? 1 : usable_cpus(16);
  // The bands on the threads; a band holding a non-finite element is left, and the first such named after all.
  std::vector<char> finite(static_cast<std::size_t>(grid[0]), 1);
  for_each_index(finite.size(), threads, [&](std::size_t i) {
    const auto band = static_cast<std::int64_t>(i);
    finite[i] = quantize_fp8_band(w, rows, cols, block_rows, block_cols, band, b.scales.data() + band * grid[1], codes);
  });
  const auto bad_band = std::find(finite.begin(), finite.end(), 0);
  if (bad_band != finite.end()) {
    const std::int64_t r0 = (bad_band - finite.begin()) * block_rows, r1 = r0 + std::min(block_rows, rows - r0);
    const float* bad = std::find_if(w + r0 * cols, w + r1 * cols, [](float v) { return !std::isfinite(v); });
    const std::int64_t at = bad - w;
    fail("tensor \"", name, "\" holds ", *bad, " at [", at / cols, ", ", at % cols,
         "], which FP8 cannot hold: not exported");
  }
  return b;
}

std::uint64_t SafetensorsWriter::data_bytes(const SafetensorsWrite& t) {
  if (t.fp8()) return static_cast<std::uint64_t>(shape_numel(t.shape) + shape_numel(scale_shape(t)) * 4);
  return static_cast<std::uint64_t>(shape_numel(t.shape)) * dtype_size(t.dtype);
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<SafetensorsWrite> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), tensors_(std::move(tensors)) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const SafetensorsWrite& t : tensors_) {
    if (t.fp8()) {
      const auto codes = static_cast<std::uint64_t>(shape_numel(t.shape));
      header[t.name] = {{"dtype", "F8_E4M3"}, {"shape", t.shape}, {"data_offsets", {offset, offset + codes}}};
      header[scale_name(t.name)] = {
          {"dtype", "F32"}, {"shape", scale_shape(t)}, {"data_offsets", {offset + codes, offset + data_bytes(t)}}};
      offset += data_bytes(t);
      continue;
    }
    require(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16, path,
            ": cannot write tensor \"", t.name, "\" as ", dtype_name(t.dtype));
    const std::uint64_t bytes = data_bytes(t);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as HF does
  out_.open(path, std::ios::binary | std::ios::trunc);
  require(out_.good(), path, ": cannot create");
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  out_.write(reinterpret_cast<const char*>(len), 8);
  out_.write(text.data(), static_cast<std::streamsize>(text.size()));
}

void SafetensorsWriter::write_next(const float* data) {
  require(next_ < tensors_.size(), path_, ": more tensors written than declared");
  const SafetensorsWrite& t = tensors_[next_++];
  const auto n = static_cast<std::size_t>(shape_numel(t.shape));
  if (t.fp8()) {
    std::vector<std::uint8_t> codes(n);
    const BlockScales b =
        quantize_fp8_blocks(t.name, data, t.shape[0], t.shape[1], t.fp8_block[0], t.fp8_block[1], codes.data());
    out_.write(reinterpret_cast<const char*>(codes.data()), static_cast<std::streamsize>(n));
    out_.write(reinterpret_cast<const char*>(b.scales.data()), static_cast<std::streamsize>(b.scales.size() * 4));
  } else if (t.dtype == DType::F32) {
    out_.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * 4));
  } else {
    std::vector<std::uint16_t> half(n);
    for (std::size_t i = 0; i < n; ++i) half[i] = t.dtype == DType::BF16 ? f32_to_bf16(data[i]) : f32_to_f16(data[i]);
    out_.write(reinterpret_cast<const char*>(half.data()), static_cast<std::streamsize>(n * 2));
  }
  require(out_.good(), path_, ": write failed at tensor \"", t.name, "\"");
}

void SafetensorsWriter::finish() {
  require(next_ == tensors_.size(), path_, ": ", tensors_.size() - next_, " declared tensors were not written");
  out_.close();
  require(!out_.fail(), path_, ": write failed");
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer(path, tensors, metadata);
  for (const SafetensorsWrite& t : tensors) writer.write_next(t.data);
  writer.finish();
}

}  // namespace spin::ckpt
