// ModelConfig of EleutherAI's GPT-NeoX family (model_type gpt_neox, GPTNeoXForCausalLM: Pythia), and of
// Microsoft's Phi-1.5 / Phi-2 (model_type phi), which shares its plain MLP and biases:
// LayerNorms with weights and biases, biases on every projection, a plain MLP, the parallel
// residual with a norm per half, RoPE over a quarter of each head, GPT-NeoX's tensor names with
// q, k and v fused per head; what spin does not run of it refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// pythia-1b's config.json.
const std::string kPythia1b = R"({
  "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 8, "num_hidden_layers": 16,
  "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false, "torch_dtype": "float16",
  "transformers_version": "4.24.0", "use_cache": true, "use_parallel_residual": true, "vocab_size": 50304})";

// pythia-1b: 1,011,781,632 parameters and pythia-6.9b's shape 6,857,302,016, the Pythia suite's own
// counts (two untied embeddings; per layer query_key_value, dense, dense_h_to_4h, dense_4h_to_h with
// their biases and two LayerNorms of weight and bias; the final LayerNorm). The exact GELU, a
// quarter of each head rotating by rotary_emb_base, every head its own keys, the parallel residual
// with both norms; GPT-NeoX's names in the files, q, k and v fused per head.
TEST(ModelConfig, ReadsGptNeox) {
  const ModelConfig c = ModelConfig::from_json(kPythia1b, "config.json");
  EXPECT_FALSE(c.gated_mlp);
  EXPECT_EQ(c.activation, kernels::Activation::Gelu);
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias);
  EXPECT_TRUE(c.parallel_residual && c.parallel_mlp_norm && c.mlp_input_norm());
  EXPECT_TRUE(c.norm_biases());
  EXPECT_EQ(c.layer_norm_weights(), 2);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_parameters(), 1011781632);
  const ModelConfig big =
      ModelConfig::from_json(replaced(kPythia1b, {{"\"hidden_size\": 2048", "\"hidden_size\": 4096"},
                                                  {"\"intermediate_size\": 8192", "\"intermediate_size\": 16384"},
                                                  {"\"num_attention_heads\": 8", "\"num_attention_heads\": 32"},
                                                  {"\"num_hidden_layers\": 16", "\"num_hidden_layers\": 32"},
                                                  {"\"vocab_size\": 50304", "\"vocab_size\": 50432"}}),
                             "c");
  EXPECT_EQ(big.num_parameters(), 6857302016);

  const HfLayout layout = hf_layout(c);
  EXPECT_EQ(layout.place("model.layers.3.self_attn.k_proj.weight").name,
            "gpt_neox.layers.3.attention.query_key_value.weight");
  const HfLayout::Place k = layout.place("model.layers.3.self_attn.k_proj.bias");
  EXPECT_EQ(k.name, "gpt_neox.layers.3.attention.query_key_value.bias");
  EXPECT_EQ(k.row, 256);  // head h's k: rows h x 768 + 256 ...
  EXPECT_EQ(k.rows, 3 * 2048);
  EXPECT_EQ(k.groups, 8);
  EXPECT_EQ(k.group_rows, 256);
  for (const auto& [ours, theirs] : std::vector<std::pair<std::string, std::string>>{
           {"model.embed_tokens.weight", "gpt_neox.embed_in.weight"},
           {"model.layers.0.input_layernorm.bias", "gpt_neox.layers.0.input_layernorm.bias"},
           {"model.layers.15.post_attention_layernorm.weight", "gpt_neox.layers.15.post_attention_layernorm.weight"},
           {"model.layers.2.self_attn.o_proj.bias", "gpt_neox.layers.2.attention.dense.bias"},
           {"model.layers.2.mlp.up_proj.weight", "gpt_neox.layers.2.mlp.dense_h_to_4h.weight"},
           {"model.layers.2.mlp.down_proj.bias", "gpt_neox.layers.2.mlp.dense_4h_to_h.bias"},
           {"model.norm.bias", "gpt_neox.final_layer_norm.bias"},
           {"lm_head.weight", "embed_out.weight"}}) {
    EXPECT_EQ(layout.place(ours).name, theirs);
  }
  std::vector<std::string> names;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 0, 1), StageLayers::whole(c.num_layers))) {
    names.push_back(t.name);
  }
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.find("gate") != n.npos; }),
            0);

  // The sequential layout (use_parallel_residual false) and the tanh GELU; rope_theta where given.
  const ModelConfig sequential = ModelConfig::from_json(
      replaced(kPythia1b, {{"\"use_parallel_residual\": true", "\"use_parallel_residual\": false"},
                           {"\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_new\""},
                           {"\"rotary_emb_base\": 10000", "\"rope_theta\": 500000"}}),
      "c");
  EXPECT_FALSE(sequential.parallel_residual);
  EXPECT_TRUE(sequential.mlp_input_norm());
  EXPECT_EQ(sequential.activation, kernels::Activation::GeluTanh);
  EXPECT_EQ(sequential.rope_theta, 500000.0f);
  EXPECT_NE(error_of(replaced(kPythia1b, {{"\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\""}}))
                .find("hidden_act \"relu\" is not supported for model_type gpt_neox"),
            std::string::npos);
}

