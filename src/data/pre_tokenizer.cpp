#include "data/pre_tokenizer.h"

#include <algorithm>
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

// 's 't 're 've 'm 'll 'd at i: the match's end, or i. ASCII case folding when `any_case`.
std::size_t contraction(const CodePoints& s, std::size_t i, bool any_case) {
  if (s.cp[i] != U'\'') return i;
  for (std::u32string_view suffix : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"}) {
    if (i + 1 + suffix.size() > s.size()) continue;
    bool ok = true;
    for (std::size_t k = 0; k < suffix.size() && ok; ++k) {
      char32_t c = s.cp[i + 1 + k];
      if (any_case && c >= U'A' && c <= U'Z') c += U'a' - U'A';
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

// `tokenizers`' Split with behavior Isolated over the code points `s` of `text` (s.at: offsets in `text`): every
// match of `match` a piece, and every stretch between matches (code points where none starts) one piece --
// appended to `pieces`.
template <class Match>
void split_isolated(std::string_view text, const CodePoints& s, Match match, std::vector<std::string_view>& pieces) {
  const auto piece = [&](std::size_t from, std::size_t to) { return text.substr(s.at[from], s.at[to] - s.at[from]); };
  std::size_t unmatched = 0;  // where the current stretch without a match began
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t j = match(s, i);
    if (j == i) {
      ++i;
      continue;
    }
    if (unmatched < i) pieces.push_back(piece(unmatched, i));
    pieces.push_back(piece(i, j));
    unmatched = i = j;
  }
  if (unmatched < s.size()) pieces.push_back(piece(unmatched, s.size()));
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

// `pattern` with its line-break characters written as the escapes \r and \n.
std::string escaped_line_breaks(std::string_view pattern) {
  std::string out;
  for (const char c : pattern)
    out += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

}  // namespace

bool is_deepseek_v3_sequence(const std::vector<std::string>& patterns) {
  return patterns.size() == 3 && patterns[0] == kDeepSeekNumbers && patterns[1] == kDeepSeekCjk &&
         escaped_line_breaks(patterns[2]) == kDeepSeekWords;
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
