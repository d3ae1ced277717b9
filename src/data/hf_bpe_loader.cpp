// Reading a byte-level BPE tokenizer's files into HfBpeTokenizer: Hugging Face's tokenizer.json,
// Mistral's tekken.json, tiktoken's tiktoken.model (with tokenizer_config.json beside each); every
// part spin does not run refused by name (hf_bpe_tokenizer.h says what is read).
#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "data/hf_bpe_tokenizer.h"
#include "data/hf_bpe_tokenizer_detail.h"
#include "data/pre_tokenizer.h"
#include "data/unicode_classes.h"

namespace spin::data {

namespace {

namespace fs = std::filesystem;
using detail::byte_chars;
using detail::merge_key;

// The special tokens of tekken.json files without a list of their own (mistral-common's
// Tekkenizer.DEPRECATED_SPECIAL_TOKENS, ids 0-19).
constexpr std::array<const char*, 20> kTekkenLegacySpecials = {
    "<unk>",     "<s>",      "</s>",     "[INST]",   "[/INST]",       "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]",
    "[PREFIX]",  "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"};

// Standard base64 (with or without padding); `file` names the input in the error.
std::string base64_decode(const std::string& text, const std::string& file) {
  std::string out;
  std::uint32_t bits = 0;
  int held = 0;
  for (char ch : text) {
    if (ch == '=') break;
    const int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                  : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                  : ch >= '0' && ch <= '9' ? ch - '0' + 52
                  : ch == '+'              ? 62
                  : ch == '/'              ? 63
                                           : -1;
    require(v >= 0, file, ": \"", text, "\" is not base64");
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    held += 6;
    if (held >= 8) {
      held -= 8;
      out += static_cast<char>((bits >> held) & 0xFF);
    }
  }
  return out;
}

std::string json_type(const nlohmann::json& j) { return j.is_object() ? j.value("type", "?") : j.dump(); }

// The special ids Moonshot's tiktoken wrappers reserve after the ranks (num_reserved_special_tokens;
// Moonlight's reserves two more, past its embedding table, which no file names).
constexpr std::int64_t kTiktokenReservedSpecials = 256;
constexpr std::int64_t kMaxTokenIds = std::int64_t{1} << 24;  // a tokenizer's ids are below it

}  // namespace

// The parts of a tokenizer.json, read into the tokenizer (a member, for its private fields).
struct HfBpeTokenizer::Loader {
  using json = nlohmann::json;

  // Only byte-level BPE, without a normalizer or with NFC: anything else is refused by name.
  static void check_model(HfBpeTokenizer& t, const json& j) {
    const std::string& path = t.path_;
    const json& model = j.at("model");
    require(model.value("type", "") == "BPE", path, ": model type ", json_type(model),
            " is not supported (spin reads byte-level BPE tokenizer.json files)");
    require(!model.value("byte_fallback", false), path,
            ": BPE with byte_fallback (a SentencePiece-style vocabulary) is not supported; use the model's "
            "tokenizer.model");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      require(!model.contains(key) || model[key].is_null() || model[key] == "", path, ": BPE with ", key,
              " is not supported");
    }
    // DeepSeek-V3's is an empty Sequence: none.
    const json& normalizer = j.contains("normalizer") ? j["normalizer"] : json();
    const bool none = normalizer.is_null() || (normalizer.value("type", "") == "Sequence" &&
                                               normalizer.value("normalizers", json::array()).empty());
    if (!none) {
      require(normalizer.value("type", "") == "NFC", path, ": normalizer ", json_type(normalizer),
              " is not supported (NFC is)");
      t.nfc_ = true;
    }
    if (j.contains("decoder") && !j["decoder"].is_null()) {
      require(j["decoder"].value("type", "") == "ByteLevel", path, ": decoder ", json_type(j["decoder"]),
              " is not supported (expected ByteLevel)");
    }
  }

