#include "checkpoint/hf_writer.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/hf_reader.h"
#include "checkpoint/model_gather.h"
#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/json_file.h"
#include "parallel/job_errors.h"

namespace spin::ckpt {

namespace {
using nlohmann::json;

// `work` on every rank of `group`, an error on any of them thrown on all (parallel::run_collectively) -- or,
// without a group, here alone.
void on_group(parallel::Communicator* group, const std::function<void()>& work) {
  if (group != nullptr) {
    parallel::run_collectively(*group, work);
  } else {
    work();
  }
}
}  // namespace

void write_hf_model(const std::string& dir, const std::string& config_json, const std::vector<HfTensor>& tensors,
                    const std::function<const float*(std::size_t)>& values, DType dtype, std::uint64_t max_shard_bytes,
                    const std::array<std::int64_t, 2>& fp8_block, parallel::Communicator* group) {
  namespace fs = std::filesystem;
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp";
  const int rank = group != nullptr ? group->rank() : 0, ranks = group != nullptr ? group->size() : 1;
  // Each step on every rank of the group, an error on any of them thrown on all (or here alone).
  // Tensors into files in order, a new file when the next tensor would exceed the limit.
  std::vector<std::vector<SafetensorsWrite>> files(1);
  std::vector<std::size_t> first_tensor(1, 0);  // by file: the index of its first tensor
  std::uint64_t total = 0;
  on_group(group, [&] {
    std::uint64_t in_file = 0;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const HfTensor& t = tensors[i];
      const SafetensorsWrite w{t.name, t.float32 ? DType::F32 : dtype, t.shape, nullptr,
                               t.fp8 ? fp8_block : std::array<std::int64_t, 2>{}};
      const std::uint64_t bytes = SafetensorsWriter::data_bytes(w);
      if (in_file > 0 && in_file + bytes > max_shard_bytes) {
        files.emplace_back();
        first_tensor.push_back(i);
        in_file = 0;
      }
      files.back().push_back(w);
      in_file += bytes;
      total += bytes;
    }
    if (rank != 0) return;
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    write_text_file((tmp / "config.json").string(), config_json);
  });
  const std::size_t n = files.size();
  const auto file_name = [&](std::size_t k) {
    if (n == 1) return std::string("model.safetensors");
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, n);
    return std::string(name);
  };
  on_group(group, [&] {  // file k by rank k mod ranks
    for (std::size_t k = static_cast<std::size_t>(rank); k < n; k += static_cast<std::size_t>(ranks)) {
      SafetensorsWriter writer((tmp / file_name(k)).string(), files[k], {{"format", "pt"}});
      for (std::size_t j = 0; j < files[k].size(); ++j) writer.write_next(values(first_tensor[k] + j));
      writer.finish();
    }
  });
  on_group(group, [&] {
    if (rank != 0) return;
    if (n > 1) {
      json weight_map = json::object();
      for (std::size_t k = 0; k < n; ++k) {
        for (const SafetensorsWrite& w : files[k]) {
          weight_map[w.name] = file_name(k);
          if (w.fp8()) weight_map[scale_name(w.name)] = file_name(k);
        }
      }
      write_text_file((tmp / "model.safetensors.index.json").string(),
                      json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n");
    }
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
  });
}

