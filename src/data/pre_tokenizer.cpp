#include "data/pre_tokenizer.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

#include "data/unicode_classes.h"

namespace spin::data {

namespace {

using unicode::CodePoints;

// The pre-tokenizers' regular expressions, as tokenizer.json spells them.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2's: Llama-3's with one digit a piece.
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral's Tekken (tekken.json's config.pattern, and the Split of its tokenizer.json): words cut
// where lower case turns to upper, no contractions, one digit a piece.
constexpr std::string_view kTekkenPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// OpenAI's o200k (GPT-4o; Phi-4-mini's and Llama 4's tokenizer.json): Tekken's words with
// contractions after them (any case), and numbers of up to three digits.
constexpr std::string_view kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Moonshot AI's (Moonlight, Kimi K2: tokenization_moonshot.py's / tokenization_kimi.py's pat_str, run by
// tiktoken): o200k's with runs of Han characters first and apart -- Han taken out of both word classes --
// and no "/" after punctuation.
constexpr std::string_view kKimiPattern =
    R"([\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// DeepSeek-V3's three, in the order its Sequence runs them; their line breaks in brackets written \r \n
// (the files have the characters themselves: is_deepseek_v3_sequence reads either).
constexpr std::string_view kDeepSeekNumbers = R"(\p{N}{1,3})";
constexpr std::string_view kDeepSeekCjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
constexpr std::string_view kDeepSeekWords =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool letter(char32_t c) { return unicode::is_letter(c); }
bool number(char32_t c) { return unicode::is_number(c); }
bool space(char32_t c) { return unicode::is_whitespace(c); }
bool crlf(char32_t c) { return c == U'\r' || c == U'\n'; }
bool other(char32_t c) { return !space(c) && !letter(c) && !number(c); }  // [^\s\p{L}\p{N}]
bool crlf_or_slash(char32_t c) { return crlf(c) || c == U'/'; }
bool word_prefix(char32_t c) { return !crlf(c) && !letter(c) && !number(c); }  // [^\r\n\p{L}\p{N}]
// Tekken's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}]: letters without case and
// marks are in both; Kimi's the same less the Han script.
bool upper_like(char32_t c) { return unicode::is_mark(c) || (letter(c) && !unicode::is_lowercase(c)); }
bool lower_like(char32_t c) { return unicode::is_mark(c) || (letter(c) && !unicode::is_uppercase(c)); }
bool upper_like_not_han(char32_t c) { return upper_like(c) && !unicode::is_han(c); }
bool lower_like_not_han(char32_t c) { return lower_like(c) && !unicode::is_han(c); }

// The end of the run of code points from `i` that satisfy `in`.
template <class Pred>
std::size_t run(const CodePoints& s, std::size_t i, Pred in) {
  while (i < s.size() && in(s.cp[i])) ++i;
  return i;
}

// 's 't 're 've 'm 'll 'd at i: the match's end, or i. With `any_case`, (?i:...) as Oniguruma and fancy-regex
// run it: Unicode's simple case folding, which maps A-Z and LATIN SMALL LETTER LONG S (U+017F, an s) -- and no
// other code point -- onto these letters.
std::size_t contraction(const CodePoints& s, std::size_t i, bool any_case) {
  if (s.cp[i] != U'\'') return i;
  for (std::u32string_view suffix : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"}) {
    if (i + 1 + suffix.size() > s.size()) continue;
    bool ok = true;
    for (std::size_t k = 0; k < suffix.size() && ok; ++k) {
      char32_t c = s.cp[i + 1 + k];
      if (any_case && c >= U'A' && c <= U'Z') c += U'a' - U'A';
      if (any_case && c == U'\u017f') c = U's';
      ok = c == suffix[k];
    }
    if (ok) return i + 1 + suffix.size();
  }
  return i;
}

// \s+(?!\S) then \s+ at a whitespace code point: the run, less its last code point when a
// non-space follows and the run is longer than one (that one goes with the next piece).
std::size_t spaces(const CodePoints& s, std::size_t i) {
  const std::size_t j = run(s, i, space);
  return j == s.size() || j - 1 == i ? j : j - 1;
}

// \s*[\r\n]+ (up to the last line break of the whitespace run at i), else \s+(?!\S) then \s+: the
// last alternatives of Llama-3's and Tekken's expressions.
std::size_t line_breaks_or_spaces(const CodePoints& s, std::size_t i) {
  const std::size_t j = run(s, i, space);
  for (std::size_t k = j; k > i; --k) {
    if (crlf(s.cp[k - 1])) return k;
  }
  return spaces(s, i);
}

// One match of GPT-2's expression at i (leftmost-first alternation, as Oniguruma runs it).
std::size_t match_gpt2(const CodePoints& s, std::size_t i) {
  if (const std::size_t j = contraction(s, i, false); j > i) return j;
  const std::size_t k = s.cp[i] == U' ' && i + 1 < s.size() ? i + 1 : i;  // the optional space
  for (auto in : {letter, number, other}) {  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    if (in(s.cp[i])) return run(s, i, in);
    if (k > i && in(s.cp[k])) return run(s, k, in);
  }
  return spaces(s, i);
}

// One match of Llama-3's expression at i, or Qwen2's with `max_digits` 1.
std::size_t match_llama3(const CodePoints& s, std::size_t i, std::size_t max_digits) {
  const char32_t c = s.cp[i];
  if (const std::size_t j = contraction(s, i, true); j > i) return j;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (letter(c)) return run(s, i, letter);
  if (!crlf(c) && !number(c) && i + 1 < s.size() && letter(s.cp[i + 1])) return run(s, i + 1, letter);
  // \p{N}{1,3} (Qwen2: \p{N})
  if (number(c)) return std::min(run(s, i, number), i + max_digits);
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  if (other(c)) return run(s, run(s, i, other), crlf);
  if (c == U' ' && i + 1 < s.size() && other(s.cp[i + 1])) return run(s, run(s, i + 1, other), crlf);
  return line_breaks_or_spaces(s, i);
}

// The expressions that cut words where lower case turns to upper -- Tekken's, o200k's, Kimi's --
// differ in these.
struct CasedWords {
  bool contractions;       // (?i:'s|'t|'re|'ve|'m|'ll|'d)? after either word alternative
  std::size_t max_digits;  // \p{N} or \p{N}{1,3}
  bool slash;              // ' ?[^\s\p{L}\p{N}]+[\r\n/]*' rather than [\r\n]*
  bool han;                // [\p{Han}]+ first, and Han out of the word classes
};
constexpr CasedWords kTekkenWords{false, 1, true, false};
constexpr CasedWords kO200kWords{true, 3, true, false};
constexpr CasedWords kKimiWords{true, 3, false, true};

// [upper-like]*[lower-like]+ at p, as a backtracking engine matches it: the upper-like run as long as
// possible, then shorter, until a lower-like code point follows; that run of lower-like ones is
// the rest. The match's end, or npos.
template <class Upper, class Lower>
std::size_t cased_word(const CodePoints& s, std::size_t p, Upper upper, Lower lower) {
  for (std::size_t k = run(s, p, upper) + 1; k-- > p;) {
    if (k < s.size() && lower(s.cp[k])) return run(s, k, lower);
  }
  return std::string_view::npos;
}

// One match at i of Tekken's expression, o200k's or Kimi's (`w`), leftmost-first alternation with the
// optional prefix tried first, as tiktoken's fancy-regex and Oniguruma run it: a contraction may
// follow either word alternative (greedy, after the word's greedy runs).
template <class Upper, class Lower>
std::size_t match_cased_words(const CodePoints& s, std::size_t i, const CasedWords& w, Upper upper, Lower lower) {
  const char32_t c = s.cp[i];
  if (w.han && unicode::is_han(c)) return run(s, i, unicode::is_han);  // [\p{Han}]+
  const bool prefix = word_prefix(c) && i + 1 < s.size();
  const auto word_end = [&](std::size_t j) { return w.contractions && j < s.size() ? contraction(s, j, true) : j; };
  // [^\r\n\p{L}\p{N}]?[upper-like]*[lower-like]+
  if (prefix) {
    if (const std::size_t j = cased_word(s, i + 1, upper, lower); j != std::string_view::npos) return word_end(j);
  }
  if (const std::size_t j = cased_word(s, i, upper, lower); j != std::string_view::npos) return word_end(j);
  // [^\r\n\p{L}\p{N}]?[upper-like]+[lower-like]*
  if (prefix && upper(s.cp[i + 1])) return word_end(run(s, run(s, i + 1, upper), lower));
  if (upper(c)) return word_end(run(s, run(s, i, upper), lower));
  if (number(c)) return std::min(run(s, i, number), i + w.max_digits);
  // ' ?[^\s\p{L}\p{N}]+[\r\n/]*' (Kimi: [\r\n]*)
  const auto tail = [&](std::size_t j) { return w.slash ? run(s, j, crlf_or_slash) : run(s, j, crlf); };
  if (other(c)) return tail(run(s, i, other));
  if (c == U' ' && i + 1 < s.size() && other(s.cp[i + 1])) return tail(run(s, i + 1, other));
  return line_breaks_or_spaces(s, i);
}

std::size_t match_cased_words(const CodePoints& s, std::size_t i, const CasedWords& w) {
  return w.han ? match_cased_words(s, i, w, upper_like_not_han, lower_like_not_han)
               : match_cased_words(s, i, w, upper_like, lower_like);
}

// DeepSeek-V3's CJK class: the ideographs U+4E00-U+9FA5, hiragana and katakana (U+3040-U+30FF).
bool cjk(char32_t c) { return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x30FF); }
// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]: every ASCII punctuation mark and symbol.
bool ascii_punctuation(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}
bool ascii_letter(char32_t c) { return c < 0x80 && letter(c); }
bool letter_or_mark(char32_t c) { return letter(c) || unicode::is_mark(c); }                            // [\p{L}\p{M}]
bool punctuation_or_symbol(char32_t c) { return unicode::is_punctuation(c) || unicode::is_symbol(c); }  // [\p{P}\p{S}]

