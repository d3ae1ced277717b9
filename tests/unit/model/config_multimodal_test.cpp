// ModelConfig of multimodal checkpoints whose language model spin runs: Qwen2.5-VL's (the
// language model's keys at the top level), Gemma 3's, Mistral Small 3.1's and LLaVA's (text_config
// over the text model's defaults, tensors under "language_model.").
#include <gtest/gtest.h>

#include "model/config.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::kLlama;

// Qwen2.5-VL-7B-Instruct's config.json as published: its language model a Qwen2 (the keys at the
// top level, q/k/v biases, no window), M-RoPE's rope_scaling dropped once its sections (16 + 24 +
// 24 pairs) cover head_dim (over text M-RoPE is RoPE); multimodal, under the usual names. Sections
// that do not cover a head, and other rope_scaling, are refused.
TEST(ModelConfig, ReadsQwen25VlsLanguageModel) {
  const std::string vl = R"({
    "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "vision_start_token_id": 151652, "image_token_id": 151655, "hidden_act": "silu",
    "hidden_size": 3584, "intermediate_size": 18944, "max_position_embeddings": 128000, "max_window_layers": 28,
    "model_type": "qwen2_5_vl", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "use_sliding_window": false, "vocab_size": 152064,
    "vision_config": {"depth": 32, "hidden_size": 1280, "out_hidden_size": 3584, "window_size": 112},
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}})";
  const ModelConfig c = ModelConfig::from_json(vl, "config.json");
  EXPECT_TRUE(c.multimodal);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.hf_weight_prefix, "");
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_NE(c.json_text.find("\"model_type\": \"qwen2\""), std::string::npos);
  EXPECT_EQ(c.json_text.find("vision_config"), std::string::npos);
  EXPECT_FALSE(ModelConfig::from_json(kLlama, "c").multimodal);
  std::string short_sections = vl;
  short_sections.replace(short_sections.find("[16, 24, 24]"), 12, "[16, 24, 16]");
  EXPECT_NE(error_of(short_sections).find("mrope_section covers 112 dimensions of head_dim 128"), std::string::npos)
      << error_of(short_sections);
  std::string yarn = vl;
  const std::string mrope = R"("mrope", "mrope_section": [16, 24, 24])";
  yarn.replace(yarn.find(mrope), mrope.size(), R"("yarn", "factor": 4)");
  EXPECT_NE(error_of(yarn).find("is not M-RoPE"), std::string::npos) << error_of(yarn);
}

// google/gemma-3-4b-it's config.json as published (Gemma3ForConditionalGeneration): text_config
// holds only what differs from Gemma3TextConfig's defaults (vocabulary 262208, 8 heads of 256,
// 4 kv heads, query_pre_attn_scalar 256, rope bases 1e6 / 1e4, pattern 6), the token ids sit at
// the top level. spin runs the language model: its tensors under "language_model.", its config
// (json_text, what checkpoints and exports hold) Gemma3ForCausalLM's.
TEST(ModelConfig, ReadsTheLanguageModelOfAGemma3MultimodalCheckpoint) {
  const std::string gemma3 = R"({
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
    "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type":
                      "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14,
                      "vision_use_head": false}})";
  const ModelConfig c = ModelConfig::from_json(gemma3, "cfg.json");
  EXPECT_EQ(c.hf_weight_prefix, "language_model.");
  EXPECT_EQ(c.vocab_size, 262208);
  EXPECT_EQ(c.hidden_size, 2560);
  EXPECT_EQ(c.num_layers, 34);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_TRUE(c.qk_norm && c.sandwich_norms && c.tie_word_embeddings);
  EXPECT_EQ(c.attention_scores(0).scale, 0.0625f);
  EXPECT_EQ(c.attention_scores(0).window, 1024);
  EXPECT_EQ(c.attention_scores(5).window, 0);
  ASSERT_TRUE(c.rope_scaling.has_value());  // the global layers'
  EXPECT_EQ(c.rope_scaling->factor, 8.0f);
  EXPECT_FLOAT_EQ(*c.rope_local_theta, 1e4f);
  EXPECT_EQ((std::vector<std::int64_t>{1, 106}), c.eos_token_ids);
  EXPECT_EQ(c.max_sequence_length(), 131072);
  // The language model's own config.json: read again, the same model, no prefix.
  const ModelConfig text = ModelConfig::from_json(c.json_text, "text config");
  EXPECT_NE(c.json_text.find("\"Gemma3ForCausalLM\""), std::string::npos) << c.json_text;
  EXPECT_EQ(text.hf_weight_prefix, "");
  EXPECT_EQ(text.num_parameters(), c.num_parameters());
  EXPECT_EQ(text.json_text, c.json_text);
  EXPECT_EQ(text.attention_scores(0).window, 1024);
}

