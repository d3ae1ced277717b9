#include "data/jsonl.h"

#include <limits>
#include <memory>
#include <string_view>

#include "core/error.h"
#include "data/decompress_stream.h"
#include "data/tokenizer.h"

namespace spin::data::jsonl {

using nlohmann::json;

void for_each_line(const std::string& path,
                   const std::function<void(const std::string&, const std::string&, std::int64_t)>& fn) {
  for_each_line_until(path, [&](const std::string& text, const std::string& where, std::int64_t line) {
    fn(text, where, line);
    return true;
  });
}

void for_each_line_until(const std::string& path,
                         const std::function<bool(const std::string&, const std::string&, std::int64_t)>& fn) {
  const std::unique_ptr<std::istream> in = open_data_file(path);
  std::string text;
  bool any = false;
  for (std::int64_t line = 1; std::getline(*in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    any = true;
    if (!fn(text, cat(path, ":", line), line)) return;
  }
  require(in->eof(), path, ": read error");
  require(any, path, ": no records (the file is empty)");
}

bool is_json_array(const std::string& path) {
  const std::unique_ptr<std::istream> in = open_data_file(path);
  // A UTF-8 byte order mark (Windows editors write one, and the JSON parser skips it) is not the first character:
  // an array after it was read as JSONL, its one line "expected a JSON object".
  if (in->peek() == 0xEF) {
    char mark[3] = {};
    if (!in->read(mark, 3) || std::string_view(mark, 3) != "\xEF\xBB\xBF") return false;
  }
  char c = 0;
  while (in->get(c) && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
  }
  return *in && c == '[';
}

void for_each_array_element(const std::string& path,
                            const std::function<bool(json&, const std::string&, std::int64_t)>& fn) {
  const std::unique_ptr<std::istream> in = open_data_file(path);
  std::int64_t n = 0;
  struct Stop {};  // fn asked for no more: leaves the parser
  // The parser's callback sees each top-level element once it is complete (depth 1: inside the
  // array), hands it to fn and drops it (returns false), so the array stays empty.
  const json::parser_callback_t element = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth != 1) return true;
    const bool object = event == json::parse_event_t::object_end;
    if (!object && event != json::parse_event_t::value && event != json::parse_event_t::array_end) return true;
    ++n;
    const std::string where = cat(path, ":", n);
    require(object, where, ": expected a JSON object");
    if (!fn(parsed, where, n)) throw Stop{};
    return false;
  };
  try {
    const json empty = json::parse(*in, element);  // the array, every element dropped
    require(empty.is_array(), path, ": not a JSON array");
  } catch (const json::parse_error& e) {
    fail(path, ": not valid JSON (", printable(e.what()), ")");
  } catch (const Stop&) {
    return;
  }
  require(n > 0, path, ": no records (the array is empty)");
}

json parse_object(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(where, ": not valid JSON (", printable(e.what()), ")");
  }
  require(j.is_object(), where, ": expected a JSON object");
  return j;
}

std::vector<std::int32_t> id_list(const json& j, const char* key, const std::string& where) {
  require(j.contains(key), where, ": missing \"", key, "\"");
  const json& list = j.at(key);
  require(list.is_array(), where, ": \"", key, "\" must be a list of token ids");
  std::vector<std::int32_t> ids;
  ids.reserve(list.size());
  for (const json& id : list) {
    require(id.is_number_integer() && id.get<std::int64_t>() >= 0 &&
                id.get<std::int64_t>() <= std::numeric_limits<std::int32_t>::max(),
            where, ": \"", key, "\" holds ", id.dump(), ", not a token id");
    ids.push_back(static_cast<std::int32_t>(id.get<std::int64_t>()));
  }
  return ids;
}

std::string string_field(const json& j, const char* key, const std::string& where) {
  require(j.contains(key), where, ": missing \"", key, "\"");
  require(j.at(key).is_string(), where, ": \"", key, "\" must be a string");
  return j.at(key).get<std::string>();
}

std::string quoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ids_literal(const std::vector<std::int32_t>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

}  // namespace spin::data::jsonl
