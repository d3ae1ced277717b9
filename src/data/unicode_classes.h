// The character classes of the regular expressions Hugging Face tokenizers pre-tokenize with:
// \p{L} (letters), \p{N} (numbers), Tekken's cased letters (\p{Lu}\p{Lt}, \p{Ll}), \p{M} (marks),
// DeepSeek-V3's \p{P} (punctuation) and \p{S} (symbols), Kimi's \p{Han} (a script, not a category) --
// tables generated from the Unicode database by gen_unicode_classes.py -- and \s (the
// White_Space property); and UTF-8 text as code points
// with the byte offset of each, invalid bytes one code point each (classed as none of these); and
// Normalization Form C (the NFC normalizer of tokenizer.json files such as Qwen2's).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace spin::data::unicode {

bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_uppercase(char32_t c);  // Lu or Lt
bool is_lowercase(char32_t c);  // Ll
bool is_mark(char32_t c);       // Mn, Mc or Me
bool is_punctuation(char32_t c);  // Pc, Pd, Ps, Pe, Pi, Pf or Po
bool is_symbol(char32_t c);       // Sm, Sc, Sk or So
bool is_han(char32_t c);          // the Han script (Scripts.txt): the Kimi expression's \p{Han}
bool is_whitespace(char32_t c);
// Python's str.isspace(), what str.strip() and so Jinja's trim remove: White_Space and U+001C-U+001F.
bool is_python_space(char32_t c);

struct CodePoints {
  std::vector<char32_t> cp;
  std::vector<std::size_t> at;  // byte offset of each, and the text's length last
  std::size_t size() const { return cp.size(); }
};
// What an invalid byte decodes to (a code point of no class).
inline constexpr char32_t kInvalid = 0xFFFFFFFF;
// A byte that does not start a valid UTF-8 sequence becomes kInvalid, one byte long.
CodePoints decode_utf8(std::string_view text);
// The UTF-8 bytes of `c` appended to `out`.
void append_utf8(std::string& out, char32_t c);
// Where the run of whitespace code points (`space`'s) that ends at byte `to` starts, no earlier than `from`;
// and where the run that starts at byte `from` ends.
std::size_t whitespace_before(std::string_view text, std::size_t from, std::size_t to,
                              bool (*space)(char32_t) = is_whitespace);
std::size_t whitespace_after(std::string_view text, std::size_t from, bool (*space)(char32_t) = is_whitespace);
// `text` in Normalization Form C (unicode_nfc.cpp); bytes that are not valid UTF-8 pass through.
std::string nfc(std::string_view text);

}  // namespace spin::data::unicode
