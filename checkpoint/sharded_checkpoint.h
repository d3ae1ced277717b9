// spin's checkpoints: a directory <save_dir>/step_<N>/ of HDF5 files.
//   - Each writing rank puts its pieces of global tensors into its own file (no collective I/O):
//     a piece is a rectangle [start, start + count) of a global tensor, a float32 dataset named
//     "<group>/<tensor name>" (plus "#k" for a tensor's second and later pieces in one file)
//     with an "xxh3_64" checksum attribute (XXH3 64-bit of its bytes, hex).
//   - Rank 0 writes index.h5 last: attributes "spin_checkpoint_version", "catalog" (JSON:
//     per group and tensor, its shape and where every piece lives) and whatever the caller
//     passes (training state, model config, layout); and one virtual dataset per global tensor,
//     "<group>/<name>", mapping its pieces, so h5py sees whole tensors.
//   - Atomic: everything is written under step_<N>.tmp, fsynced, then renamed; `latest` in the
//     save directory is replaced through a temporary file. A crash leaves the previous
//     checkpoint intact; incomplete .tmp directories are ignored (and cleaned by the next save).
// Readers ask for any rectangle of any tensor; the sources it overlaps are read whole and their
// checksums verified, so a checkpoint loads under any parallel layout.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "parallel/communicator.h"

namespace spin::ckpt {

namespace h5 {
class File;
}

inline constexpr int kCheckpointVersion = 1;

struct PieceWrite {
  std::string group;  // "policy", "reference", "optimizer/exp_avg", ...
  std::string name;   // the tensor's Hugging Face name
  Shape global_shape;
  Shape start, count;  // the rectangle this piece covers
  const float* data = nullptr;  // count elements, row-major
};

class CheckpointWriter {
 public:
  // Collective over `world`: rank 0 (re)creates `dir`.tmp.
  CheckpointWriter(parallel::Communicator& world, std::string dir);

  ~CheckpointWriter();

  // This rank's pieces into `file` (a plain file name no other rank writes), flushed and
  // fsynced. Ranks with nothing to write skip it; a rank may write several files.
  void write_file(const std::string& file, const std::vector<PieceWrite>& pieces);
  // The same, one piece at a time (a piece's data need live only during add_piece): for tools
  // that stream a model tensor by tensor.
  void begin_file(const std::string& file);
  void add_piece(const PieceWrite& piece);
  void end_file();

  // Collective: rank 0 gathers every piece's place, writes index.h5 with `attributes`
  // (name -> text), syncs, renames the directory into place and, with `mark_latest` (a
  // training run's save directory), replaces `latest` beside it and removes checkpoints beyond
  // the newest `keep_last` (0: keep all). `extra_files` (paths) are copied into the checkpoint
  // first (tokenizer files).
  void commit(const std::map<std::string, std::string>& attributes, int keep_last,
              const std::vector<std::string>& extra_files = {}, bool mark_latest = true);

 private:
  struct OpenFile;
  parallel::Communicator& world_;
  std::string dir_, tmp_;
  std::string pieces_json_;  // this rank's written pieces, as a JSON array
  std::unique_ptr<OpenFile> open_;
};

struct PieceInfo {
  std::string file, dataset;
  Shape start, count;
};

class CheckpointReader {
 public:
  // Reads `path`/index.h5 (or `path` itself when it is a file: a merged checkpoint); throws
  // naming the file for a missing index, a newer format version, a malformed catalog.
  explicit CheckpointReader(const std::string& path);

  const std::string& dir() const { return dir_; }        // a merged file's directory
  const std::string& path() const { return path_; }      // the step directory or the merged file, as given
  std::string attribute(const std::string& name) const;  // throws naming the index if absent
  bool has_attribute(const std::string& name) const { return attributes_.count(name) != 0; }
  const std::map<std::string, std::string>& attributes() const { return attributes_; }
  bool has(const std::string& group, const std::string& name) const;
  const Shape& shape(const std::string& group, const std::string& name) const;
  std::vector<std::string> groups() const;
  std::vector<std::string> names(const std::string& group) const;
  const std::vector<PieceInfo>& pieces(const std::string& group, const std::string& name) const;

  // out[count] <- the rectangle [start, start + count) of the tensor, every overlapping source
  // dataset read whole and verified (a checksum mismatch names file and tensor).
  void read(const std::string& group, const std::string& name, const Shape& start,
            const Shape& count, float* out) const;
  // The whole tensor.
  std::vector<float> read_all(const std::string& group, const std::string& name) const;

  // Every problem found, none when the checkpoint is sound: each piece's file and dataset
  // exist with the catalogued shape and checksum, and the pieces of every tensor cover it
  // exactly once. Reads every byte.
  std::vector<std::string> verify() const;
  std::vector<std::string> verify(const std::string& group, const std::string& name) const;

 private:
  struct Entry {
    Shape shape;
    std::vector<PieceInfo> pieces;
  };
  const Entry& entry(const std::string& group, const std::string& name) const;
  // The shard file `file`, kept open from one read to the next (reads go file by file).
  const h5::File& open(const std::string& file) const;

  std::string path_, dir_, index_;
  mutable std::string open_name_;
  mutable std::shared_ptr<h5::File> open_file_;
  std::map<std::string, std::string> attributes_;
  std::map<std::string, std::map<std::string, Entry>> catalog_;
};

// Writes every tensor of `reader` whole into the single HDF5 file `out` (written as `out`.tmp,
// then renamed), with the same attributes and a catalog pointing at itself: h5py sees whole
// tensors and CheckpointReader(out) loads it. Memory: the largest tensor.
void merge_checkpoint(const CheckpointReader& reader, const std::string& out);

// The checkpoint `latest` in `save_dir` points to, or "" when there is none.
std::string latest_checkpoint(const std::string& save_dir);
// The checkpoint of an earlier run in `save_dir` that a run starting from `start` (a checkpoint, "" for
// none) would write over -- its step directories, `latest` and metrics, keep_last deleting the earlier
// ones: what save_dir's `latest` names, unless `start` is one of save_dir's own checkpoints (the run
// resumed, or rolled back to an earlier step). "" when there is none.
std::string earlier_run_in(const std::string& save_dir, const std::string& start);
// What an output written at a path would replace.
struct PathContents {
  // In words: "a save directory (latest: step_00000012)", "a checkpoint of save directory D", "a spin
  // checkpoint", "a Hugging Face model directory", "a file", "a directory of 3 entries", "a device, FIFO or
  // socket"; "" where there is nothing (no such path, or an empty directory).
  std::string what;
  // Never replaced, --overwrite or not: a run's state (a save directory -- one that holds a `latest` -- or a
  // checkpoint in one), or a file that is not a regular one (/dev/null replaced by a directory, as root).
  bool never_replaced = false;
};
PathContents what_is_at(const std::string& path);
// The checkpoint `path` names: a save directory's `latest`, else `path` itself.
std::string checkpoint_of(const std::string& path);
// Whether `path` is a checkpoint: a step directory with its index, or a merged checkpoint file.
bool is_checkpoint(const std::string& path);
// "<save_dir>/step_<N>" with N zero-padded to 8 digits.
std::string checkpoint_dir(const std::string& save_dir, std::int64_t step);

}  // namespace spin::ckpt