void write_multimodal_model(const std::string& dir, const MultimodalSource& source,
                            const std::vector<HfTensor>& tensors,
                            const std::function<const float*(std::size_t)>& values, DType dtype,
                            std::uint64_t max_shard_bytes, parallel::Communicator* group) {
  namespace fs = std::filesystem;
  HfReader original(source.dir);
  std::vector<HfTensor> all;
  std::set<std::string> language_model;
  for (const HfTensor& t : tensors) {
    all.push_back({source.prefix + t.name, t.shape, t.float32});
    language_model.insert(all.back().name);
  }
  std::vector<std::string> others;
  for (const std::string& name : original.names()) {
    // The language model's are `values`; the rest (a vision tower, a projector) as they are.
    if (language_model.contains(name)) continue;
    all.push_back({name, original.shape_of(name)});
    others.push_back(name);
  }
  const std::string config_json = read_text_file((fs::path(source.dir) / "config.json").string());
  std::vector<float> other;
  write_hf_model(
      dir, config_json, all,
      [&](std::size_t i) {
        if (i < tensors.size()) return values(i);
        other = original.read_all(others[i - tensors.size()]);
        return static_cast<const float*>(other.data());
      },
      dtype, max_shard_bytes, {}, group);
  on_group(group, [&] {
    if (group != nullptr && group->rank() != 0) return;
    for (const char* f : {"preprocessor_config.json", "processor_config.json", "chat_template.json"}) {
      const fs::path from = fs::path(source.dir) / f;
      if (fs::exists(from)) fs::copy_file(from, fs::path(dir) / f, fs::copy_options::overwrite_existing);
    }
  });
}

FileTensors fuse_tensors(const HfLayout& files, const std::vector<HfTensor>& tensors,
                         const std::function<const float*(std::size_t)>& values) {
  if (files.fusions.empty() && files.renames.empty() && files.row_splits.empty()) {
    std::vector<HfTensor> same = tensors;
    for (HfTensor& t : same) t.float32 = files.keeps_float32(t.name);
    return {same, values};
  }
  // The prefix is the caller's.
  const HfLayout layout{"", false, files.fusions, files.renames, files.row_splits, files.float32, {}};
  // File tensor k: the indices of its parts in `tensors` (one, unfused).
  std::vector<HfTensor> out;
  std::vector<std::vector<std::size_t>> parts;
  std::map<std::string, std::size_t> fused_at;  // a fused tensor's index in `out`
  std::vector<std::int64_t> groups;             // by file tensor: its groups (1: unfused, or consecutive parts)
  std::vector<std::int64_t> blocks;             // by file tensor: its first dimension's (1: its rows')
  std::vector<std::int64_t> row_of;             // by file tensor: the row of its tensor it is (-1: not a row)
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!layout.row_name(tensors[i].name, 0).empty()) {  // a file tensor a row
      const Shape row_shape(tensors[i].shape.begin() + 1, tensors[i].shape.end());
      for (std::int64_t r = 0; r < tensors[i].shape[0]; ++r) {
        out.push_back({layout.row_name(tensors[i].name, r), row_shape});
        parts.push_back({i});
        groups.push_back(1);
        blocks.push_back(1);
        row_of.push_back(r);
      }
      continue;
    }
    const HfLayout::Place place = layout.place(tensors[i].name);
    if (place.rows == 0) {
      out.push_back({place.name, tensors[i].shape});
      parts.push_back({i});
      groups.push_back(1);
      blocks.push_back(1);
      row_of.push_back(-1);
      continue;
    }
    const auto [it, first] = fused_at.try_emplace(place.name, out.size());
    if (first) {
      Shape shape = tensors[i].shape;
      shape[0] = place.rows;
      out.push_back({place.name, shape});
      parts.emplace_back();
      groups.push_back(place.groups);
      blocks.push_back(place.blocks);
      row_of.push_back(-1);
    }
    std::vector<std::size_t>& mine = parts[it->second];
    require(out[it->second].shape.size() == tensors[i].shape.size() &&
                std::equal(tensors[i].shape.begin() + 1, tensors[i].shape.end(), out[it->second].shape.begin() + 1),
            "tensor \"", tensors[i].name, "\" (", shape_text(tensors[i].shape), ") does not fit the rows of \"",
            place.name, "\" (", shape_text(out[it->second].shape), ")");
    std::int64_t row = 0;  // its rows follow the parts before it (in each group), as the fusion lists them
    for (std::size_t p : mine) row += tensors[p].shape[0] / place.groups;
    require(row == place.row && tensors[i].shape[0] % place.groups == 0, "tensor \"", tensors[i].name,
            "\" comes out of its order in \"", place.name, "\"");
    mine.push_back(i);
  }
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (row_of[k] >= 0) continue;
    out[k].float32 = parts[k].size() == 1 && files.keeps_float32(tensors[parts[k][0]].name);
    out[k].fp8 = std::all_of(parts[k].begin(), parts[k].end(), [&](std::size_t p) { return tensors[p].fp8; });
    std::int64_t rows = 0;
    for (std::size_t p : parts[k]) rows += tensors[p].shape[0];
    require(rows == out[k].shape[0], "\"", out[k].name, "\": its parts hold ", rows, " of its ", out[k].shape[0],
            " rows");
    if (blocks[k] > 1) {  // written as [blocks, rows / blocks, ...]
      out[k].shape[0] /= blocks[k];
      out[k].shape.insert(out[k].shape.begin(), blocks[k]);
    }
  }
  auto buffer = std::make_shared<std::vector<float>>();
  // The tensor whose values `buffer` holds for its rows (none: past the last).
  auto buffered = std::make_shared<std::size_t>(tensors.size());
  const auto fused_values = [=](std::size_t k) -> const float* {
    if (row_of[k] >= 0) {  // its tensor's values read once for its rows asked one after another
      const std::size_t i = parts[k][0];
      if (*buffered != i) {
        const float* v = values(i);
        buffer->assign(v, v + shape_numel(tensors[i].shape));
        *buffered = i;
      }
      return buffer->data() + row_of[k] * shape_numel(out[k].shape);
    }
    if (parts[k].size() == 1 && shape_numel(out[k].shape) == shape_numel(tensors[parts[k][0]].shape)) {
      return values(parts[k][0]);  // unfused (maybe renamed)
    }
    // Each part's block of every group at its place in that group (group after group: the parts'
    // rows in the fusion's order), each part's values used before the next is asked for.
    const std::int64_t g_count = groups[k], group = shape_numel(out[k].shape) / g_count;
    *buffered = tensors.size();
    buffer->resize(static_cast<std::size_t>(shape_numel(out[k].shape)));
    std::int64_t at = 0;  // the part's first value in each group
    for (std::size_t p : parts[k]) {
      const float* v = values(p);
      const std::int64_t block = shape_numel(tensors[p].shape) / g_count;
      for (std::int64_t g = 0; g < g_count; ++g) std::copy_n(v + g * block, block, buffer->data() + g * group + at);
      at += block;
    }
    return buffer->data();
  };
  return {out, fused_values};
}

