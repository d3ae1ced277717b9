// Hugging Face byte-level BPE tokenizers (`tokenizer.json` of GPT-2, Llama-3, Qwen2, Mistral's
// Tekken and their kin), as the `tokenizers` library runs them: added tokens matched in the text
// first, the NFC normalizer when the file has one (Qwen2), the pre-tokenizer's regular expression
// (GPT-2's, Llama-3's, Qwen2's or Tekken's: pre_tokenizer.h), bytes
// mapped to GPT-2's printable characters, then BPE merges lowest rank first (with
// `ignore_merges`: a piece in the vocabulary is one token). Anything else such a file may hold --
// another normalizer, model or pre-tokenizer, byte fallback -- is refused by name.
//
// Also Mistral's own `tekken.json` (Mistral NeMo, Pixtral, Ministral, Mistral Small 3 and later:
// the file mistral-common's Tekkenizer reads), as tiktoken runs it: Tekken's expression, a piece
// in the vocabulary taken whole, else the adjacent pair whose concatenation ranks lowest merged
// first -- the same BPE with every split of a token into two tokens as a merge of the token's
// rank; the vocabulary's ranks after the file's special tokens (ids 0 .. 999: <s>, [INST], ...),
// which, as in mistral-common, are inserted by id and never matched in the text.
//
// Also tiktoken's own `tiktoken.model` (Moonlight, Kimi K2), as Moonshot AI's wrappers run it:
// the same BPE by ranks, Kimi's expression, the special tokens after the ranks (named by
// tokenizer_config.json's added_tokens_decoder) matched in the text.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/pre_tokenizer.h"
#include "data/tokenizer.h"

namespace spin::data {

class HfBpeTokenizer final : public Tokenizer {
 public:
  // `path`: a tokenizer.json (BOS and EOS from tokenizer_config.json beside it, when present),
  // a tekken.json (told apart by its contents; BOS <s>, EOS </s>) or a tiktoken.model (by its name;
  // tokenizer_config.json beside it names the special tokens, BOS and EOS).
  explicit HfBpeTokenizer(const std::string& path);

  // How Moonshot's wrappers cut a text before tiktoken encodes it (tiktoken.model only): chunks of
  // 400,000 code points, each cut where a run of whitespace (Python's isspace) or of anything else
  // would pass 25,000 code points. Each part is pre-tokenized on its own.
  static constexpr std::size_t kTiktokenMaxEncodeChars = 400'000, kTiktokenMaxRun = 25'000;
  static std::vector<std::string_view> long_runs(std::string_view text);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const std::int32_t> ids) const override;
  std::optional<std::string> special_text(std::int32_t id) const override;
  std::int64_t vocab_size() const override { return vocab_size_; }

  // The pieces the pre-tokenizer cuts `text` (free of added tokens) into.
  std::vector<std::string_view> pre_tokenize(std::string_view text) const;
  // The id of a token of the vocabulary or an added token, given as text.
  std::optional<std::int32_t> token_id(const std::string& token) const override;
  Strip added_token_strip(std::int32_t id) const override;

 private:
  struct AddedToken {
    std::string content;
    std::int32_t id;
    bool special;
    Strip strip;  // tokenizer.json's lstrip / rstrip
    bool normalized = false;  // matched in the normalizer's output (a normalized token under NFC)
  };
  struct Merge {
    std::int32_t rank, id;
  };
  struct Loader;  // reads tokenizer.json's, tekken.json's or tiktoken.model's parts (hf_bpe_loader.cpp)
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& ids) const;
  // Splits `text` at the added tokens matched in it (those matched after the normalizer, or the
  // others), leftmost and longest first: their ids into `ids`, each stretch between them to gap().
  void split_added(std::string_view text, bool normalized, std::vector<std::int32_t>& ids,
                   const std::function<void(std::string_view)>& gap) const;

  // tokenizer.json's Digits pre-tokenizer before ByteLevel (StarCoder's, Granite 3's): every number
  // (\p{N}) a piece of its own (individual_digits) or every run of them, before the expression.
  enum class Digits { None, Individual, Runs };

  std::string path_;
  Digits digits_ = Digits::None;
  PreTokenizer split_ = PreTokenizer::None;
  bool nfc_ = false;  // the NFC normalizer
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
  bool long_runs_ = false;  // a tiktoken.model's: texts cut by long_runs() first
  std::unordered_map<std::string, std::int32_t> vocab_;
  std::vector<std::string> tokens_;               // id -> token text (vocabulary and added)
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id, right id) -> rank, merged id
  std::vector<AddedToken> added_;                 // longest content first
  std::vector<std::uint16_t> added_by_byte_[256];  // indices into added_ by first byte, in order
  // tekken.json's special tokens: found by token_id(), never matched in the text.
  std::unordered_map<std::string, std::int32_t> control_;
  enum class Kind : std::uint8_t { Vocabulary, Added, Special };
  std::vector<Kind> kind_;                        // id -> where its token comes from
  std::int32_t byte_ids_[256] = {};               // each byte's token
  std::int64_t vocab_size_ = 0;
};

}  // namespace spin::data