  // ByteLevel (its own GPT-2 expression with use_regex), a Split by GPT-2's or Llama-3's
  // expression followed by ByteLevel without one, Digits followed by ByteLevel with its
  // expression (StarCoder's, Granite 3's), DeepSeek-V3's three Splits followed by ByteLevel without one,
  // or DeepSeek LLM's five (DeepSeek Coder's four) Splits and Digits followed by ByteLevel without one.
  static void pre_tokenizer(HfBpeTokenizer& t, const json& pre) {
    const std::string& path = t.path_;
    const auto byte_level = [&](const json& p) {
      require(p.value("type", "") == "ByteLevel", path, ": pre-tokenizer ", json_type(p),
              " is not supported (expected ByteLevel, or Split then ByteLevel)");
      t.add_prefix_space_ = p.value("add_prefix_space", false);
      return p.value("use_regex", true);
    };
    if (pre.value("type", "") != "Sequence") {
      t.split_ = byte_level(pre) ? PreTokenizer::Gpt2 : PreTokenizer::None;
      return;
    }
    const json& steps = pre.at("pretokenizers");
    if (steps.size() == 2 && steps[0].value("type", "") == "Digits") {
      t.digits_ = steps[0].value("individual_digits", false) ? Digits::Individual : Digits::Runs;
      require(byte_level(steps[1]), path, ": ByteLevel after Digits must split by its expression (use_regex true)");
      // `tokenizers` would put the space in front of every digit's piece, not only the text's.
      require(!t.add_prefix_space_, path, ": ByteLevel with add_prefix_space after Digits is not supported");
      t.split_ = PreTokenizer::Gpt2;
      return;
    }
    // DeepSeek LLM's and DeepSeek Coder's: their Splits, then every digit apart (Digits with individual_digits),
    // then ByteLevel.
    const bool digits_last = (steps.size() == 6 || steps.size() == 7) &&
                             steps[steps.size() - 2].value("type", "") == "Digits" &&
                             steps[steps.size() - 2].value("individual_digits", false);
    require(
        (steps.size() == 2 || steps.size() == 4 || digits_last) && steps[0].value("type", "") == "Split", path,
        ": pre-tokenizer sequences other than [Split, ByteLevel], [Split, Split, Split, ByteLevel] (DeepSeek-V3's), "
        "[Split x 5, Digits, ByteLevel] (DeepSeek LLM's), [Split x 4, Digits, ByteLevel] (DeepSeek Coder's) and "
        "[Digits, ByteLevel] are not supported");
    std::vector<std::string> patterns;
    for (std::size_t k = 0; k + 1 < steps.size() - (digits_last ? 1 : 0); ++k) {
      const json& split = steps[k];
      require(split.value("type", "") == "Split" && split.value("behavior", "") == "Isolated" &&
                  !split.value("invert", false),
              path, ": Split pre-tokenizers other than behavior Isolated, invert false are not supported");
      patterns.push_back(split.at("pattern").value("Regex", ""));
    }
    if (patterns.size() == 3) {
      require(is_deepseek_v3_sequence(patterns), path, ": the pre-tokenizer's three expressions ", patterns[0], ", ",
              patterns[1], ", ", patterns[2], " are not DeepSeek-V3's, the one sequence of Splits spin knows");
      t.split_ = PreTokenizer::DeepSeekV3;
    } else if (digits_last && patterns.size() == 4) {
      require(is_deepseek_coder_sequence(patterns), path, ": the pre-tokenizer's four expressions before Digits ",
              patterns[0], ", ", patterns[1], ", ", patterns[2], ", ", patterns[3],
              " are not DeepSeek Coder's, the one such sequence spin knows");
      t.split_ = PreTokenizer::DeepSeekCoder;
    } else if (digits_last) {
      require(is_deepseek_llm_sequence(patterns), path, ": the pre-tokenizer's five expressions before Digits ",
              patterns[0], ", ", patterns[1], ", ", patterns[2], ", ", patterns[3], ", ", patterns[4],
              " are not DeepSeek LLM's, the one such sequence spin knows");
      t.split_ = PreTokenizer::DeepSeekLlm;
    } else {
      t.split_ = pre_tokenizer_of(patterns[0]);
      require(t.split_ != PreTokenizer::None, path, ": the pre-tokenizer's expression ", patterns[0],
              " is not one spin knows (GPT-2's, Llama-3's, Qwen2's, Tekken's, o200k's or Kimi's)");
    }
    require(!byte_level(steps.back()), path, ": ByteLevel after a Split must not split again (use_regex false)");
  }