void save_hf_model(const std::string& dir, const std::string& config_json, const std::vector<ShardedTensor>& local,
                   parallel::Communicator& mp, const HfFormat& format, const HfLayout& layout,
                   const std::string& original_dir, parallel::Communicator* writers) {
  ModelGather model(local, mp);
  std::exception_ptr failed;  // rank 0's, told the group once the others stop serving
  if (mp.rank() != 0) {
    model.serve();
  } else {
    try {
      require(format.fp8_block[0] == 0 || !layout.multimodal, dir, ": a multimodal model is not written in FP8");
      std::vector<HfTensor> tensors;
      for (const WholeTensor& t : model.tensors()) tensors.push_back({t.name, t.shape, false, format.fp8_for(t.name)});
      // Each tensor pulled whole as its file is written (fused ones part by part).
      const FileTensors files = fuse_tensors(layout, tensors, [&](std::size_t i) { return model.pull(i); });
      if (layout.multimodal) {
        write_multimodal_model(dir, {original_dir, layout.prefix}, files.tensors, files.values, format.dtype,
                               format.max_shard_bytes, writers);
      } else {
        write_hf_model(dir, config_json, files.tensors, files.values, format.dtype, format.max_shard_bytes,
                       format.fp8_block, writers);
      }
    } catch (const std::exception&) {
      failed = std::current_exception();
    }
    model.finish();
  }
  parallel::run_collectively(mp, [&] {
    if (failed) std::rethrow_exception(failed);
  });
}

}  // namespace spin::ckpt
