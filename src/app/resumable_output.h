// A JSONL output written in rounds that a stopped run can resume (spin generate --save-every):
// each finished round's lines are appended to OUT.partial and flushed to disk, beside
// OUT.partial.run, one line holding the run's fingerprint; a run started again with the same
// fingerprint keeps the complete lines (a line torn by a crash is dropped) and goes on from
// them, and the last round renames OUT.partial to OUT. One process (rank 0) owns the files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace spin::app {

// Where an output file named `path` is written, checked before any work: a directory, or a path whose
// parent directory does not exist, is an error naming `option`. A device, a FIFO or a socket (/dev/null,
// /dev/stdout, a named pipe) is written in place (`in_place`): replacing it -- a file written beside it and
// renamed over it, as outputs are, so that a crash never leaves half of one -- put a regular file where
// /dev/null was, for every program after it (as root, in a container). A symbolic link is followed: its
// target is the file replaced, the link kept.
struct OutputTarget {
  std::string path;       // the file to write, or to write beside and rename over
  bool in_place = false;  // not a regular file: written directly, nothing beside it, no rename, no resume
};
OutputTarget output_target(const std::string& path, const std::string& option);
// What `path` names once its symbolic links are read, one by one: the path itself where it is none, a link's
// target where it is one -- a target not written yet (a dangling link) included. An output is written there:
// a file or directory written beside a link and renamed over it would replace the link and leave its target
// as it was (and a temporary directory beside a link to another file system could not be renamed at all).
std::string through_links(const std::string& path);

// FNV-1a, 64 bits, over `text` continuing from `hash` (the offset basis to start): a
// fingerprint of a run's inputs and settings, not a cryptographic hash.
std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 14695981039346656037ull);

class ResumableOutput {
 public:
  // Opens `path`.partial for `lines` lines in all: a new file (also in place of one without a
  // complete line: no work to lose), or an existing one written under the same fingerprint.
  // Throws spin::Error naming the files for one written under another fingerprint (other
  // inputs or settings) or without its .run file. `path` is output_target's: a device, FIFO or
  // socket is written in place, from the first line, and never resumed.
  ResumableOutput(const OutputTarget& path, std::uint64_t fingerprint, std::int64_t lines);
  ~ResumableOutput();
  ResumableOutput(const ResumableOutput&) = delete;
  ResumableOutput& operator=(const ResumableOutput&) = delete;

  // Complete lines already in the file: the run goes on from there.
  std::int64_t lines_done() const { return done_; }
  // Appends `count` complete lines ('\n'-terminated) and makes them durable (fflush, fsync).
  void append(const std::string& text, std::int64_t count);
  // Every line written: the file becomes `path` (replacing any older one). Throws if some are missing.
  void finish();
  const std::string& partial_path() const { return partial_; }

 private:
  std::string path_, partial_, run_;
  bool in_place_ = false;
  std::int64_t lines_ = 0, done_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace spin::app
