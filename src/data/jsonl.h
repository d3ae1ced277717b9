// Reading JSON-lines files -- one object per line, every problem an error naming file and line --
// and JSON files holding one array of objects (ShareGPT's and Alpaca's dumps), streamed an element
// at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace spin::data::jsonl {

// Calls fn(text, "path:line", line) for every non-blank line; the file must have one at least.
void for_each_line(const std::string& path,
                   const std::function<void(const std::string&, const std::string&, std::int64_t)>& fn);

// The same until fn returns false.
void for_each_line_until(const std::string& path,
                         const std::function<bool(const std::string&, const std::string&, std::int64_t)>& fn);

// Whether the file's first byte other than whitespace is "[": a JSON array, not JSON lines.
bool is_json_array(const std::string& path);

// Calls fn(element, "path:n", n) for the n-th element of the file's top-level JSON array (from 1),
// each parsed and then dropped before the next is read (a file of any size in the memory of one
// element; fn may move it out), until fn returns false (the rest not read); an element that is not an object, or
// invalid JSON, is an error naming the file (and the element, or the byte offset).
void for_each_array_element(const std::string& path,
                            const std::function<bool(nlohmann::json&, const std::string&, std::int64_t)>& fn);

// The line as a JSON object (invalid JSON, including invalid UTF-8, is an error at `where`).
nlohmann::json parse_object(const std::string& text, const std::string& where);

// j[key] as a list of token ids (non-negative integers that fit int32).
std::vector<std::int32_t> id_list(const nlohmann::json& j, const char* key, const std::string& where);

// j[key] as a string.
std::string string_field(const nlohmann::json& j, const char* key, const std::string& where);

// `text` as a JSON string literal (quotes, escapes); bytes that are not valid UTF-8 -- a
// byte-level model may generate any -- become U+FFFD.
std::string quoted(const std::string& text);

// `ids` as a JSON list literal: [1, 2, 3].
std::string ids_literal(const std::vector<std::int32_t>& ids);

}  // namespace spin::data::jsonl
