#include "checkpoint/sharded_checkpoint.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/h5.h"
#include "core/error.h"
#include "core/json_file.h"

namespace spin::ckpt {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kIndex = "index.h5";
constexpr const char* kLatest = "latest";

// Contiguous, row-major [start, start + count) of `shape` into `out` (rectangle copy).
void copy_rectangle(const float* src, const Shape& src_start, const Shape& src_count, float* dst,
                    const Shape& dst_start, const Shape& dst_count) {
  // The intersection, in global coordinates.
  const std::size_t rank = src_start.size();
  Shape lo(rank), hi(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    lo[d] = std::max(src_start[d], dst_start[d]);
    hi[d] = std::min(src_start[d] + src_count[d], dst_start[d] + dst_count[d]);
    if (lo[d] >= hi[d]) return;
  }
  if (rank == 1) {
    std::copy(src + (lo[0] - src_start[0]), src + (hi[0] - src_start[0]), dst + (lo[0] - dst_start[0]));
    return;
  }
  require(rank == 2, "checkpoint tensors of rank ", rank, " are not supported");
  for (std::int64_t r = lo[0]; r < hi[0]; ++r) {
    const float* from = src + (r - src_start[0]) * src_count[1] + (lo[1] - src_start[1]);
    float* to = dst + (r - dst_start[0]) * dst_count[1] + (lo[1] - dst_start[1]);
    std::copy(from, from + (hi[1] - lo[1]), to);
  }
}

// Test hook for crash consistency: SPIN_FAULT=checkpoint-commit@<name> kills rank 0 with
// SIGKILL while saving checkpoint <name> (e.g. step_00000004), once every shard file is written
// and before the index exists: the worst moment to die.
void fault_point(const std::string& where) {
  const char* fault = std::getenv("SPIN_FAULT");
  if (fault != nullptr && where == fault) std::raise(SIGKILL);
}

// <save_dir>/latest <- `name`, atomically (a temporary file renamed over it).
void point_latest(const fs::path& save_dir, const std::string& name) {
  const fs::path tmp = save_dir / "latest.tmp";
  write_text_file(tmp.string(), name + "\n");
  h5::fsync_path(tmp.string());
  fs::rename(tmp, save_dir / kLatest);
  h5::fsync_path(save_dir.string());
}

// Removes all but the newest `keep` complete checkpoints of `save_dir`.
void remove_older(const fs::path& save_dir, std::size_t keep) {
  std::vector<fs::path> done;
  for (const auto& entry : fs::directory_iterator(save_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.find(".tmp") == std::string::npos) done.push_back(entry.path());
  }
  std::sort(done.begin(), done.end());
  for (std::size_t i = 0; i + keep < done.size(); ++i) fs::remove_all(done[i]);
}

}  // namespace

std::string checkpoint_dir(const std::string& save_dir, std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return (fs::path(save_dir) / name).string();
}

namespace {
// (The error_code overloads: a path that cannot be examined -- a symbolic-link loop, no permission -- is
// neither, and its read names it then, instead of a bare filesystem_error.)
bool is_save_dir(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path / kLatest, ec);
}
// The checkpoint name `latest` in `save_dir` holds ("" when there is none).
std::string latest_name(const fs::path& save_dir) {
  std::ifstream in(save_dir / kLatest);
  std::string name;
  std::getline(in, name);
  return name;
}
// The directory holding checkpoint `path` (a trailing separator allowed).
fs::path save_dir_of(const std::string& path) {
  fs::path p = fs::absolute(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "a/step_00000004/" -> "a/step_00000004"
  return p.parent_path();
}
}  // namespace

std::string latest_checkpoint(const std::string& save_dir) {
  if (!is_save_dir(save_dir)) return "";
  const fs::path latest = fs::path(save_dir) / kLatest;
  const std::string name = latest_name(save_dir);
  require(!name.empty() && fs::exists(fs::path(save_dir) / name / kIndex), latest.string(),
          ": points to \"", name, "\", which is not a complete checkpoint");
  return (fs::path(save_dir) / name).string();
}