// A Mistral Small 3.1 / 3.2 config.json (Mistral3ForConditionalGeneration, model_type mistral3) in
// the shape Mistral3Config's own defaults describe (mistralai/Mistral-Small-3.1-24B-Instruct-2503):
// a Mistral language model of 40 layers, 32 heads of 128 over a 5120-wide stream, no window,
// RoPE base 1e9, beside a Pixtral vision tower. spin runs the language model (23.6B parameters),
// its config MistralForCausalLM's; keys the text_config leaves out take MistralConfig's defaults,
// as transformers gives them -- its 4096-token window among them.
TEST(ModelConfig, ReadsTheLanguageModelOfMistral3AndLlavaCheckpoints) {
  const std::string mistral3 = R"({
    "architectures": ["Mistral3ForConditionalGeneration"], "image_token_index": 10, "model_type": "mistral3",
    "multimodal_projector_bias": false, "projector_hidden_act": "gelu", "spatial_merge_size": 2,
    "text_config": {"attention_dropout": 0.0, "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
                    "initializer_range": 0.02, "intermediate_size": 32768, "max_position_embeddings": 131072,
                    "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 40,
                    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000000.0,
                    "sliding_window": null, "use_cache": true, "vocab_size": 131072},
    "torch_dtype": "bfloat16", "vision_config": {"model_type": "pixtral", "hidden_size": 1024, "head_dim": 64},
    "vision_feature_layer": -1})";
  const ModelConfig c = ModelConfig::from_json(mistral3, "cfg.json");
  EXPECT_EQ(c.hf_weight_prefix, "language_model.");
  EXPECT_EQ(c.num_parameters(), 23'572'403'200);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_FALSE(c.tie_word_embeddings || c.qk_norm || c.qkv_bias);
  EXPECT_EQ(c.attention_scores(0).window, 0);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e9f);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ((std::vector<std::int64_t>{2}), c.eos_token_ids);
  EXPECT_EQ(c.max_sequence_length(), 131072);
  const ModelConfig text = ModelConfig::from_json(c.json_text, "text config");
  EXPECT_NE(c.json_text.find("\"MistralForCausalLM\""), std::string::npos) << c.json_text;
  EXPECT_NE(c.json_text.find("\"model_type\": \"mistral\""), std::string::npos) << c.json_text;
  EXPECT_EQ(text.num_parameters(), c.num_parameters());
  EXPECT_EQ(text.json_text, c.json_text);
  // MistralConfig's defaults under a text_config that leaves keys out.
  const ModelConfig bare = ModelConfig::from_json(
      R"({"model_type": "mistral3", "text_config": {"hidden_size": 64, "num_attention_heads": 16,
          "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100}})",
      "bare.json");
  EXPECT_EQ(bare.num_kv_heads, 8);
  EXPECT_EQ(bare.attention_scores(0).window, 4096);
  EXPECT_FLOAT_EQ(bare.rope_theta, 1e4f);
  EXPECT_FLOAT_EQ(bare.rms_norm_eps, 1e-6f);
  // LLaVA (LlavaForConditionalGeneration): llava-hf/llava-1.5-7b-hf's config.json, whose text_config
  // leaves Vicuna's shape to LlamaConfig's defaults (32 layers of 4096, MLP 11008, 32 heads and as
  // many kv heads), and Pixtral-12B's, a Mistral NeMo under its text_config.
  const ModelConfig llava = ModelConfig::from_json(R"({
    "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000,
    "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
    "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                    "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                    "torch_dtype": "float16", "vocab_size": 32064},
    "tie_word_embeddings": false, "torch_dtype": "float16",
    "vision_config": {"hidden_size": 1024, "model_type": "clip_vision_model"},
    "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064})",
                                                   "llava.json");
  EXPECT_EQ(llava.hf_weight_prefix, "language_model.");
  EXPECT_EQ(llava.num_parameters(), 6'738'415'616 + 2 * 64 * 4096);  // Llama-2-7B's, 64 more rows each way
  EXPECT_EQ(llava.num_kv_heads, 32);
  EXPECT_EQ(llava.max_sequence_length(), 4096);
  EXPECT_NE(llava.json_text.find("\"LlamaForCausalLM\""), std::string::npos);
  const ModelConfig pixtral = ModelConfig::from_json(R"({
    "architectures": ["LlavaForConditionalGeneration"], "image_token_index": 10, "model_type": "llava",
    "projector_hidden_act": "gelu",
    "text_config": {"head_dim": 128, "hidden_act": "silu", "hidden_size": 5120, "intermediate_size": 14336,
                    "max_position_embeddings": 1024000, "model_type": "mistral", "num_hidden_layers": 40,
                    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000000.0,
                    "sliding_window": null, "vocab_size": 131072},
    "vision_config": {"model_type": "pixtral"}})",
                                                     "pixtral.json");
  EXPECT_EQ(pixtral.num_heads, 32);  // MistralConfig's
  EXPECT_EQ(pixtral.attention_scores(0).window, 0);
  EXPECT_NE(pixtral.json_text.find("\"MistralForCausalLM\""), std::string::npos);
  EXPECT_NE(error_of(R"({"model_type": "llava", "text_config": {"model_type": "qwen2"}})")
                .find("cfg.json: the language model of a llava checkpoint is a \"qwen2\"; spin reads gemma3_text, "
                      "mistral and llama ones"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model_type": "mistral3"})")
                .find("cfg.json: model_type \"mistral3\" (Mistral3ForConditionalGeneration) needs a \"text_config\""),
            std::string::npos);
}

}  // namespace
}  // namespace spin::model
