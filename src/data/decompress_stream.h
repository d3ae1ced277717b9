// Data files compressed whole -- gzip (train.jsonl.gz, a .json.gz array) or Zstandard
// (.jsonl.zst) -- read as the stream of their bytes, a block at a time: the file is mapped, not
// read, and a reader holds the format's window (DEFLATE's 32 KiB; a Zstandard frame's, 0.5-8 MiB
// as zstd writes files) and one block's output, whatever the file's size. Checksums are checked as
// each member or frame ends; a corrupt or truncated file is a spin::Error naming it, thrown from the
// stream's reads.
#pragma once

#include <istream>
#include <memory>
#include <string>

namespace spin::data {

// The bytes of the data file at `path`: as they are, or decompressed as they are read where the file
// is gzip- or Zstandard-compressed -- told by its first bytes, not its name. The stream's badbit
// exception is on, so a corrupt file's spin::Error reaches the reader.
std::unique_ptr<std::istream> open_data_file(const std::string& path);

}  // namespace spin::data
