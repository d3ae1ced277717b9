// ModelConfig of GLM's families (model_type glm: GlmForCausalLM, GLM-4-9B-Chat's -hf checkpoints;
// glm4: Glm4ForCausalLM, GLM-4-0414): biases on q, k and v, RoPE in interleaved pairs over half of
// each head, gate and up fused as gate_up_proj in the files; GLM-4's norm of each half's output.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// GLM-4-9B-0414's shape (Glm4Config's defaults in transformers), as a config.json writes it.
const std::string kGlm4 = R"({
  "architectures": ["Glm4ForCausalLM"], "model_type": "glm4", "attention_bias": true, "attention_dropout": 0.0,
  "eos_token_id": [151329, 151336, 151338], "pad_token_id": 151329, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 13696, "max_position_embeddings": 32768,
  "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 2, "partial_rotary_factor": 0.5,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "vocab_size": 151552})";

// Counted by hand: untied 151552 x 4096 embeddings and head (1,241,513,984), 40 layers of 203,969,024
// (q 4096 x 4096 and k, v 256 x 4096 with their biases, o_proj 4096 x 4096 without, gate and up
// 2 x 13696 x 4096, down 4096 x 13696, four norm weights of 4096), the final norm: 9,400,279,040 --
// the card's 9.4 B. GLM (glm) is the same layer without the two output norms.
TEST(ModelConfig, ReadsGlm4) {
  const ModelConfig c = ModelConfig::from_json(kGlm4, "config.json");
  EXPECT_EQ(c.num_parameters(), 9400279040);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias || c.mlp_bias);
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Interleaved);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_TRUE(c.sandwich_norms && c.pre_norms);
  EXPECT_EQ(c.norm_weight_offset, 0.0f);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{151329, 151336, 151338}));
  const ModelConfig glm = ModelConfig::from_json(
      replaced(kGlm4, {{"\"Glm4ForCausalLM\"", "\"GlmForCausalLM\""}, {"\"glm4\"", "\"glm\""}}), "config.json");
  EXPECT_FALSE(glm.sandwich_norms);
  EXPECT_EQ(glm.num_parameters(), 9400279040 - 40 * 2 * 4096);
  // Glm4Config's / GlmConfig's defaults where a key is absent: half of each head rotating, biases on
  // q, k and v, untied, its three stop tokens.
  const ModelConfig defaults =
      ModelConfig::from_json(replaced(kGlm4, {{"\"partial_rotary_factor\": 0.5,", ""},
                                              {"\"attention_bias\": true, ", ""},
                                              {"\"tie_word_embeddings\": false, ", ""},
                                              {"\"eos_token_id\": [151329, 151336, 151338], ", ""}}),
                             "c");
  EXPECT_EQ(defaults.rotary_dim, 64);
  EXPECT_TRUE(defaults.qkv_bias);
  EXPECT_FALSE(defaults.tie_word_embeddings);
  EXPECT_EQ(defaults.eos_token_ids, c.eos_token_ids);
  EXPECT_FALSE(ModelConfig::from_json(replaced(kGlm4, {{"\"attention_bias\": true", "\"attention_bias\": false"}}), "c")
                   .qkv_bias);
  const std::string gelu = error_of(replaced(kGlm4, {{"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""}}));
  EXPECT_NE(gelu.find("hidden_act \"gelu\" is not supported"), std::string::npos) << gelu;

  // The files' names: gate and up the row blocks of gate_up_proj; GLM-4's norms under its names --
  // the attention output's post_self_attn_layernorm, the MLP's input post_attention_layernorm (Llama's
  // name, which spin's four-norm layer gives the attention output's), the MLP output's
  // post_mlp_layernorm.
  const HfLayout layout = hf_layout(c);
  const HfLayout::Place up = layout.place("model.layers.3.mlp.up_proj.weight");
  EXPECT_EQ(up.name, "model.layers.3.mlp.gate_up_proj.weight");
  EXPECT_EQ(up.row, 13696);
  EXPECT_EQ(up.rows, 2 * 13696);
  for (const auto& [spin_name, file_name] :
       std::vector<std::pair<std::string, std::string>>{{"input_layernorm", "input_layernorm"},
                                                        {"post_attention_layernorm", "post_self_attn_layernorm"},
                                                        {"pre_feedforward_layernorm", "post_attention_layernorm"},
                                                        {"post_feedforward_layernorm", "post_mlp_layernorm"}}) {
    EXPECT_EQ(layout.place("model.layers.3." + spin_name + ".weight").name, "model.layers.3." + file_name + ".weight");
  }
  EXPECT_EQ(hf_layout(glm).place("model.layers.3.post_attention_layernorm.weight").name,
            "model.layers.3.post_attention_layernorm.weight");  // GLM's one norm before the MLP
  std::vector<std::string> names;
  for (const ShardedTensor& t : parameter_layout(glm, tp_dims(glm, 0, 1), StageLayers::whole(glm.num_layers))) {
    names.push_back(t.name);
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "model.layers.0.post_attention_layernorm.weight"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "model.layers.0.self_attn.o_proj.bias"), names.end());
}

}  // namespace
}  // namespace spin::model
