#include "model/config_multimodal.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace spin::model {

namespace {
using nlohmann::json;

// Gemma3TextConfig's defaults, which a Gemma 3 multimodal config.json's text_config leaves out.
constexpr const char* kGemma3TextDefaults = R"({
  "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 262208, "hidden_size": 2304,
  "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
  "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131072,
  "rms_norm_eps": 1e-06, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "tie_word_embeddings": true,
  "rope_theta": 1000000.0, "attention_bias": false, "query_pre_attn_scalar": 256, "sliding_window": 4096,
  "final_logit_softcapping": null, "attn_logit_softcapping": null, "rope_scaling": null,
  "rope_local_base_freq": 10000.0, "sliding_window_pattern": 6})";

// MistralConfig's and LlamaConfig's defaults, which Mistral3Config and LlavaConfig lay a
// text_config over.
constexpr const char* kLlamaDefaults = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
  "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "hidden_act": "silu",
  "max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "bos_token_id": 1, "eos_token_id": 2,
  "tie_word_embeddings": false, "rope_theta": 10000.0, "attention_bias": false})";
constexpr const char* kMistralDefaults = R"({
  "architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096,
  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
  "hidden_act": "silu", "max_position_embeddings": 131072, "rms_norm_eps": 1e-06, "bos_token_id": 1,
  "eos_token_id": 2, "tie_word_embeddings": false, "rope_theta": 10000.0, "sliding_window": 4096})";

// The language models a multimodal checkpoint may hold: their model_type, architecture and
// config class's defaults.
struct TextModel {
  const char* type;
  const char* architecture;
  const char* defaults;
};
constexpr TextModel kTextModels[] = {
    {"gemma3_text", "Gemma3ForCausalLM", kGemma3TextDefaults},
    {"mistral", "MistralForCausalLM", kMistralDefaults},
    {"llama", "LlamaForCausalLM", kLlamaDefaults},
};

// The multimodal checkpoints whose language model spin runs, under "language_model.": Gemma 3
// 4B-27B (Gemma3ForConditionalGeneration), Mistral Small 3.1 / 3.2 (Mistral3ForConditionalGeneration)
// and LLaVA's (LlavaForConditionalGeneration: LLaVA-1.5 over Vicuna, Pixtral-12B over Mistral NeMo).
struct MultimodalFamily {
  const char* type;          // the multimodal config.json's model_type
  const char* architecture;  // its own
  const char* text_type;     // its language model's, where text_config does not name one
};
constexpr MultimodalFamily kMultimodalFamilies[] = {
    {"gemma3", "Gemma3ForConditionalGeneration", "gemma3_text"},
    {"mistral3", "Mistral3ForConditionalGeneration", "mistral"},
    {"llava", "LlavaForConditionalGeneration", "llama"},
};

// A multimodal config.json -> its language model's own config.json: the text config class's
// defaults, overridden by text_config's keys, then the top level's token ids (Gemma 3's: eos [1,
// 106]) and dtype.
std::string text_config_of(const MultimodalFamily& f, const json& j, const std::string& source) {
  require(j.contains("text_config") && j.at("text_config").is_object(), source, ": model_type \"", f.type, "\" (",
          f.architecture, ") needs a \"text_config\" object");
  const json& given = j.at("text_config");
  const std::string type = given.contains("model_type") && given.at("model_type").is_string()
                               ? given.at("model_type").get<std::string>()
                               : f.text_type;
  const auto* model = std::find_if(std::begin(kTextModels), std::end(kTextModels),
                                   [&](const TextModel& m) { return type == m.type; });
  require(model != std::end(kTextModels), source, ": the language model of a ", f.type, " checkpoint is a \"", type,
          "\"; spin reads gemma3_text, mistral and llama ones");
  json text = json::parse(model->defaults);
  for (const auto& [key, value] : given.items()) text[key] = value;
  for (const char* key : {"eos_token_id", "bos_token_id", "pad_token_id", "torch_dtype"}) {
    if (j.contains(key)) text[key] = j.at(key);
  }
  text["architectures"] = json::array({model->architecture});
  text["model_type"] = model->type;
  return text.dump(1);
}

// Qwen2-VL's and Qwen2.5-VL's config.json -> its language model's, a Qwen2 (its keys at the top
// level, as the published files have them, or under text_config). Their M-RoPE rotates sections
// of each head by the temporal, height and width positions, which for text are all the token's
// position: over text it is RoPE, so the rope_scaling that names it (type mrope, or default with
// an mrope_section) goes; `rotated_pairs` is set to the sections' sum (0 without them), which the
// caller checks against head_dim / 2 once the language model's config has it.
std::string qwen2_vl_text_config(const json& j, const std::string& type, const std::string& source,
                                 std::int64_t& rotated_pairs) {
  json text = j.contains("text_config") && j.at("text_config").is_object() && !j.contains("hidden_size")
                  ? j.at("text_config")
                  : j;
  for (const char* key : {"vision_config", "text_config"}) text.erase(key);
  if (text.contains("rope_scaling") && text.at("rope_scaling").is_object()) {
    const json& r = text.at("rope_scaling");
    const std::string rope = r.value("rope_type", r.value("type", ""));
    require((rope == "mrope" || rope == "default") && r.contains("mrope_section") && r.at("mrope_section").is_array(),
            source, ": ", type, "'s rope_scaling ", r.dump(), " is not M-RoPE with an mrope_section");
    rotated_pairs = 0;
    for (const json& s : r.at("mrope_section")) {
      require(s.is_number_integer() && s.get<std::int64_t>() > 0, source, ": mrope_section holds ", s.dump());
      rotated_pairs += s.get<std::int64_t>();
    }
    text["rope_scaling"] = nullptr;
  }
  text["model_type"] = "qwen2";
  text["architectures"] = json::array({"Qwen2ForCausalLM"});
  return text.dump(1);
}

}  // namespace

std::optional<MultimodalText> multimodal_text_config(const json& j, const std::string& type, const std::string& source) {
  for (const MultimodalFamily& f : kMultimodalFamilies) {
    if (type == f.type) return MultimodalText{text_config_of(f, j, source), "language_model.", 0};
  }
  if (type != "qwen2_vl" && type != "qwen2_5_vl") return std::nullopt;
  MultimodalText text;
  text.config_json = qwen2_vl_text_config(j, type, source, text.rotated_pairs);
  return text;
}

}  // namespace spin::model