std::string earlier_run_in(const std::string& save_dir, const std::string& start) {
  if (!is_save_dir(save_dir)) return "";
  if (!start.empty() && fs::equivalent(save_dir_of(start), save_dir)) return "";
  return (fs::path(save_dir) / latest_name(save_dir)).string();
}

PathContents what_is_at(const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) return {};
  if (!fs::is_directory(status)) {
    return fs::is_regular_file(status) ? PathContents{"a file"} : PathContents{"a device, FIFO or socket", true};
  }
  if (is_save_dir(path)) return {cat("a save directory (latest: ", latest_name(path), ")"), true};
  if (fs::exists(fs::path(path) / kIndex)) {
    const fs::path dir = save_dir_of(path);
    if (is_save_dir(dir)) return {cat("a checkpoint of save directory ", dir.string()), true};
    return {"a spin checkpoint"};
  }
  if (fs::exists(fs::path(path) / "config.json")) return {"a Hugging Face model directory"};
  const auto entries = std::distance(fs::directory_iterator(path, error), fs::directory_iterator());
  if (entries == 0) return {};
  return {cat("a directory of ", entries, entries == 1 ? " entry" : " entries")};
}

std::string checkpoint_of(const std::string& path) { return is_save_dir(path) ? latest_checkpoint(path) : path; }

bool is_checkpoint(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::path(path) / kIndex, ec) ||
         (fs::is_regular_file(path, ec) && fs::path(path).extension() == ".h5");
}

CheckpointWriter::CheckpointWriter(parallel::Communicator& world, std::string dir)
    : world_(world), dir_(std::move(dir)), tmp_(dir_ + ".tmp"), pieces_json_("[]") {
  std::int32_t ok = 1;
  std::string problem;
  if (world.rank() == 0) {
    try {
      fs::remove_all(tmp_);
      fs::create_directories(tmp_);
    } catch (const fs::filesystem_error& e) {
      ok = 0;
      problem = e.what();
    }
  }
  world.broadcast(&ok, 1, 0);
  require(ok == 1, tmp_, ": cannot create the checkpoint directory (", problem, ")");
}

struct CheckpointWriter::OpenFile {
  std::string name, path;
  h5::File file;
  std::map<std::string, int> seen;  // datasets per tensor in this file
  json written = json::array();
};

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::begin_file(const std::string& file) {
  require(!open_, tmp_, ": ", open_ ? open_->name : "", " is still open");
  const std::string path = (fs::path(tmp_) / file).string();
  open_ = std::make_unique<OpenFile>(OpenFile{file, path, h5::File::create(path), {}, json::array()});
}

void CheckpointWriter::add_piece(const PieceWrite& p) {
  require(open_ != nullptr, tmp_, ": add_piece without begin_file");
  const std::string base = p.group + "/" + p.name;
  const int k = open_->seen[base]++;
  const std::string dataset = k == 0 ? base : base + "#" + std::to_string(k);
  open_->file.write_floats(dataset, p.count, p.data);
  open_->file.start_writeback();
  open_->written.push_back({{"group", p.group}, {"name", p.name}, {"shape", p.global_shape},
                            {"file", open_->name}, {"dataset", dataset}, {"start", p.start}, {"count", p.count}});
}

void CheckpointWriter::end_file() {
  require(open_ != nullptr, tmp_, ": end_file without begin_file");
  open_->file.close();
  h5::fsync_path(open_->path);
  json all = json::parse(pieces_json_);
  for (json& p : open_->written) all.push_back(std::move(p));
  pieces_json_ = all.dump();
  open_.reset();
}

void CheckpointWriter::write_file(const std::string& file, const std::vector<PieceWrite>& pieces) {
  begin_file(file);
  for (const PieceWrite& p : pieces) add_piece(p);
  end_file();
}

