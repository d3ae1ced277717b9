// Tokenizers, chosen from the model directory: SentencePiece (`tokenizer.model`, the
// Llama-2 / Mistral 7B family, through libsentencepiece; or Mistral's `tokenizer.model.vN`, e.g.
// Mistral Large 2411's tokenizer.model.v7), Mistral's Tekken (`tekken.json`: Mistral
// NeMo, Mistral Small 3 and later), Hugging Face byte-level BPE (`tokenizer.json`: GPT-2, Llama-3
// and kin), tiktoken's `tiktoken.model` (Moonlight, Kimi K2; all three hf_bpe_tokenizer.h) or spin's
// byte-level tokenizer
// (`byte_tokenizer.json`: one id per byte plus a few specials; for tests and the demo).
// encode() adds no BOS/EOS; templates decide where those go (prompt_template.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace spin::data {

// `text` made safe to print on one line: valid UTF-8 passes through, control characters and
// bytes that are not valid UTF-8 (a byte-level model may produce any) become \n, \t, \xNN.
std::string printable(std::string_view text);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  // Special tokens (BOS, EOS, padding) are left out of the text.
  virtual std::string decode(std::span<const std::int32_t> ids) const = 0;
  virtual std::int64_t vocab_size() const = 0;

  // The id of a token given as its text (a special token such as "<|eot_id|>"), if the
  // tokenizer has it.
  virtual std::optional<std::int32_t> token_id(const std::string& token) const {
    (void)token;
    return std::nullopt;
  }

  // The text of `id` when it is a special token that decode() leaves out (BOS, EOS, a chat
  // marker), to show it: nullopt for any other id.
  virtual std::optional<std::string> special_text(std::int32_t id) const {
    (void)id;
    return std::nullopt;
  }

  // Whether the added token `id` takes the whitespace on its left / right into its match when
  // it appears in a text (tokenizer.json's lstrip / rstrip): a template that writes it as an id
  // drops that whitespace from the text beside it, as the encoding of the whole text would.
  struct Strip {
    bool left = false, right = false;
  };
  virtual Strip added_token_strip(std::int32_t id) const {
    (void)id;
    return {};
  }

  std::optional<std::int32_t> bos_id() const { return bos_; }
  std::optional<std::int32_t> eos_id() const { return eos_; }
  // The model's Jinja chat template (tokenizer_config.json's chat_template, or chat_template.jinja's),
  // if the tokenizer's files have one: read for what it says, never run.
  const std::string& chat_template() const { return chat_template_; }
  // Which of mistral-common's instruct formats a Mistral tokenizer was made for (tekken.json's
  // config.version, or tokenizer.model.vN's suffix: "v3", "v7", "v11", ...); empty for other
  // tokenizers.
  const std::string& mistral_version() const { return mistral_version_; }
  // The model's config.json has the last word on BOS/EOS (Hugging Face's rule) -- but a
  // tokenizer that puts no BOS in front of a text (Qwen2's: tokenizer_config.json's bos_token is
  // null, while config.json names <|endoftext|>) keeps putting none.
  void set_special_ids(std::optional<std::int32_t> bos, std::optional<std::int32_t> eos) {
    if (!files_special_) files_special_ = {bos_, eos_};
    if (bos && bos_) bos_ = bos;
    if (eos) eos_ = eos;
  }
  // The tokenizer files' own BOS and EOS (tokenizer_config.json's bos_token, eos_token), whatever
  // config.json says: what a chat template's bos_token and eos_token write.
  std::optional<std::int32_t> template_bos_id() const { return files_special_ ? files_special_->bos : bos_; }
  std::optional<std::int32_t> template_eos_id() const { return files_special_ ? files_special_->eos : eos_; }

  // Loads the tokenizer of a Hugging Face model directory; throws naming the directory when it
  // has none of the files.
  static std::unique_ptr<Tokenizer> load(const std::string& model_dir);
  // The same, or nullptr for a directory without a tokenizer (pre-tokenized data needs none).
  static std::unique_ptr<Tokenizer> load_if_present(const std::string& model_dir);

 protected:
  std::optional<std::int32_t> bos_, eos_;
  struct Special {
    std::optional<std::int32_t> bos, eos;
  };
  std::optional<Special> files_special_;  // bos_ and eos_ as the files gave them, once set_special_ids overrides
  std::string chat_template_;
  std::string mistral_version_;
};

// N of a Mistral instruct-format version "vN" (Tokenizer::mistral_version: v3, v7, v11, ...); 0
// for anything else.
int mistral_version_number(std::string_view version);
// The name of the newest Mistral SentencePiece model in `dir` (tokenizer.model.v3,
// tokenizer.model.v7, ...), or "" when there is none.
std::string mistral_spm_file(const std::filesystem::path& dir);

// `ids` as text with every special token shown as its text (Tokenizer::special_text), the runs
// between them decoded together: what a prompt template produced, readable.
std::string decode_showing_specials(const Tokenizer& tokenizer, std::span<const std::int32_t> ids);

// Bytes as ids: byte b is id offset + b; ids below offset are specials (0 padding, 1 BOS,
// 2 EOS with the default offset 3).
class ByteTokenizer final : public Tokenizer {
 public:
  explicit ByteTokenizer(std::int32_t offset = 3, std::int32_t bos = 1, std::int32_t eos = 2);
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const std::int32_t> ids) const override;
  std::int64_t vocab_size() const override { return 256 + offset_; }
  std::optional<std::string> special_text(std::int32_t id) const override;
  // Writes `byte_tokenizer.json` describing this tokenizer into `dir`.
  void save(const std::string& dir) const;

 private:
  std::int32_t offset_;
};

}  // namespace spin::data
