#include "data/unicode_classes.h"

#include <algorithm>
#include <iterator>

namespace spin::data::unicode {

namespace {

struct CodePointRange {
  char32_t first, last;
};

#include "data/unicode_classes_table.inc"

template <std::size_t N>
bool in(const CodePointRange (&table)[N], char32_t c) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), c,
                                    [](char32_t v, const CodePointRange& r) { return v < r.first; });
  return it != std::begin(table) && c <= std::prev(it)->last;
}

// ASCII's punctuation and symbols, answered without the tables: its printable characters that are
// neither letters nor digits, of which Unicode's categories make $ + < = > ^ ` | ~ symbols and the
// rest punctuation.
bool is_ascii_punctuation_or_symbol(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}
bool is_ascii_symbol(char32_t c) {
  return c == U'$' || c == U'+' || c == U'<' || c == U'=' || c == U'>' || c == U'^' || c == U'`' || c == U'|' ||
         c == U'~';
}
}  // namespace

// ASCII answered without the tables (most of most texts): its letters are A-Z and a-z, its
// numbers 0-9, and the first mark is U+0300.
bool is_letter(char32_t c) { return c < 0x80 ? (c | 0x20) >= U'a' && (c | 0x20) <= U'z' : in(kLetters, c); }
bool is_number(char32_t c) { return c < 0x80 ? c >= U'0' && c <= U'9' : in(kNumbers, c); }
bool is_uppercase(char32_t c) { return c < 0x80 ? c >= U'A' && c <= U'Z' : in(kUppercase, c); }
bool is_lowercase(char32_t c) { return c < 0x80 ? c >= U'a' && c <= U'z' : in(kLowercase, c); }
bool is_mark(char32_t c) { return c >= 0x300 && in(kMarks, c); }
bool is_punctuation(char32_t c) {
  return c < 0x80 ? is_ascii_punctuation_or_symbol(c) && !is_ascii_symbol(c) : in(kPunctuation, c);
}
bool is_symbol(char32_t c) { return c < 0x80 ? is_ascii_symbol(c) : in(kSymbols, c); }
bool is_han(char32_t c) { return c >= 0x2E80 && in(kHan, c); }

bool is_whitespace(char32_t c) {  // White_Space, as Rust's and Oniguruma's \s
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_python_space(char32_t c) { return is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

CodePoints decode_utf8(std::string_view text) {
  CodePoints out;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = byte(i);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
    if (len == 0 || i + len > text.size()) len = 0;
    for (std::size_t k = 1; k < len; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) {
        len = 0;
        break;
      }
      cp = (cp << 6) | (byte(i + k) & 0x3fu);
    }
    out.at.push_back(i);
    if (len == 0) {
      out.cp.push_back(kInvalid);
      i += 1;
    } else {
      out.cp.push_back(cp);
      i += len;
    }
  }
  out.at.push_back(text.size());
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::size_t whitespace_before(std::string_view text, std::size_t from, std::size_t to, bool (*space)(char32_t)) {
  while (to > from) {
    std::size_t start = to - 1;  // the last code point's first byte: back over continuation bytes
    while (start > from && to - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    const CodePoints c = decode_utf8(text.substr(start, to - start));
    if (c.size() != 1 || !space(c.cp[0])) break;
    to = start;
  }
  return to;
}

std::size_t whitespace_after(std::string_view text, std::size_t from, bool (*space)(char32_t)) {
  while (from < text.size()) {
    const CodePoints c = decode_utf8(text.substr(from, 4));
    if (!space(c.cp[0])) break;
    from += c.at[1];
  }
  return from;
}

}  // namespace spin::data::unicode