// phi-2's config.json (PhiForCausalLM).
const std::string kPhi2 = R"({
  "architectures": ["PhiForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 50256, "embd_pdrop": 0.0,
  "eos_token_id": 50256, "hidden_act": "gelu_new", "hidden_size": 2560, "initializer_range": 0.02,
  "intermediate_size": 10240, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "phi",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "partial_rotary_factor": 0.4,
  "qk_layernorm": false, "resid_pdrop": 0.1, "rope_scaling": null, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "torch_dtype": "float16", "transformers_version": "4.37.0", "use_cache": true, "vocab_size": 51200})";

// Phi-2 (model_type phi): 2,779,683,840 parameters as PhiForCausalLM holds them (q, k, v, dense, fc1, fc2 with
// biases, one LayerNorm of weight and bias a layer, the final one, the LM head with its [51200] bias);
// phi-1_5's shape 1,418,270,720. GPT-NeoX's plain MLP with the tanh GELU, Cohere's parallel residual from
// one norm, 32 of each head's 80 dimensions rotating; Phi's names in the files; qk_layernorm refused.
TEST(ModelConfig, ReadsPhi) {
  const ModelConfig c = ModelConfig::from_json(kPhi2, "config.json");
  EXPECT_FALSE(c.gated_mlp);
  EXPECT_EQ(c.activation, kernels::Activation::GeluTanh);
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias && c.lm_head_bias);
  EXPECT_TRUE(c.parallel_residual);
  EXPECT_FALSE(c.mlp_input_norm());
  EXPECT_EQ(c.layer_norm_weights(), 1);
  EXPECT_EQ(c.head_dim, 80);
  EXPECT_EQ(c.rotary_dim, 32);
  EXPECT_EQ(c.num_parameters(), 2779683840);
  const ModelConfig small =
      ModelConfig::from_json(replaced(kPhi2, {{"\"hidden_size\": 2560", "\"hidden_size\": 2048"},
                                              {"\"intermediate_size\": 10240", "\"intermediate_size\": 8192"},
                                              {"\"num_hidden_layers\": 32", "\"num_hidden_layers\": 24"},
                                              {"\"partial_rotary_factor\": 0.4", "\"partial_rotary_factor\": 0.5"}}),
                             "c");
  EXPECT_EQ(small.num_parameters(), 1418270720);
  const HfLayout layout = hf_layout(c);
  for (const auto& [ours, theirs] : std::vector<std::pair<std::string, std::string>>{
           {"model.layers.4.self_attn.o_proj.bias", "model.layers.4.self_attn.dense.bias"},
           {"model.layers.4.mlp.up_proj.weight", "model.layers.4.mlp.fc1.weight"},
           {"model.layers.4.mlp.down_proj.bias", "model.layers.4.mlp.fc2.bias"},
           {"model.layers.4.self_attn.q_proj.bias", "model.layers.4.self_attn.q_proj.bias"},
           {"model.norm.weight", "model.final_layernorm.weight"},
           {"lm_head.bias", "lm_head.bias"}}) {
    EXPECT_EQ(layout.place(ours).name, theirs);
  }
  EXPECT_NE(error_of(replaced(kPhi2, {{"\"qk_layernorm\": false", "\"qk_layernorm\": true"}})).find("qk_layernorm"),
            std::string::npos);
}

}  // namespace
}  // namespace spin::model