// DeepSeek-V3's expressions at i: the match's end, or i where none starts there.
std::size_t match_deepseek_numbers(const CodePoints& s, std::size_t i) {  // \p{N}{1,3}
  return number(s.cp[i]) ? std::min(run(s, i, number), i + 3) : i;
}
std::size_t match_deepseek_cjk(const CodePoints& s, std::size_t i) { return run(s, i, cjk); }
std::size_t match_deepseek_words(const CodePoints& s, std::size_t i) {
  const char32_t c = s.cp[i];
  const bool more = i + 1 < s.size();
  // [!"#...~][A-Za-z]+
  if (ascii_punctuation(c) && more && ascii_letter(s.cp[i + 1])) return run(s, i + 1, ascii_letter);
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+, the optional code point tried first
  if (!crlf(c) && !letter(c) && !punctuation_or_symbol(c) && more && letter_or_mark(s.cp[i + 1])) {
    return run(s, i + 1, letter_or_mark);
  }
  if (letter_or_mark(c)) return run(s, i, letter_or_mark);
  // ' ?[\p{P}\p{S}]+[\r\n]*'
  if (c == U' ' && more && punctuation_or_symbol(s.cp[i + 1])) {
    return run(s, run(s, i + 1, punctuation_or_symbol), crlf);
  }
  if (punctuation_or_symbol(c)) return run(s, run(s, i, punctuation_or_symbol), crlf);
  if (space(c)) return line_breaks_or_spaces(s, i);  // \s*[\r\n]+|\s+(?!\S)|\s+
  return i;                                          // a number (the first Split's), a control character, ...
}

