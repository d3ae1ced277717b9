// Normalization Form C (Unicode Standard Annex #15): the canonical decomposition, the canonical
// ordering of combining marks, then the canonical composition -- over tables generated from the
// Unicode database (gen_unicode_classes.py --nfc), Hangul syllables by their arithmetic.
#include <algorithm>
#include <iterator>
#include <vector>

#include "data/unicode_classes.h"

namespace spin::data::unicode {

namespace {

struct CombiningClassRun {
  char32_t first, last;
  unsigned char_class;
};
struct Decomposition {
  char32_t code_point, first, second;  // second 0: a singleton
};
struct Composition {
  char32_t first, second, composite;
};

#include "data/unicode_nfc_table.inc"

// Hangul syllables: S = SBase + (L * VCount + V) * TCount + T.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

unsigned combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const auto* it = std::upper_bound(std::begin(kCombiningClasses), std::end(kCombiningClasses), c,
                                    [](char32_t v, const CombiningClassRun& r) { return v < r.first; });
  return it != std::begin(kCombiningClasses) && c <= std::prev(it)->last ? std::prev(it)->char_class : 0;
}

// c's full canonical decomposition appended to out.
void decompose(char32_t c, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    if (s % kTCount != 0) out += kTBase + s % kTCount;
    return;
  }
  const auto* it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), c,
                                    [](const Decomposition& d, char32_t v) { return d.code_point < v; });
  if (it == std::end(kDecompositions) || it->code_point != c) {
    out += c;
    return;
  }
  decompose(it->first, out);
  if (it->second != 0) decompose(it->second, out);
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto* it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::pair{a, b},
                                    [](const Composition& c, const std::pair<char32_t, char32_t>& v) {
                                      return c.first < v.first || (c.first == v.first && c.second < v.second);
                                    });
  return it != std::end(kCompositions) && it->first == a && it->second == b ? it->composite : 0;
}

// NFC of valid code points.
std::u32string nfc_code_points(std::u32string_view text) {
  std::u32string d;
  for (char32_t c : text) decompose(c, d);
  // Canonical ordering: each run of combining marks stably sorted by class.
  for (std::size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + static_cast<std::ptrdiff_t>(i), d.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition: each mark joins the last starter unless a mark of the same or a
  // higher class, or a starter, stands between them (blocked).
  if (d.empty()) return d;
  std::size_t starter = 0, kept = 1;
  unsigned last_class = combining_class(d[0]) == 0 ? 0 : 256;  // no starter yet: nothing composes
  for (std::size_t i = 1; i < d.size(); ++i) {
    const char32_t c = d[i];
    const unsigned cls = combining_class(c);
    const char32_t composite = last_class == 256 ? 0 : compose(d[starter], c);
    if (composite != 0 && (last_class < cls || last_class == 0)) {
      d[starter] = composite;
      continue;
    }
    if (cls == 0) starter = kept;
    last_class = cls;
    d[kept++] = c;
  }
  d.resize(kept);
  return d;
}

// The code points NFC leaves alone whatever surrounds them (NFC's quick check, made exact): a
// starter that is its own NFC and that nothing composes onto the code point before it -- not
// the second of a composition, nor is its decomposition's first. A text of these alone is its
// own NFC. Found once, for every code point, from the tables themselves.
const std::vector<bool>& inert() {
  static const std::vector<bool> table = [] {
    std::vector<bool> t(0x110000, true);
    for (const CombiningClassRun& r : kCombiningClasses) {
      for (char32_t c = r.first; c <= r.last; ++c) t[c] = false;
    }
    std::vector<bool> second(0x110000, false);
    for (const Composition& c : kCompositions) second[c.second] = true;
    for (char32_t v = kVBase; v < kVBase + kVCount; ++v) second[v] = true;
    for (char32_t v = kTBase + 1; v < kTBase + kTCount; ++v) second[v] = true;
    for (char32_t c = 0; c < 0x110000; ++c) t[c] = t[c] && !second[c];
    for (const Decomposition& d : kDecompositions) {
      std::u32string alone(1, d.code_point), parts;
      decompose(d.code_point, parts);
      t[d.code_point] = t[d.code_point] && !second[parts[0]] && nfc_code_points(alone) == alone;
    }
    return t;
  }();
  return table;
}

}  // namespace

std::string nfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return std::string(text);  // ASCII is its own NFC
  }
  // Stretches of valid code points are normalized; an invalid byte passes through as it is.
  const CodePoints s = decode_utf8(text);
  const std::vector<bool>& alone = inert();
  if (std::all_of(s.cp.begin(), s.cp.end(), [&](char32_t c) { return c == kInvalid || alone[c]; })) {
    return std::string(text);
  }
  std::string out;
  std::u32string stretch;
  const auto flush = [&] {
    for (char32_t c : nfc_code_points(stretch)) append_utf8(out, c);
    stretch.clear();
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.cp[i] != kInvalid) {
      stretch += s.cp[i];
      continue;
    }
    flush();
    out += text[s.at[i]];
  }
  flush();
  return out;
}

}  // namespace spin::data::unicode
