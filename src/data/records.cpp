#include "data/records.h"

#include "core/error.h"
#include "data/jsonl.h"
#include "data/parquet.h"

namespace spin::data {

const nlohmann::json& Record::object() const {
  if (text_ == nullptr) return *row_;
  if (!parsed_) parsed_ = jsonl::parse_object(*text_, where_);
  return *parsed_;
}

void for_each_record(const std::string& path, const std::vector<std::string>& columns,
                     const std::function<void(const Record&)>& fn) {
  if (jsonl::is_json_array(path)) {
    jsonl::for_each_array_element(path, [&](const nlohmann::json& element, const std::string& where, std::int64_t n) {
      fn(Record(where, n, nullptr, &element));
      return true;
    });
    return;
  }
  if (!parquet::is_parquet(path)) {
    jsonl::for_each_line(path, [&](const std::string& text, const std::string& where, std::int64_t line) {
      fn(Record(where, line, &text, nullptr));
    });
    return;
  }
  bool any = false;
  parquet::for_each_row(path, columns, [&](nlohmann::json&& row, std::int64_t n) {
    fn(Record(cat(path, ":", n), n, nullptr, &row));
    any = true;
    return true;
  });
  require(any, path, ": no records (the file has no rows)");
}

nlohmann::json first_record(const std::string& path, const std::vector<std::string>& columns) {
  nlohmann::json first;
  if (jsonl::is_json_array(path)) {
    jsonl::for_each_array_element(path, [&](const nlohmann::json& element, const std::string&, std::int64_t) {
      first = element;
      return false;
    });
    return first;
  }
  if (parquet::is_parquet(path)) {
    parquet::for_each_row(path, columns, [&](nlohmann::json&& row, std::int64_t) {
      first = std::move(row);
      return false;
    });
    require(!first.is_null(), path, ": no records (the file has no rows)");
    return first;
  }
  jsonl::for_each_line_until(path, [&](const std::string& text, const std::string& where, std::int64_t) {
    first = jsonl::parse_object(text, where);
    return false;
  });
  return first;
}

}  // namespace spin::data
