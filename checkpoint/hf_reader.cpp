#include "checkpoint/hf_reader.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "core/error.h"
#include "core/json_file.h"

namespace spin::ckpt {

namespace fs = std::filesystem;

HfReader::HfReader(const std::string& model_dir, HfLayout layout, const std::string& stem)
    : dir_(model_dir), layout_(std::move(layout)) {
  const fs::path dir(model_dir);
  const fs::path index = dir / (stem + ".safetensors.index.json");
  const fs::path single = dir / (stem + ".safetensors");
  if (fs::exists(index)) {
    const nlohmann::json j = read_json_file(index.string());
    require(j.is_object() && j.contains("weight_map") && j.at("weight_map").is_object(),
            index.string(), ": expected an object with a \"weight_map\"");
    for (const auto& [name, file] : j.at("weight_map").items()) {
      require(file.is_string(), index.string(), ": weight_map entry \"", name,
              "\" is not a file name");
      const std::string f = file.get<std::string>();
      require(f.find('/') == std::string::npos, index.string(), ": weight_map entry \"", name,
              "\" points outside the model directory: ", f);
      weight_map_[name] = (dir / f).string();
    }
  } else {
    require(fs::exists(single), model_dir, ": no ", stem, ".safetensors or ", stem,
            ".safetensors.index.json (spin reads safetensors weights only)");
    single_file_ = single.string();
  }
}

bool HfReader::has_weights(const std::string& model_dir, const std::string& stem) {
  const fs::path dir(model_dir);
  return fs::exists(dir / (stem + ".safetensors.index.json")) || fs::exists(dir / (stem + ".safetensors"));
}

SafetensorsFile& HfReader::file_for(const std::string& tensor_name) {
  if (!single_file_.empty()) return open(single_file_);
  const auto it = weight_map_.find(tensor_name);
  require(it != weight_map_.end(), dir_, ": the safetensors index lists no tensor \"", tensor_name, "\"");
  return open(it->second);
}

SafetensorsFile& HfReader::open(const std::string& path) {
  auto& slot = open_[path];
  if (!slot) slot = std::make_unique<SafetensorsFile>(path);
  return *slot;
}

std::vector<std::string> HfReader::names() {
  if (!single_file_.empty()) return open(single_file_).names();  // sorted: a map's keys
  std::vector<std::string> out;
  for (const auto& [name, file] : weight_map_) out.push_back(name);
  return out;
}

Shape HfReader::shape_of(const std::string& name) { return file_for(name).entry(name).shape; }

std::vector<float> HfReader::read_all(const std::string& name) { return file_for(name).read_all(name); }

namespace {
// `place`'s file shape where it has one more dimension than `global` (rows as [blocks, rows / blocks]).
Shape file_shape_of(const HfLayout::Place& place, Shape global) {
  if (place.blocks <= 1) return {};
  global[0] = place.rows / place.blocks;
  global.insert(global.begin(), place.blocks);
  return global;
}
}  // namespace

void HfReader::read_columns_of_rows(const ShardedTensor& t, const HfLayout::Place& place) {
  // The part's whole rows of the fused file tensor (a row-parallel expert's down projection of
  // GraniteMoE's output_linear), then this shard's columns of them.
  const std::int64_t rows = t.global_shape[0], cols = t.global_shape[1];
  Tensor whole = Tensor::zeros({rows, cols});
  const Shape global = {place.rows, cols};
  file_for(place.name)
      .read_shard(ShardedTensor{place.name, whole, global, 0, place.row, rows, true}, file_shape_of(place, global));
  const std::int64_t local_cols = t.local.shape()[1];
  Tensor mine = Tensor::zeros({rows, local_cols});
  for (std::int64_t r = 0; r < rows; ++r) {
    std::copy_n(whole.f32() + r * cols + t.offset, t.length, mine.f32() + r * local_cols);
  }
  t.local.copy_from(mine);
}

void HfReader::load(const std::vector<ShardedTensor>& tensors) {
  for (const ShardedTensor& t : tensors) {
    if (t.local.dtype() != DType::BF16) {
      load_float32(t);
      continue;
    }
    ShardedTensor wide = t;
    wide.local = Tensor::zeros(t.local.shape());  // in host memory
    load_float32(wide);
    assign_from_float32(t.local, wide.local);
  }
}

void HfReader::load_float32(const ShardedTensor& t) {
  // A tensor the files hold a row each: this shard's rows one by one, each a whole file tensor.
  if (!layout_.row_name(t.name, 0).empty()) {
    const std::int64_t first = t.replicated() ? 0 : t.offset, rows = t.local.shape()[0];
    require(t.replicated() || t.split_dim == 0, "tensor \"", t.name, "\" is split along dimension ", t.split_dim,
            "; the files hold it a row each");
    const Shape row_shape(t.local.shape().begin() + 1, t.local.shape().end());
    const std::int64_t cols = shape_numel(row_shape);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::string name = layout_.row_name(t.name, first + r);
      file_for(name).read_shard(ShardedTensor{name, t.local.view(r * cols, row_shape), row_shape, -1, 0, 0, true});
    }
    return;
  }
  // The same shard (Tensor shares its storage) as the files hold it: under their name, and
  // for a fused tensor as rows [row + offset, + length) of it.
  const HfLayout::Place place = layout_.place(t.name);
  if (place.rows > 0 && t.split_dim == 1 && place.groups == 1) {
    read_columns_of_rows(t, place);
    return;
  }
  ShardedTensor in_file = t;
  in_file.name = place.name;
  if (place.rows > 0) {
    require(t.replicated() || t.split_dim == 0, "tensor \"", t.name, "\" is split along dimension ", t.split_dim,
            "; a fused file tensor (", place.name, ") holds it as rows");
    in_file.global_shape[0] = place.rows;
    in_file.split_dim = 0;
    in_file.offset = place.row + (t.replicated() ? 0 : t.offset);
    in_file.length = t.replicated() ? t.global_shape[0] : t.length;
  }
  const Shape file_shape = file_shape_of(place, in_file.global_shape);
  SafetensorsFile& file = file_for(in_file.name);
  // A block-scaled FP8 weight is read with its scales, fused or not: a part's rows are rows of the file
  // tensor, whose blocks the scales are by.
  std::optional<BlockScales> fp8;
  if (file.entry(in_file.name).fp8()) {
    require(file_shape.empty(), file.path(), ": tensor \"", in_file.name, "\" of shape ",
            shape_text(file.entry(in_file.name).shape), " is FP8, which spin reads in matrices only");
    fp8 = block_scales(in_file.name, file.entry(in_file.name).shape);
  }
  const BlockScales* scales = fp8 ? &*fp8 : nullptr;
  if (place.groups > 1) {  // fused per group (head): one block of group_rows rows from each of its groups
    const std::int64_t first = t.replicated() ? 0 : t.offset, n = in_file.length, block = place.group_rows;
    require(first % block == 0 && n % block == 0, "tensor \"", t.name, "\": rows [", first, ", ", first + n,
            ") do not cover whole groups of ", block, " rows of ", place.name);
    const std::int64_t cols = t.local.numel() / t.local.shape()[0];
    Shape shape = t.local.shape();
    shape[0] = block;
    for (std::int64_t g = 0; g < n / block; ++g) {
      ShardedTensor part = in_file;
      part.local = t.local.view(g * block * cols, shape);
      part.offset = (first / block + g) * (place.rows / place.groups) + place.row;
      part.length = block;
      file.read_shard(part, file_shape, scales);
    }
    return;
  }
  file.read_shard(in_file, file_shape, scales);
}

BlockScales HfReader::block_scales(const std::string& name, const Shape& shape) {
  const auto [block_rows, block_cols] = layout_.fp8_block;
  require(block_rows > 0 && block_cols > 0, dir_, ": tensor \"", name,
          "\" is FP8 (F8_E4M3), but config.json gives no quantization_config with its weight_block_size");
  const std::string scales = scale_name(name);
  const Shape want = block_grid(shape[0], shape[1], block_rows, block_cols);
  SafetensorsFile& file = file_for(scales);
  require(file.entry(scales).shape == want, file.path(), ": tensor \"", scales, "\" has shape ",
          shape_text(file.entry(scales).shape), " but ", name, " ", shape_text(shape), " in blocks of [", block_rows,
          ", ", block_cols, "] needs ", shape_text(want));
  return {file.read_all(scales), block_rows, block_cols, want[1]};
}

}  // namespace spin::ckpt