// `tokenizers`' Split with behavior Isolated over the code points `s`: every match of `match` a piece, and every
// stretch between matches (code points where none starts) one piece -- each given to emit(from, to), code points
// [from, to) of `s`, in order.
template <class Match, class Emit>
void for_each_isolated(const CodePoints& s, Match match, Emit emit) {
  std::size_t unmatched = 0;  // where the current stretch without a match began
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t j = match(s, i);
    if (j == i) {
      ++i;
      continue;
    }
    if (unmatched < i) emit(unmatched, i);
    emit(i, j);
    unmatched = i = j;
  }
  if (unmatched < s.size()) emit(unmatched, s.size());
}
// The same over the code points `s` of `text` (s.at: offsets in `text`), the pieces appended to `pieces`.
template <class Match>
void split_isolated(std::string_view text, const CodePoints& s, Match match, std::vector<std::string_view>& pieces) {
  for_each_isolated(s, match, [&](std::size_t from, std::size_t to) {
    pieces.push_back(text.substr(s.at[from], s.at[to] - s.at[from]));
  });
}

// DeepSeek-V3's Splits over `text`. The first two fused in one pass -- \p{N}{1,3} chunks, then CJK runs within
// the stretches between them, as the two Isolated Splits in sequence cut the text -- and the third over each
// stretch left (a chunk of digits or a run of CJK, which are letters, is one piece of the third's too).
std::vector<std::string_view> deepseek_v3_pieces(std::string_view text) {
  const CodePoints s = unicode::decode_utf8(text);
  std::vector<std::string_view> pieces;
  CodePoints stretch;
  const auto words = [&](std::size_t from, std::size_t to) {  // the third Split over code points [from, to)
    stretch.cp.assign(s.cp.begin() + static_cast<std::ptrdiff_t>(from), s.cp.begin() + static_cast<std::ptrdiff_t>(to));
    stretch.at.assign(s.at.begin() + static_cast<std::ptrdiff_t>(from),
                      s.at.begin() + static_cast<std::ptrdiff_t>(to) + 1);
    split_isolated(text, stretch, match_deepseek_words, pieces);
  };
  std::size_t unmatched = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t j = number(s.cp[i]) ? match_deepseek_numbers(s, i) : match_deepseek_cjk(s, i);
    if (j == i) {
      ++i;
      continue;
    }
    if (unmatched < i) words(unmatched, i);
    pieces.push_back(text.substr(s.at[i], s.at[j] - s.at[i]));
    unmatched = i = j;
  }
  if (unmatched < s.size()) words(unmatched, s.size());
  return pieces;
}

