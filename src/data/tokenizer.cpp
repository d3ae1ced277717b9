#include "data/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "data/hf_bpe_tokenizer.h"
#include "data/unicode_classes.h"

namespace spin::data {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSentencePieceFile = "tokenizer.model";  // Mistral's: tokenizer.model.vN

// Tokens a Hugging Face directory adds past its SentencePiece model's pieces (Phi-3's chat tokens,
// ids 32000-32010): added_tokens.json's {"token": id}, else tokenizer_config.json's
// added_tokens_decoder {"id": {"content": token, ...}} -- small files; tokenizer.json (tens of MB
// for Gemma's vocabulary) is not parsed for them.
std::map<std::string, std::int32_t> added_tokens(const fs::path& dir, int pieces) {
  std::map<std::string, std::int32_t> added;
  const auto add = [&](const std::string& token, const nlohmann::json& id, const fs::path& file) {
    require(id.is_number_integer(), file.string(), ": the id of added token ", token, " is not an integer");
    if (id.get<std::int64_t>() >= pieces) added[token] = id.get<std::int32_t>();
  };
  if (fs::exists(dir / "added_tokens.json")) {
    const nlohmann::json j = read_json_file((dir / "added_tokens.json").string());
    require(j.is_object(), (dir / "added_tokens.json").string(), ": expected {\"token\": id, ...}");
    for (const auto& [token, id] : j.items()) add(token, id, dir / "added_tokens.json");
  } else if (fs::exists(dir / "tokenizer_config.json")) {
    const fs::path file = dir / "tokenizer_config.json";
    const nlohmann::json j = read_json_file(file.string());
    if (j.is_object() && j.contains("added_tokens_decoder") && j.at("added_tokens_decoder").is_object()) {
      for (const auto& [id, t] : j.at("added_tokens_decoder").items()) {
        require(t.is_object() && t.contains("content") && t.at("content").is_string() &&
                    !id.empty() && id.find_first_not_of("0123456789") == std::string::npos && id.size() < 10,
                file.string(), ": added_tokens_decoder entry \"", id, "\" needs a numeric id and a \"content\"");
        add(t.at("content").get<std::string>(), std::stoll(id), file);
      }
    }
  }
  return added;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `file` in `dir`: tokenizer.model, or Mistral's tokenizer.model.vN (instruct format vN).
  SentencePieceTokenizer(const fs::path& dir, const std::string& file) {
    const std::string path = (dir / file).string();
    if (file.size() > kSentencePieceFile.size()) mistral_version_ = file.substr(kSentencePieceFile.size() + 1);
    const auto status = processor_.Load(path);
    require(status.ok(), path, ": not a SentencePiece model (", status.ToString(), ")");
    if (processor_.bos_id() >= 0) bos_ = processor_.bos_id();
    if (processor_.eos_id() >= 0) eos_ = processor_.eos_id();
    added_ = added_tokens(dir, processor_.GetPieceSize());
    for (const auto& [token, id] : added_) added_text_[id] = token;
  }
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    require(status.ok(), "SentencePiece could not encode the text: ", status.ToString());
    return {ids.begin(), ids.end()};
  }
  std::string decode(std::span<const std::int32_t> ids) const override {
    std::vector<int> keep;
    for (std::int32_t id : ids) {
      if (id >= 0 && id < processor_.GetPieceSize() && !processor_.IsControl(id)) keep.push_back(id);
    }
    std::string text;
    const auto status = processor_.Decode(keep, &text);
    require(status.ok(), "SentencePiece could not decode: ", status.ToString());
    return text;
  }
  std::int64_t vocab_size() const override {
    return std::max<std::int64_t>(processor_.GetPieceSize(), added_text_.empty() ? 0 : added_text_.rbegin()->first + 1);
  }
  // Control pieces, and the added tokens (which decode() leaves out as well).
  std::optional<std::string> special_text(std::int32_t id) const override {
    if (const auto it = added_text_.find(id); it != added_text_.end()) return it->second;
    if (id < 0 || id >= processor_.GetPieceSize() || !processor_.IsControl(id)) return std::nullopt;
    return processor_.IdToPiece(id);
  }
  std::optional<std::int32_t> token_id(const std::string& token) const override {
    if (const auto it = added_.find(token); it != added_.end()) return it->second;
    const int id = processor_.PieceToId(token);
    if (id < 0 || processor_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }

 private:
  sentencepiece::SentencePieceProcessor processor_;
  std::map<std::string, std::int32_t> added_;       // past the pieces
  std::map<std::int32_t, std::string> added_text_;
};

}  // namespace

int mistral_version_number(std::string_view version) {
  if (version.size() < 2 || version.size() > 5 || version[0] != 'v' ||
      version.find_first_not_of("0123456789", 1) != std::string_view::npos) {
    return 0;
  }
  return std::stoi(std::string(version.substr(1)));
}