void CheckpointWriter::commit(const std::map<std::string, std::string>& attributes, int keep_last,
                              const std::vector<std::string>& extra_files, bool mark_latest) {
  const std::vector<std::string> all = parallel::gather_strings(world_, pieces_json_);
  std::int32_t ok = 1;
  std::string problem;
  if (world_.rank() == 0) {
    fault_point("checkpoint-commit@" + fs::path(dir_).filename().string());
    try {
      json catalog = json::object();
      std::map<std::string, std::vector<h5::File::Source>> sources;
      std::map<std::string, Shape> shapes;
      for (const std::string& text : all) {
        for (const json& p : json::parse(text)) {
          const std::string key = p["group"].get<std::string>() + "/" + p["name"].get<std::string>();
          json& e = catalog[p["group"].get<std::string>()][p["name"].get<std::string>()];
          e["shape"] = p["shape"];
          e["pieces"].push_back({{"file", p["file"]}, {"dataset", p["dataset"]}, {"start", p["start"]},
                                 {"count", p["count"]}});
          shapes[key] = p["shape"].get<Shape>();
          sources[key].push_back({p["file"].get<std::string>(), p["dataset"].get<std::string>(),
                                  p["start"].get<Shape>(), p["count"].get<Shape>()});
        }
      }
      for (const std::string& f : extra_files) {
        if (fs::exists(f)) fs::copy_file(f, fs::path(tmp_) / fs::path(f).filename(), fs::copy_options::overwrite_existing);
      }
      const std::string index = (fs::path(tmp_) / kIndex).string();
      {
        h5::File f = h5::File::create(index);
        f.write_string_attribute("spin_checkpoint_version", std::to_string(kCheckpointVersion));
        f.write_string_attribute("catalog", catalog.dump());
        for (const auto& [name, value] : attributes) f.write_string_attribute(name, value);
        for (const auto& [key, srcs] : sources) f.write_virtual(key, shapes[key], srcs);
        f.close();
      }
      h5::fsync_path(index);
      h5::fsync_path(tmp_);
      // Into place: a previous checkpoint of the same step is replaced only now.
      fs::remove_all(dir_);
      fs::rename(tmp_, dir_);
      const fs::path save_dir = fs::absolute(dir_).parent_path();
      h5::fsync_path(save_dir.string());
      if (mark_latest) {
        point_latest(save_dir, fs::path(dir_).filename().string());
        if (keep_last > 0) remove_older(save_dir, static_cast<std::size_t>(keep_last));
      }
    } catch (const std::exception& e) {
      ok = 0;
      problem = e.what();
    }
  }
  world_.broadcast(&ok, 1, 0);
  require(ok == 1, "saving ", dir_, " failed on rank 0: ", problem);
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  require(fs::exists(path), path, ": no such checkpoint");
  const bool merged = fs::is_regular_file(path);
  require(merged || fs::is_directory(path), path, ": not a checkpoint (a device, FIFO or socket)");
  if (!merged && !fs::exists(fs::path(path) / kIndex)) {
    // Said of what is there (it was "index.h5: missing (the checkpoint is incomplete)" for any directory); a
    // directory with shard files and no index is one that was never committed.
    require(!fs::exists(fs::path(path) / "config.json"), path,
            ": a Hugging Face model directory, not a spin checkpoint (spin ckpt import-hf converts one; spin score, "
            "generate, eval, sft and train read it as it is)");
    const auto shard = [](const fs::directory_entry& e) { return e.path().filename().string().starts_with("shard_"); };
    require(std::any_of(fs::directory_iterator(path), fs::directory_iterator(), shard), path,
            ": not a spin checkpoint (no ", kIndex, ", no shard files)");
  }
  dir_ = merged ? fs::path(path).parent_path().string() : path;
  if (dir_.empty()) dir_ = ".";
  index_ = merged ? path : (fs::path(path) / kIndex).string();
  const std::string& index = index_;
  const h5::File f = h5::File::open_read(index);
  for (const std::string& name : f.attribute_names()) attributes_[name] = f.read_string_attribute(name);
  const std::string version = attribute("spin_checkpoint_version");
  int v = 0;
  try {
    v = std::stoi(version);
  } catch (const std::exception&) {
    fail(index, ": unreadable format version \"", version, "\"");
  }
  require(v <= kCheckpointVersion, index, ": checkpoint format version ", v,
          " is newer than this spin reads (", kCheckpointVersion, "); use a newer spin");
  json catalog;
  try {
    catalog = json::parse(attribute("catalog"));
    for (const auto& [group, tensors] : catalog.items()) {
      for (const auto& [name, e] : tensors.items()) {
        Entry entry;
        entry.shape = e.at("shape").get<Shape>();
        for (const json& p : e.at("pieces")) {
          entry.pieces.push_back({p.at("file").get<std::string>(), p.at("dataset").get<std::string>(),
                                  p.at("start").get<Shape>(), p.at("count").get<Shape>()});
        }
        catalog_[group][name] = std::move(entry);
      }
    }
  } catch (const json::exception& e) {
    fail(index, ": malformed catalog (", e.what(), ")");
  }
}

