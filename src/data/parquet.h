// Apache Parquet files read as rows of JSON -- the layout Hugging Face publishes data sets in
// (HuggingFaceH4/ultrachat_200k, UCLA-AGI/SPIN_iter*), so spin reads them as they are downloaded.
// A row is an object whose members are its columns: lists (LIST-annotated groups, repeated fields)
// are arrays, structs objects, strings strings, integers and floats numbers; a null top-level
// column is left out, as a key a JSONL record does not have. Read: PLAIN, dictionary and DELTA_*
// encoded values in v1 and v2 data pages, uncompressed, Snappy (pyarrow's and so the Hub's
// default), ZSTD (polars'), GZIP, LZ4_RAW or LZ4 (Hadoop-framed or raw); anything else -- BROTLI,
// LZO, INT96 -- is refused naming file and column.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace spin::data::parquet {

// Whether the file starts with Parquet's magic bytes "PAR1".
bool is_parquet(const std::string& path);

// Calls fn(row, row number from 1) for the file's rows in order, until fn returns false.
// `columns`: the top-level columns to read, the others not decoded (so a column of a type spin
// does not read costs nothing); a file with none of them is an error listing its columns.
void for_each_row(const std::string& path, const std::vector<std::string>& columns,
                  const std::function<bool(nlohmann::json&&, std::int64_t)>& fn);

}  // namespace spin::data::parquet
