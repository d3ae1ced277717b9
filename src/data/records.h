// The records of a data file, whatever its format: JSON Lines (an object a line), a JSON array of
// objects (ShareGPT's dumps; its first byte other than whitespace "["), or Apache Parquet (an
// object a row; told by the file's "PAR1" magic) -- by the bytes, not the name. The readers of
// examples, prompts and token records see one JSON object a record and a "file:N" to name it by --
// N the line of a JSONL file, the element or row (from 1) of an array or a Parquet file.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace spin::data {

class Record {
 public:
  Record(std::string where, std::int64_t line, const std::string* text, nlohmann::json* row)
      : where_(std::move(where)), line_(line), text_(text), row_(row) {}

  const std::string& where() const { return where_; }  // "file:N"
  std::int64_t line() const { return line_; }           // N
  // The record as an object, valid while fn runs: a JSONL line parsed at the first call (invalid
  // JSON an error at where()), so a reader that skips bad records catches it as any other.
  const nlohmann::json& object() const;
  // The same, moved out for a reader that keeps it past fn (object() is then unspecified).
  nlohmann::json take();

 private:
  std::string where_;
  std::int64_t line_;
  const std::string* text_;                       // a JSONL line, or
  nlohmann::json* row_;                           // an array's element or a Parquet row
  mutable std::optional<nlohmann::json> parsed_;  // the line, once parsed
};

// Calls fn for the records of `path` (one file) in order, until fn returns false. `columns`: the
// top-level keys the reader uses -- a Parquet file's other columns are not decoded. A file without
// records is an error.
void for_each_record_until(const std::string& path, const std::vector<std::string>& columns,
                           const std::function<bool(Record&)>& fn);

// Every record of `path`.
void for_each_record(const std::string& path, const std::vector<std::string>& columns,
                     const std::function<void(Record&)>& fn);

// The first record of `path` as an object (the rest not read).
nlohmann::json first_record(const std::string& path, const std::vector<std::string>& columns);

}  // namespace spin::data