  // The vocabulary and the added tokens; every id's text and kind; each byte's token.
  static void tokens(HfBpeTokenizer& t, const json& vocab, const json& added) {
    const std::string& path = t.path_;
    // An id is read whole and bounded: the per-id tables take a slot for every id up to the largest, and a
    // corrupt 10^12 read as 32 bits was named as another number (the largest vocabularies spin reads, Gemma
    // 3's and o200k's, hold ~262k and ~200k ids).
    const auto id_of = [&](const json& value, const std::string& token) {
      const auto id = value.get<std::int64_t>();
      require(id >= 0 && id < kMaxTokenIds, path, ": token \"", token, "\" has the id ", id, ", outside [0, ",
              kMaxTokenIds, ")");
      return static_cast<std::int32_t>(id);
    };
    std::int32_t largest = -1;
    for (const auto& [token, value] : vocab.items()) {
      const std::int32_t id = id_of(value, token);
      t.vocab_[token] = id;
      largest = std::max(largest, id);
    }
    for (const json& a : added) {
      require(!a.value("single_word", false), path, ": added token ", a.at("content").get<std::string>(),
              " sets single_word, which spin does not support");
      // `tokenizers` matches a normalized added token in the normalizer's output (GPT-NeoX's runs of
      // spaces under NFC), the others in the text as given; without a normalizer the two are one.
      const std::string content = a.at("content").get<std::string>();
      const bool normalized = t.nfc_ && a.value("normalized", false);
      require(!normalized || unicode::nfc(content) == content, path, ": added token ", content,
              " is normalized and NFC changes it, which spin does not support");
      t.added_.push_back({content,
                          id_of(a.at("id"), content),
                          a.value("special", false),
                          {a.value("lstrip", false), a.value("rstrip", false)},
                          normalized});
      largest = std::max(largest, t.added_.back().id);
    }
    index(t, largest);
  }

