#include "data/hf_bpe_tokenizer.h"

#include <algorithm>
#include <limits>
#include <queue>

#include "core/error.h"
#include "data/hf_bpe_tokenizer_detail.h"
#include "data/pre_tokenizer.h"
#include "data/unicode_classes.h"

namespace spin::data {

namespace {

using detail::byte_chars;
using detail::merge_key;

// The longest piece whose merges are found by scanning its pairs (HfBpeTokenizer::encode_piece).
constexpr std::size_t kScannedPiece = 32;

// Python's str.isspace, by which Moonshot's wrappers cut whitespace runs: White_Space and the
// information separators U+001C-U+001F.
bool python_isspace(char32_t c) { return unicode::is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

}  // namespace

std::optional<std::int32_t> HfBpeTokenizer::token_id(const std::string& token) const {
  if (const auto it = control_.find(token); it != control_.end()) return it->second;
  if (!token.empty()) {  // added tokens, through encode's index by first byte
    for (std::uint16_t k : added_by_byte_[static_cast<unsigned char>(token[0])]) {
      if (added_[k].content == token) return added_[k].id;
    }
  }
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? std::nullopt : std::optional<std::int32_t>(it->second);
}

std::vector<std::string_view> HfBpeTokenizer::pre_tokenize(std::string_view text) const {
  if (digits_ == Digits::None) return data::pre_tokenize(split_, text);
  // Each number (or run of numbers) a stretch of its own, as are the texts between them; then the
  // expression within each stretch.
  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  const auto cut = [&](std::size_t end) {
    if (end == start) return;
    for (std::string_view p : data::pre_tokenize(split_, text.substr(start, end - start))) pieces.push_back(p);
    start = end;
  };
  const unicode::CodePoints cps = unicode::decode_utf8(text);
  for (std::size_t k = 0; k < cps.size(); ++k) {
    if (!unicode::is_number(cps.cp[k])) continue;
    const bool individual = digits_ == Digits::Individual;
    if (individual || k == 0 || !unicode::is_number(cps.cp[k - 1])) cut(cps.at[k]);                   // a number starts
    if (individual || k + 1 == cps.size() || !unicode::is_number(cps.cp[k + 1])) cut(cps.at[k + 1]);  // one ends
  }
  cut(text.size());
  return pieces;
}

void HfBpeTokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& ids) const {
  std::vector<std::int32_t> symbols;
  for (char b : piece) symbols.push_back(byte_ids_[static_cast<unsigned char>(b)]);
  if (ignore_merges_ && symbols.size() > 1) {
    std::string whole;
    for (std::int32_t id : symbols) whole += tokens_[static_cast<std::size_t>(id)];
    if (const auto it = vocab_.find(whole); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  // Merge the adjacent pair of lowest rank (leftmost among equals) until none merges. A short piece (a
  // word: most of them) scans its pairs for each merge, in place.
  if (symbols.size() <= kScannedPiece) {
    while (symbols.size() > 1) {
      std::int32_t best = std::numeric_limits<std::int32_t>::max();
      std::size_t at = 0;
      std::int32_t merged = 0;
      for (std::size_t k = 0; k + 1 < symbols.size(); ++k) {
        const auto it = merges_.find(merge_key(symbols[k], symbols[k + 1]));
        if (it != merges_.end() && it->second.rank < best) best = it->second.rank, at = k, merged = it->second.id;
      }
      if (best == std::numeric_limits<std::int32_t>::max()) break;
      symbols[at] = merged;
      symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
    ids.insert(ids.end(), symbols.begin(), symbols.end());
    return;
  }
  // A longer one -- a URL, a run of digits or of one letter: that scan would be O(n^2) -- keeps the
  // symbols in a linked list and the pairs in a heap by (rank, position of the left symbol): positions
  // keep their order, so the smallest is the leftmost; entries a merge made stale are skipped when they
  // surface. O(n log n).
  const std::size_t n = symbols.size(), none = n;  // `none`: no neighbour
  std::vector<std::size_t> next(n), prev(n);
  for (std::size_t k = 0; k < n; ++k) next[k] = k + 1, prev[k] = k == 0 ? none : k - 1;
  const auto merge_at = [&](std::size_t k) -> const Merge* {  // the pair of symbol k and its successor
    if (next[k] == none) return nullptr;
    const auto it = merges_.find(merge_key(symbols[k], symbols[next[k]]));
    return it == merges_.end() ? nullptr : &it->second;
  };
  using Pair = std::pair<std::int32_t, std::size_t>;  // (rank, left symbol)
  std::priority_queue<Pair, std::vector<Pair>, std::greater<>> pairs;
  const auto offer = [&](std::size_t k) {
    if (const Merge* m = merge_at(k)) pairs.emplace(m->rank, k);
  };
  for (std::size_t k = 0; k + 1 < n; ++k) offer(k);
  std::vector<bool> merged_away(n, false);
  while (!pairs.empty()) {
    const auto [rank, k] = pairs.top();
    pairs.pop();
    const Merge* m = merged_away[k] ? nullptr : merge_at(k);
    if (m == nullptr || m->rank != rank) continue;  // stale
    const std::size_t right = next[k];
    symbols[k] = m->id;
    merged_away[right] = true;
    next[k] = next[right];
    if (next[k] != none) prev[next[k]] = k;
    if (prev[k] != none) offer(prev[k]);
    offer(k);
  }
  for (std::size_t k = 0; k != none; k = next[k]) ids.push_back(symbols[k]);
}

void HfBpeTokenizer::split_added(std::string_view text, bool normalized, std::vector<std::int32_t>& ids,
                                 const std::function<void(std::string_view)>& gap) const {
  std::size_t from = 0;
  const auto plain = [&](std::size_t to) {
    if (to > from) gap(text.substr(from, to - from));
  };
  for (std::size_t i = 0; i < text.size();) {
    const std::vector<std::uint16_t>& candidates = added_by_byte_[static_cast<unsigned char>(text[i])];
    const auto hit = std::find_if(candidates.begin(), candidates.end(), [&](std::uint16_t k) {
      return added_[k].normalized == normalized && text.compare(i, added_[k].content.size(), added_[k].content) == 0;
    });
    if (hit == candidates.end()) {
      ++i;
      continue;
    }
    const AddedToken& a = added_[*hit];
    // lstrip / rstrip: the whitespace before (back to the last match) and after the token is
    // part of its match, as `tokenizers` extends it (Unicode White_Space).
    plain(a.strip.left ? unicode::whitespace_before(text, from, i) : i);
    ids.push_back(a.id);
    i += a.content.size();
    if (a.strip.right) i = unicode::whitespace_after(text, i);
    from = i;
  }
  plain(text.size());
}

std::vector<std::int32_t> HfBpeTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  // As `tokenizers` runs it: the added tokens matched in the text; each stretch between them through
  // the normalizer, then the normalized added tokens matched in that; each piece left through the
  // pre-tokenizer (with add_prefix_space, after a space is put in front) and BPE.
  const auto plain = [&](std::string_view stretch) {
    std::string prefixed;
    if (add_prefix_space_ && stretch.front() != ' ') {
      prefixed.assign(1, ' ');
      prefixed.append(stretch);
      stretch = prefixed;
    }
    if (!long_runs_) {
      for (std::string_view piece : pre_tokenize(stretch)) encode_piece(piece, ids);
      return;
    }
    for (std::string_view part : long_runs(stretch)) {
      for (std::string_view piece : pre_tokenize(part)) encode_piece(piece, ids);
    }
  };
  split_added(text, false, ids, [&](std::string_view stretch) {
    if (!nfc_) return plain(stretch);
    const std::string normalized = unicode::nfc(stretch);
    split_added(normalized, true, ids, plain);
  });
  return ids;
}

std::vector<std::string_view> HfBpeTokenizer::long_runs(std::string_view text) {
  if (text.size() <= kTiktokenMaxRun) return {text};  // fewer code points than bytes: nothing to cut
  const unicode::CodePoints s = unicode::decode_utf8(text);
  std::vector<std::string_view> parts;
  const auto part = [&](std::size_t from, std::size_t to) {
    parts.push_back(text.substr(s.at[from], s.at[to] - s.at[from]));
  };
  for (std::size_t chunk = 0; chunk < s.size(); chunk += kTiktokenMaxEncodeChars) {
    const std::size_t end = std::min(s.size(), chunk + kTiktokenMaxEncodeChars);
    std::size_t start = chunk, length = 0;
    bool space = python_isspace(s.cp[chunk]);
    for (std::size_t i = chunk; i < end; ++i) {
      const bool now = python_isspace(s.cp[i]);
      if (now != space) {
        length = 1, space = now;
      } else if (++length > kTiktokenMaxRun) {
        part(start, i);
        start = i, length = 1;
      }
    }
    part(start, end);
  }
  return parts;
}

Tokenizer::Strip HfBpeTokenizer::added_token_strip(std::int32_t id) const {
  for (const AddedToken& a : added_) {
    if (a.id == id) return a.strip;
  }
  return {};
}

std::optional<std::string> HfBpeTokenizer::special_text(std::int32_t id) const {
  if (id < 0 || id >= vocab_size_ || kind_[static_cast<std::size_t>(id)] != Kind::Special) return std::nullopt;
  return tokens_[static_cast<std::size_t>(id)];
}

std::string HfBpeTokenizer::decode(std::span<const std::int32_t> ids) const {
  static const std::unordered_map<char32_t, char> bytes = [] {
    std::unordered_map<char32_t, char> m;
    const std::vector<char32_t> chars = byte_chars();
    for (int b = 0; b < 256; ++b) m[chars[static_cast<std::size_t>(b)]] = static_cast<char>(b);
    return m;
  }();
  std::string out;
  for (std::int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    const auto i = static_cast<std::size_t>(id);
    if (kind_[i] == Kind::Special) continue;
    if (kind_[i] == Kind::Added) {  // added tokens hold their text as it is
      out += tokens_[i];
      continue;
    }
    for (char32_t c : unicode::decode_utf8(tokens_[i]).cp) {
      const auto it = bytes.find(c);
      if (it != bytes.end()) {
        out += it->second;
      } else {
        unicode::append_utf8(out, c);
      }
    }
  }
  return out;
}

}  // namespace spin::data