std::string CheckpointReader::attribute(const std::string& name) const {
  const auto it = attributes_.find(name);
  require(it != attributes_.end(), index_, ": no attribute ", name,
          " (not a spin checkpoint?)");
  return it->second;
}

const CheckpointReader::Entry& CheckpointReader::entry(const std::string& group,
                                                       const std::string& name) const {
  const auto g = catalog_.find(group);
  require(g != catalog_.end(), dir_, ": the checkpoint has no ", group, " tensors");
  const auto e = g->second.find(name);
  require(e != g->second.end(), dir_, ": the checkpoint has no tensor ", group, "/", name);
  return e->second;
}

bool CheckpointReader::has(const std::string& group, const std::string& name) const {
  const auto g = catalog_.find(group);
  return g != catalog_.end() && g->second.count(name) != 0;
}

const Shape& CheckpointReader::shape(const std::string& group, const std::string& name) const {
  return entry(group, name).shape;
}

std::vector<std::string> CheckpointReader::groups() const {
  std::vector<std::string> out;
  for (const auto& [g, t] : catalog_) out.push_back(g);
  return out;
}

std::vector<std::string> CheckpointReader::names(const std::string& group) const {
  std::vector<std::string> out;
  const auto g = catalog_.find(group);
  if (g == catalog_.end()) return out;
  for (const auto& [n, e] : g->second) out.push_back(n);
  return out;
}

const std::vector<PieceInfo>& CheckpointReader::pieces(const std::string& group,
                                                       const std::string& name) const {
  return entry(group, name).pieces;
}

const h5::File& CheckpointReader::open(const std::string& file) const {
  if (!open_file_ || open_name_ != file) {
    open_file_.reset();
    open_file_ = std::make_shared<h5::File>(h5::File::open_read((fs::path(dir_) / file).string()));
    open_name_ = file;
  }
  return *open_file_;
}

void CheckpointReader::read(const std::string& group, const std::string& name, const Shape& start,
                            const Shape& count, float* out) const {
  const Entry& e = entry(group, name);
  require(start.size() == e.shape.size() && count.size() == e.shape.size(), dir_, ": ", group, "/", name, " has shape ",
          shape_text(e.shape), "; asked for a rectangle of rank ", start.size());
  for (std::size_t d = 0; d < start.size(); ++d) {
    require(start[d] >= 0 && start[d] + count[d] <= e.shape[d], dir_, ": ", group, "/", name, " of shape ",
            shape_text(e.shape), " has no rectangle ", shape_text(start), " + ", shape_text(count),
            " (saved for another model?)");
  }
  std::int64_t covered = 0;
  std::vector<float> buffer;
  for (const PieceInfo& p : e.pieces) {
    bool overlaps = true;
    std::int64_t overlap = 1;
    for (std::size_t d = 0; d < start.size(); ++d) {
      const std::int64_t lo = std::max(start[d], p.start[d]);
      const std::int64_t hi = std::min(start[d] + count[d], p.start[d] + p.count[d]);
      overlaps = overlaps && lo < hi;
      overlap *= std::max<std::int64_t>(0, hi - lo);
    }
    if (!overlaps) continue;
    const h5::File& f = open(p.file);
    if (p.start == start && p.count == count) {
      f.read_floats_verified(p.dataset, p.count, out);  // the usual case: the same layout
    } else {
      buffer.resize(static_cast<std::size_t>(shape_numel(p.count)));
      f.read_floats_verified(p.dataset, p.count, buffer.data());
      copy_rectangle(buffer.data(), p.start, p.count, out, start, count);
    }
    covered += overlap;
  }
  require(covered == shape_numel(count), dir_, ": ", group, "/", name, ": the pieces cover ",
          covered, " of the ", shape_numel(count), " values asked for (a shard is missing)");
}