std::string mistral_spm_file(const std::filesystem::path& dir) {
  std::string best;
  int newest = 0;
  std::error_code error;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, error)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= kSentencePieceFile.size() + 1 || name.rfind(kSentencePieceFile, 0) != 0 ||
        name[kSentencePieceFile.size()] != '.') {
      continue;
    }
    const int v = mistral_version_number(std::string_view(name).substr(kSentencePieceFile.size() + 1));
    if (v > newest) newest = v, best = name;
  }
  return best;
}

std::string printable(std::string_view text) {
  const unicode::CodePoints s = unicode::decode_utf8(text);
  std::string out;
  for (std::size_t k = 0; k < s.size(); ++k) {
    const char32_t c = s.cp[k];
    if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\t') {
      out += "\\t";
    } else if (c == unicode::kInvalid || c < 0x20 || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(text[s.at[k]]));
      out += buf;
    } else {
      out.append(text.substr(s.at[k], s.at[k + 1] - s.at[k]));
    }
  }
  return out;
}

ByteTokenizer::ByteTokenizer(std::int32_t offset, std::int32_t bos, std::int32_t eos)
    : offset_(offset) {
  require(offset >= 0 && bos >= 0 && bos < offset && eos >= 0 && eos < offset,
          "byte tokenizer: BOS (", bos, ") and EOS (", eos, ") must be below the offset (", offset, ")");
  bos_ = bos;
  eos_ = eos;
}

std::vector<std::int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(offset_ + c);
  return ids;
}

std::optional<std::string> ByteTokenizer::special_text(std::int32_t id) const {
  if (id < 0 || id >= offset_) return std::nullopt;
  if (bos_ && id == *bos_) return "<s>";
  if (eos_ && id == *eos_) return "</s>";
  return cat("<special ", id, ">");
}

std::string ByteTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string text;
  for (std::int32_t id : ids) {
    if (id >= offset_ && id < offset_ + 256) text.push_back(static_cast<char>(id - offset_));
  }
  return text;
}

void ByteTokenizer::save(const std::string& dir) const {
  write_text_file(
      (fs::path(dir) / "byte_tokenizer.json").string(),
      nlohmann::json{{"type", "byte"}, {"offset", offset_}, {"bos_id", *bos_}, {"eos_id", *eos_}}.dump(2) + "\n");
}

std::string decode_showing_specials(const Tokenizer& tokenizer, std::span<const std::int32_t> ids) {
  std::string out;
  std::size_t run = 0;  // the first id of the current run of ordinary tokens
  for (std::size_t i = 0; i <= ids.size(); ++i) {
    const std::optional<std::string> special = i < ids.size() ? tokenizer.special_text(ids[i]) : std::nullopt;
    if (i < ids.size() && !special) continue;
    out += tokenizer.decode(ids.subspan(run, i - run));
    if (special) out += *special;
    run = i + 1;
  }
  return out;
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& model_dir) {
  auto tokenizer = load_if_present(model_dir);
  require(tokenizer != nullptr, model_dir,
          ": no tokenizer.model or tokenizer.model.vN (SentencePiece), tekken.json (Mistral's), tokenizer.json "
          "(byte-level BPE), tiktoken.model (Moonshot AI's) or byte_tokenizer.json; spin cannot tokenize text for this "
          "model (pre-tokenized data works without one)");
  return tokenizer;
}

std::unique_ptr<Tokenizer> Tokenizer::load_if_present(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (fs::exists(dir / "tokenizer.model")) return std::make_unique<SentencePieceTokenizer>(dir, "tokenizer.model");
  // Mistral's SentencePiece models named by their instruct format (Mistral Large 2411's
  // tokenizer.model.v7), the newest when there are several; before tokenizer.json, which for
  // these is a byte-fallback conversion spin does not read.
  if (const std::string versioned = mistral_spm_file(dir); !versioned.empty()) {
    return std::make_unique<SentencePieceTokenizer>(dir, versioned);
  }
  // Mistral's own tekken.json before the tokenizer.json converted from it: mistral-common's
  // (and Mistral's) reference, which never reads [INST] or <s> in a text as the control token.
  if (fs::exists(dir / "tekken.json")) return std::make_unique<HfBpeTokenizer>((dir / "tekken.json").string());
  if (fs::exists(dir / "tokenizer.json")) return std::make_unique<HfBpeTokenizer>((dir / "tokenizer.json").string());
  // Moonlight's and Kimi K2's (no tokenizer.json: their tokenization_*.py hands it to tiktoken).
  if (fs::exists(dir / "tiktoken.model")) return std::make_unique<HfBpeTokenizer>((dir / "tiktoken.model").string());
  const fs::path byte_file = dir / "byte_tokenizer.json";
  if (!fs::exists(byte_file)) return nullptr;
  const nlohmann::json j = read_json_file(byte_file.string());
  require(j.is_object() && j.value("type", "") == "byte", byte_file.string(),
          ": expected {\"type\": \"byte\", \"offset\": 3, \"bos_id\": 1, \"eos_id\": 2}");
  return std::make_unique<ByteTokenizer>(j.value("offset", 3), j.value("bos_id", 1), j.value("eos_id", 2));
}

}  // namespace spin::data