  // Once the vocabulary and the added tokens are read: every id's text and kind, the added
  // tokens longest first and indexed by first byte, each byte's token.
  static void index(HfBpeTokenizer& t, std::int32_t largest) {
    const std::string& path = t.path_;
    t.vocab_size_ = largest + 1;
    t.tokens_.assign(static_cast<std::size_t>(t.vocab_size_), std::string());
    t.kind_.assign(static_cast<std::size_t>(t.vocab_size_), Kind::Vocabulary);
    for (const auto& [token, id] : t.vocab_) t.tokens_[static_cast<std::size_t>(id)] = token;
    for (const AddedToken& a : t.added_) {
      t.tokens_[static_cast<std::size_t>(a.id)] = a.content;
      t.kind_[static_cast<std::size_t>(a.id)] = a.special ? Kind::Special : Kind::Added;
    }
    for (const auto& [token, id] : t.control_) {
      t.tokens_[static_cast<std::size_t>(id)] = token;
      t.kind_[static_cast<std::size_t>(id)] = Kind::Special;
    }
    // Longest first, so that a scan finds the longest match; indexed by first byte.
    std::stable_sort(t.added_.begin(), t.added_.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    require(t.added_.size() < 65536, path, ": more than 65535 added tokens");
    for (std::size_t k = 0; k < t.added_.size(); ++k) {
      if (!t.added_[k].content.empty()) {
        t.added_by_byte_[static_cast<unsigned char>(t.added_[k].content[0])].push_back(static_cast<std::uint16_t>(k));
      }
    }
    const std::vector<char32_t> chars = byte_chars();
    for (int b = 0; b < 256; ++b) {
      std::string c;
      unicode::append_utf8(c, chars[static_cast<std::size_t>(b)]);
      const auto it = t.vocab_.find(c);
      require(it != t.vocab_.end(), path, ": the vocabulary lacks byte ", b, " (not a byte-level BPE)");
      t.byte_ids_[b] = it->second;
    }
  }

  // tekken.json: {"config": {"pattern", "default_vocab_size", "default_num_special_tokens",
  // "version"}, "vocab": [{"rank", "token_bytes" (base64), ...}, ...] (a longer list than used:
  // the first default_vocab_size - default_num_special_tokens ranks are the vocabulary),
  // "special_tokens": [{"rank", "token_str"}, ...] (absent before v7: mistral-common's list of 20)}.
  // Special tokens take ids 0 .. num_special - 1 (those the file leaves out are "<SPECIAL_i>"),
  // rank r id num_special + r. tiktoken's BPE: a piece in the vocabulary is one token
  // (ignore_merges), else the adjacent pair whose concatenation ranks lowest merges first -- as
  // merges, every split of a token into two tokens, at the token's rank.
  static void tekken(HfBpeTokenizer& t, const json& j) {
    const std::string& path = t.path_;
    const json& config = j.at("config");
    const std::string pattern = config.at("pattern").get<std::string>();
    require(pre_tokenizer_of(pattern) == PreTokenizer::Tekken, path, ": the pre-tokenizer's expression ", pattern,
            " is not Tekken's, the one spin knows for tekken.json");
    t.split_ = PreTokenizer::Tekken;
    t.mistral_version_ = config.value("version", "");
    const auto size = config.at("default_vocab_size").get<std::int64_t>();
    const auto num_special = config.at("default_num_special_tokens").get<std::int64_t>();
    const json& vocab = j.at("vocab");
    require(num_special > 0 && size - num_special >= 256 && size - num_special <= static_cast<std::int64_t>(vocab.size()) &&
                size <= std::numeric_limits<std::int32_t>::max(),
            path, ": default_vocab_size ", size, " and default_num_special_tokens ", num_special,
            " do not fit a vocabulary of ", vocab.size(), " ranks");
    std::vector<std::string> specials(kTekkenLegacySpecials.begin(), kTekkenLegacySpecials.end());
    if (j.contains("special_tokens")) specials.clear();
    specials.resize(static_cast<std::size_t>(num_special));
    for (const json& s : j.value("special_tokens", json::array())) {
      const auto rank = s.at("rank").get<std::int64_t>();
      require(rank >= 0 && rank < num_special, path, ": special token ", s.dump(), " has a rank outside [0, ",
              num_special, ")");
      specials[static_cast<std::size_t>(rank)] = s.at("token_str").get<std::string>();
    }
    for (std::size_t id = 0; id < specials.size(); ++id) {
      if (specials[id].empty()) specials[id] = "<SPECIAL_" + std::to_string(id) + ">";
      require(t.control_.emplace(specials[id], static_cast<std::int32_t>(id)).second, path, ": special token ",
              specials[id], " appears twice");
    }
    const std::vector<char32_t> chars = byte_chars();
    for (std::int64_t rank = 0; rank < size - num_special; ++rank) {
      const json& v = vocab[static_cast<std::size_t>(rank)];
      require(v.at("rank").get<std::int64_t>() == rank, path, ": vocab entry ", rank, " has rank ", v.at("rank").dump(),
              " (expected the ranks in order)");
      std::string token;
      for (char b : base64_decode(v.at("token_bytes").get<std::string>(), path)) {
        unicode::append_utf8(token, chars[static_cast<unsigned char>(b)]);
      }
      require(!token.empty() && t.vocab_.emplace(token, static_cast<std::int32_t>(num_special + rank)).second, path,
              ": the token of rank ", rank, " is empty or repeats an earlier one");
    }
    index(t, static_cast<std::int32_t>(size - 1));
    rank_merges(t);
    t.bos_ = t.token_id("<s>");
    t.eos_ = t.token_id("</s>");
    require(t.bos_ && t.eos_, path, ": the special tokens lack <s> or </s>");
  }

  // tiktoken's BPE as merges: every split of a token into two tokens merges at the token's rank, its
  // id (a piece in the vocabulary is one token besides: ignore_merges).
  static void rank_merges(HfBpeTokenizer& t) {
    t.ignore_merges_ = true;
    for (const auto& [token, id] : t.vocab_) {
      const std::vector<std::size_t> cuts = unicode::decode_utf8(token).at;  // between byte characters
      for (std::size_t k = 1; k + 1 < cuts.size(); ++k) {
        const auto l = t.vocab_.find(token.substr(0, cuts[k])), r = t.vocab_.find(token.substr(cuts[k]));
        if (l == t.vocab_.end() || r == t.vocab_.end()) continue;
        t.merges_.emplace(merge_key(l->second, r->second), Merge{id, id});  // ranks order as ids
      }
    }
  }

  // tiktoken.model (Moonlight's and Kimi K2's, which their tokenization_moonshot.py /
  // tokenization_kimi.py hand to tiktoken): a line "base64(token) rank" a token; rank r is id r.
  // The special tokens follow the n ranks: ids n .. n + 255, named by tokenizer_config.json's
  // added_tokens_decoder (with any further ids it names), the others "<|reserved_token_{id}|>",
  // every one read in a text (the wrappers encode with allowed_special "all"). Kimi's expression;
  // texts cut as the wrappers cut them before tiktoken (HfBpeTokenizer::long_runs). `config`: the
  // parsed tokenizer_config.json at `config_path` (null without one).
  static void tiktoken(HfBpeTokenizer& t, const fs::path& config_path, const json& config) {
    const std::string& path = t.path_;
    std::ifstream in(path, std::ios::binary);
    require(in.good(), path, ": cannot be read");
    std::vector<std::pair<std::string, std::int64_t>> ranks;
    std::string line;
    for (std::int64_t number = 1; std::getline(in, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      const std::size_t cut = line.find(' ');
      std::int64_t rank = -1;
      if (cut != std::string::npos && cut + 1 < line.size() &&
          line.find_first_not_of("0123456789", cut + 1) == std::string::npos && line.size() - cut <= 10) {
        rank = std::stoll(line.substr(cut + 1));
      }
      require(rank >= 0, path, ": line ", number, " is not \"base64 rank\"");
      ranks.emplace_back(base64_decode(line.substr(0, cut), path), rank);
    }
    const auto n = static_cast<std::int64_t>(ranks.size());
    const std::vector<char32_t> chars = byte_chars();
    std::vector<bool> seen(static_cast<std::size_t>(n), false);
    for (const auto& [bytes, rank] : ranks) {
      require(rank < n, path, ": rank ", rank, " is outside [0, ", n, "), the file's ", n, " ranks");
      require(!seen[static_cast<std::size_t>(rank)], path, ": rank ", rank, " is given twice");
      seen[static_cast<std::size_t>(rank)] = true;
      std::string token;
      for (char b : bytes) unicode::append_utf8(token, chars[static_cast<unsigned char>(b)]);
      require(!token.empty() && t.vocab_.emplace(token, static_cast<std::int32_t>(rank)).second, path,
              ": the token of rank ", rank, " is empty or repeats an earlier one");
    }
    std::map<std::int64_t, AddedToken> specials;
    for (std::int64_t id = n; id < n + kTiktokenReservedSpecials; ++id) {
      specials[id] = {"<|reserved_token_" + std::to_string(id) + "|>", static_cast<std::int32_t>(id), true, {}};
    }
    if (config.is_object()) {
      const json added = config.value("added_tokens_decoder", json::object());
      for (const auto& [key, token] : added.items()) {
        const std::int64_t id =
            key.find_first_not_of("0123456789") == std::string::npos && key.size() < 10 ? std::stoll(key) : -1;
        require(id >= n && token.is_object() && token.value("content", json()).is_string(), config_path.string(),
                ": added_tokens_decoder \"", key, "\" must be an id from ", n, " (after ", path,
                "'s ranks) with a \"content\"");
        specials[id] = {token["content"].get<std::string>(),
                        static_cast<std::int32_t>(id),
                        true,
                        {token.value("lstrip", false), token.value("rstrip", false)}};
      }
    }
    for (const auto& [id, a] : specials) t.added_.push_back(a);
    t.split_ = PreTokenizer::Kimi;
    t.long_runs_ = true;
    index(t, static_cast<std::int32_t>(specials.rbegin()->first));
    rank_merges(t);
  }

  // The merges in rank order, "left right" or ["left", "right"], keyed by their tokens' ids.
  static void merges(HfBpeTokenizer& t, const json& merges) {
    std::int32_t rank = 0;
    for (const json& m : merges) {
      std::string left, right;
      if (m.is_array()) {
        left = m.at(0).get<std::string>(), right = m.at(1).get<std::string>();
      } else {
        const std::string s = m.get<std::string>();
        const std::size_t cut = s.find(' ');
        require(cut != std::string::npos, t.path_, ": merge \"", s, "\" is not two tokens");
        left = s.substr(0, cut), right = s.substr(cut + 1);
      }
      const auto l = t.vocab_.find(left), r = t.vocab_.find(right), merged = t.vocab_.find(left + right);
      require(l != t.vocab_.end() && r != t.vocab_.end() && merged != t.vocab_.end(), t.path_, ": merge \"", left,
              " ", right, "\" names tokens outside the vocabulary");
      t.merges_.emplace(merge_key(l->second, r->second), Merge{rank++, merged->second});  // the first (lowest) rank wins
    }
  }

  // BOS and EOS as tokenizer_config.json (`c`, read from `config`; null without one) names them (the
  // model's config.json overrides them), and its chat template -- or chat_template.jinja's beside it,
  // where transformers 4.43 and later save it (GLM-4.5's, for one), and which transformers prefers.
  static void special_tokens(HfBpeTokenizer& t, const fs::path& config, const json& c) {
    const fs::path jinja = config.parent_path() / "chat_template.jinja";
    const bool jinja_file = fs::exists(jinja);
    if (jinja_file) t.chat_template_ = read_text_file(jinja.string());
    if (c.is_null()) return;
    const auto special = [&](const char* key) -> std::optional<std::int32_t> {
      if (!c.contains(key) || c[key].is_null()) return std::nullopt;
      const json& v = c[key];
      require(v.is_string() || (v.is_object() && v.value("content", json()).is_string()), config.string(), ": ", key,
              " must be a token's text or {\"content\": text}, got ", v.dump());
      const std::string text = v.is_object() ? v.at("content").get<std::string>() : v.get<std::string>();
      const auto id = t.token_id(text);
      require(id.has_value(), config.string(), ": ", key, " \"", text, "\" is not a token of ", t.path_);
      return id;
    };
    t.bos_ = special("bos_token");
    t.eos_ = special("eos_token");
    // A string, or (some models) a list of named templates of which "default" is the one.
    if (jinja_file) return;
    if (c.contains("chat_template") && c["chat_template"].is_string()) t.chat_template_ = c["chat_template"];
    if (c.contains("chat_template") && c["chat_template"].is_array()) {
      for (const json& named : c["chat_template"]) {
        if (named.is_object() && named.value("name", "") == "default") t.chat_template_ = named.value("template", "");
      }
    }
  }
};

HfBpeTokenizer::HfBpeTokenizer(const std::string& path) : path_(path) {
  const fs::path config_path = fs::path(path).parent_path() / "tokenizer_config.json";
  const auto read_config = [&] {  // tokenizer_config.json, read once (tekken.json's loader reads none)
    return fs::exists(config_path) ? read_json_file(config_path.string()) : nlohmann::json();
  };
  if (fs::path(path).filename() == "tiktoken.model") {
    const nlohmann::json config = read_config();
    Loader::tiktoken(*this, config_path, config);
    Loader::special_tokens(*this, config_path, config);
    return;
  }
  const nlohmann::json j = read_json_file(path);
  try {
    if (j.contains("config") && j.contains("vocab") && !j.contains("model")) {  // Mistral's tekken.json
      Loader::tekken(*this, j);
      return;
    }
    Loader::check_model(*this, j);
    Loader::pre_tokenizer(*this, j.at("pre_tokenizer"));
    Loader::tokens(*this, j.at("model").at("vocab"), j.value("added_tokens", nlohmann::json::array()));
    Loader::merges(*this, j.at("model").at("merges"));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not a tokenizer.json or tekken.json spin can read: ", e.what());
  }
  Loader::special_tokens(*this, config_path, read_config());
}

}  // namespace spin::data