std::vector<float> CheckpointReader::read_all(const std::string& group, const std::string& name) const {
  const Shape& shape = entry(group, name).shape;
  std::vector<float> out(static_cast<std::size_t>(shape_numel(shape)));
  read(group, name, Shape(shape.size(), 0), shape, out.data());
  return out;
}

std::vector<std::string> CheckpointReader::verify() const {
  std::vector<std::string> problems;
  for (const auto& [group, tensors] : catalog_) {
    for (const auto& [name, e] : tensors) {
      for (std::string& p : verify(group, name)) problems.push_back(std::move(p));
    }
  }
  return problems;
}

std::vector<std::string> CheckpointReader::verify(const std::string& group, const std::string& name) const {
  const Entry& e = entry(group, name);
  const std::string what = group + "/" + name;
  std::vector<std::string> problems;
  std::vector<float> buffer;
  std::int64_t volume = 0;
  for (std::size_t i = 0; i < e.pieces.size(); ++i) {
    const PieceInfo& p = e.pieces[i];
    bool inside = p.start.size() == e.shape.size() && p.count.size() == e.shape.size();
    for (std::size_t d = 0; inside && d < e.shape.size(); ++d) {
      inside = p.start[d] >= 0 && p.count[d] > 0 && p.start[d] + p.count[d] <= e.shape[d];
    }
    if (!inside) {
      problems.push_back(cat(what, ": piece ", p.file, ":", p.dataset, " lies outside the tensor"));
      continue;
    }
    volume += shape_numel(p.count);
    for (std::size_t j = 0; j < i; ++j) {  // pairwise: a tensor has few pieces
      const PieceInfo& q = e.pieces[j];
      bool overlap = true;
      for (std::size_t d = 0; d < e.shape.size(); ++d) {
        overlap = overlap && std::max(p.start[d], q.start[d]) < std::min(p.start[d] + p.count[d], q.start[d] + q.count[d]);
      }
      if (overlap) problems.push_back(cat(what, ": pieces ", q.file, ":", q.dataset, " and ", p.file, ":", p.dataset, " overlap"));
    }
    try {
      buffer.resize(static_cast<std::size_t>(shape_numel(p.count)));
      h5::File::open_read((fs::path(dir_) / p.file).string()).read_floats_verified(p.dataset, p.count, buffer.data());
    } catch (const Error& err) {
      problems.push_back(cat(what, ": ", err.what()));
    }
  }
  if (volume != shape_numel(e.shape)) {
    problems.push_back(cat(what, ": the pieces hold ", volume, " of its ", shape_numel(e.shape), " values"));
  }
  return problems;
}

void merge_checkpoint(const CheckpointReader& reader, const std::string& out) {
  const std::string tmp = out + ".tmp";
  const std::string file = fs::path(out).filename().string();
  {
    h5::File f = h5::File::create(tmp);
    json catalog = json::object();
    for (const std::string& group : reader.groups()) {
      for (const std::string& name : reader.names(group)) {
        const Shape& shape = reader.shape(group, name);
        const std::vector<float> values = reader.read_all(group, name);
        const std::string dataset = group + "/" + name;
        f.write_floats(dataset, shape, values.data());
        catalog[group][name] = {{"shape", shape},
                                {"pieces", json::array({{{"file", file}, {"dataset", dataset},
                                                         {"start", Shape(shape.size(), 0)}, {"count", shape}}})}};
      }
    }
    for (const auto& [name, value] : reader.attributes()) {
      if (name != "catalog") f.write_string_attribute(name, value);
    }
    f.write_string_attribute("catalog", catalog.dump());
    f.close();
  }
  h5::fsync_path(tmp);
  fs::rename(tmp, out);
}

}  // namespace spin::ckpt
