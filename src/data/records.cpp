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

nlohmann::json Record::take() {
  if (text_ == nullptr) return std::move(*row_);
  object();
  return std::move(*parsed_);
}

void for_each_record_until(const std::string& path, const std::vector<std::string>& columns,
                           const std::function<bool(Record&)>& fn) {
  if (jsonl::is_json_array(path)) {
    jsonl::for_each_array_element(path, [&](nlohmann::json& element, const std::string& where, std::int64_t n) {
      Record record(where, n, nullptr, &element);
      return fn(record);
    });
  } else if (parquet::is_parquet(path)) {
    bool any = false;
    parquet::for_each_row(path, columns, [&](nlohmann::json&& row, std::int64_t n) {
      any = true;
      Record record(cat(path, ":", n), n, nullptr, &row);
      return fn(record);
    });
    require(any, path, ": no records (the file has no rows)");
  } else {
    jsonl::for_each_line_until(path, [&](const std::string& text, const std::string& where, std::int64_t line) {
      Record record(where, line, &text, nullptr);
      return fn(record);
    });
  }
}

void for_each_record(const std::string& path, const std::vector<std::string>& columns,
                     const std::function<void(Record&)>& fn) {
  for_each_record_until(path, columns, [&](Record& record) {
    fn(record);
    return true;
  });
}

nlohmann::json first_record(const std::string& path, const std::vector<std::string>& columns) {
  nlohmann::json first;
  for_each_record_until(path, columns, [&](Record& record) {
    first = record.take();
    return false;
  });
  return first;
}

}  // namespace spin::data