// DeepSeek LLM's classes, as its tokenizer.json lists them in brackets: ranges, and single code points
// (written apart even when adjacent, as there). The letters are cased letters (Unicode's Lu, Ll, Lt) of the
// scripts it lists -- no Arabic, Hebrew, Devanagari, Thai or Han --, in order.
using CodeRange = std::array<char32_t, 2>;
constexpr std::array<CodeRange, 87> kDeepSeekLlmLetters = {
    {{0x0041, 0x005A},   {0x0061, 0x007A},   {0x00B5, 0x00B5},   {0x00C0, 0x00D6},   {0x00D8, 0x00F6},
     {0x00F8, 0x01BA},   {0x01BC, 0x01BF},   {0x01C4, 0x0293},   {0x0295, 0x02AF},   {0x0370, 0x0373},
     {0x0376, 0x0376},   {0x0377, 0x0377},   {0x037B, 0x037D},   {0x037F, 0x037F},   {0x0386, 0x0386},
     {0x0388, 0x038A},   {0x038C, 0x038C},   {0x038E, 0x03A1},   {0x03A3, 0x03F5},   {0x03F7, 0x0481},
     {0x048A, 0x052F},   {0x0531, 0x0556},   {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
     {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},
     {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},
     {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},
     {0x1FB6, 0x1FBC},   {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
     {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},   {0x2102, 0x2102},
     {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},
     {0x2126, 0x2126},   {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},
     {0x213C, 0x213F},   {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2183},   {0x2184, 0x2184},
     {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF2},   {0x2CF3, 0x2CF3},
     {0xA640, 0xA66D},   {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
     {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},
     {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
     {0x118A0, 0x118DF}, {0x1E900, 0x1E943}}};
// ASCII's punctuation, symbols and letters (! to /, : to ~), their fullwidth forms, curly quotes, U+3000-U+3002.
constexpr std::array<CodeRange, 6> kDeepSeekLlmPunctuation = {
    {{0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}}};
// CJK ideographs to U+9FA5, everything from U+0800 to them (Indic scripts, Thai, kana, CJK punctuation, ...),
// Hangul syllables.
constexpr std::array<CodeRange, 3> kDeepSeekLlmCjk = {{{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}}};

template <std::size_t N>
bool in_ranges(const std::array<CodeRange, N>& ranges, char32_t c) {
  return std::any_of(ranges.begin(), ranges.end(), [c](const CodeRange& r) { return c >= r[0] && c <= r[1]; });
}
bool deepseek_llm_letter(char32_t c) {  // the list is sorted: the last range starting at or below c
  const auto it = std::upper_bound(kDeepSeekLlmLetters.begin(), kDeepSeekLlmLetters.end(), c,
                                   [](char32_t x, const CodeRange& r) { return x < r[0]; });
  return it != kDeepSeekLlmLetters.begin() && c <= (*(it - 1))[1];
}
bool deepseek_llm_punctuation(char32_t c) { return in_ranges(kDeepSeekLlmPunctuation, c); }
bool deepseek_llm_cjk(char32_t c) { return in_ranges(kDeepSeekLlmCjk, c); }

// A bracketed class of `ranges` as the file spells it.
template <std::size_t N>
std::string bracketed(const std::array<CodeRange, N>& ranges) {
  std::string out = "[";
  for (const CodeRange& r : ranges) {
    unicode::append_utf8(out, r[0]);
    if (r[1] != r[0]) out += '-', unicode::append_utf8(out, r[1]);
  }
  return out + "]";
}

// DeepSeek LLM's Splits at i of a piece (s: the piece's code points): the match's end, or i.
// \s?[class]+, the whitespace code point tried first.
template <class Pred>
std::size_t match_spaced_run(const CodePoints& s, std::size_t i, Pred in) {
  if (space(s.cp[i]) && i + 1 < s.size() && in(s.cp[i + 1])) return run(s, i + 1, in);
  return run(s, i, in);
}
std::size_t match_line_break(const CodePoints& s, std::size_t i) { return crlf(s.cp[i]) ? i + 1 : i; }
std::size_t match_deepseek_llm_letters(const CodePoints& s, std::size_t i) {
  return match_spaced_run(s, i, deepseek_llm_letter);
}
std::size_t match_deepseek_llm_punctuation(const CodePoints& s, std::size_t i) {
  return match_spaced_run(s, i, deepseek_llm_punctuation);
}
std::size_t match_deepseek_llm_cjk(const CodePoints& s, std::size_t i) { return run(s, i, deepseek_llm_cjk); }
std::size_t match_digit(const CodePoints& s, std::size_t i) { return number(s.cp[i]) ? i + 1 : i; }

// DeepSeek Coder's \s?\p{L}+ and \s?\p{P}+.
std::size_t match_spaced_letters(const CodePoints& s, std::size_t i) { return match_spaced_run(s, i, letter); }
std::size_t match_spaced_punctuation(const CodePoints& s, std::size_t i) {
  return match_spaced_run(s, i, unicode::is_punctuation);
}

// DeepSeek LLM's or DeepSeek Coder's Splits, then Digits, over `text`: each pass over every piece of the one before,
// as `tokenizers` runs a Sequence. The text decoded once; the pieces ranges of its code points, each copied into one
// reused buffer for its pass (decoding each piece again, pass after pass, took three quarters of the encoding time).
std::vector<std::string_view> deepseek_split_pieces(std::string_view text, bool coder) {
  const CodePoints s = unicode::decode_utf8(text);
  using Range = std::array<std::size_t, 2>;  // code points [from, to) of s
  std::vector<Range> pieces = {{0, s.size()}}, next;
  CodePoints piece;
  const auto pass = [&](auto match) {
    next.clear();
    for (const Range& r : pieces) {
      piece.cp.assign(s.cp.begin() + static_cast<std::ptrdiff_t>(r[0]),
                      s.cp.begin() + static_cast<std::ptrdiff_t>(r[1]));
      for_each_isolated(piece, match, [&](std::size_t from, std::size_t to) {
        next.push_back({r[0] + from, r[0] + to});
      });
    }
    pieces.swap(next);
  };
  // \s+$: at most one match a piece, the run of whitespace that ends it (every line break is a piece of its own by
  // then, so $ is the piece's end) -- found from the end, where a matcher tried at each code point would scan every
  // inner run of whitespace once a code point.
  const auto trailing_spaces = [&] {
    next.clear();
    for (const Range& r : pieces) {
      std::size_t from = r[1];
      while (from > r[0] && space(s.cp[from - 1])) --from;
      if (from > r[0]) next.push_back({r[0], from});
      if (from < r[1]) next.push_back({from, r[1]});
    }
    pieces.swap(next);
  };
  pass(match_line_break);
  if (coder) {
    pass(match_spaced_letters);
    pass(match_spaced_punctuation);
  } else {
    pass(match_deepseek_llm_letters);
    pass(match_deepseek_llm_punctuation);
    trailing_spaces();
  }
  pass(match_deepseek_llm_cjk);
  pass(match_digit);
  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const Range& r : pieces) out.push_back(text.substr(s.at[r[0]], s.at[r[1]] - s.at[r[0]]));
  return out;
}

// `pattern` with its line-break characters written as the escapes \r and \n.
std::string escaped_line_breaks(std::string_view pattern) {
  std::string out;
  for (const char c : pattern)
    out += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

// Whether `patterns` are `expected` (their line breaks as characters or as escapes).
bool same_expressions(const std::vector<std::string>& patterns, const std::vector<std::string>& expected) {
  return std::equal(patterns.begin(), patterns.end(), expected.begin(), expected.end(),
                    [](const std::string& p, const std::string& e) { return escaped_line_breaks(p) == e; });
}

}  // namespace

bool is_deepseek_v3_sequence(const std::vector<std::string>& patterns) {
  static const std::vector<std::string> kSplits = {std::string(kDeepSeekNumbers), std::string(kDeepSeekCjk),
                                                   std::string(kDeepSeekWords)};
  return same_expressions(patterns, kSplits);
}

bool is_deepseek_llm_sequence(const std::vector<std::string>& patterns) {
  static const std::vector<std::string> kSplits = {R"([\r\n])", R"(\s?)" + bracketed(kDeepSeekLlmLetters) + "+",
                                                   R"(\s?)" + bracketed(kDeepSeekLlmPunctuation) + "+", R"(\s+$)",
                                                   bracketed(kDeepSeekLlmCjk) + "+"};
  return same_expressions(patterns, kSplits);
}

bool is_deepseek_coder_sequence(const std::vector<std::string>& patterns) {
  static const std::vector<std::string> kSplits = {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)",
                                                   bracketed(kDeepSeekLlmCjk) + "+"};
  return same_expressions(patterns, kSplits);
}

PreTokenizer pre_tokenizer_of(std::string_view pattern) {
  return pattern == kLlama3Pattern   ? PreTokenizer::Llama3
         : pattern == kQwen2Pattern  ? PreTokenizer::Qwen2
         : pattern == kGpt2Pattern   ? PreTokenizer::Gpt2
         : pattern == kTekkenPattern ? PreTokenizer::Tekken
         : pattern == kO200kPattern  ? PreTokenizer::O200k
         : pattern == kKimiPattern   ? PreTokenizer::Kimi
                                     : PreTokenizer::None;
}

std::vector<std::string_view> pre_tokenize(PreTokenizer p, std::string_view text) {
  if (p == PreTokenizer::None) return {text};
  if (p == PreTokenizer::DeepSeekV3) return deepseek_v3_pieces(text);
  if (p == PreTokenizer::DeepSeekLlm || p == PreTokenizer::DeepSeekCoder) {
    return deepseek_split_pieces(text, p == PreTokenizer::DeepSeekCoder);
  }
  const CodePoints s = unicode::decode_utf8(text);
  const std::size_t max_digits = p == PreTokenizer::Qwen2 ? 1 : 3;  // numbers' pieces (GPT-2: not used)
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t j = p == PreTokenizer::Gpt2     ? match_gpt2(s, i)
                          : p == PreTokenizer::Tekken ? match_cased_words(s, i, kTekkenWords)
                          : p == PreTokenizer::O200k  ? match_cased_words(s, i, kO200kWords)
                          : p == PreTokenizer::Kimi   ? match_cased_words(s, i, kKimiWords)
                                                      : match_llama3(s, i, max_digits);
    pieces.push_back(text.substr(s.at[i], s.at[j] - s.at[i]));
    i = j;
  }
  return pieces;
}

}  // namespace spin::data
