// The config.json of a multimodal checkpoint whose language model spin runs, as that language
// model's own: Gemma 3 4B-27B's (Gemma3ForConditionalGeneration), Mistral Small 3.1 / 3.2's
// (Mistral3ForConditionalGeneration) and LLaVA's (LlavaForConditionalGeneration) -- the language
// model under "language_model." in the files -- and Qwen2-VL's / Qwen2.5-VL's (a Qwen2 beside its
// "visual." tower). ModelConfig::from_json reads the result; checkpoints and exports hold it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace spin::model {

struct MultimodalText {
  std::string config_json;    // the language model's config.json
  std::string weight_prefix;  // where its tensors sit in the files ("language_model."), or ""
  // Qwen2-VL's M-RoPE: the sum of mrope_section's rotated pairs (0: none given), which the caller
  // checks against head_dim / 2 once the language model's config has it.
  std::int64_t rotated_pairs = 0;
};

// `j` (a config.json of model_type `type`) as its language model's, or nullopt where `type` is not
// a multimodal checkpoint spin reads. Errors name `source`.
std::optional<MultimodalText> multimodal_text_config(const nlohmann::json& j, const std::string& type,
                                                     const std::string& source);

}  // namespace spin::model
