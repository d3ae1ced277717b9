// ModelConfig of EXAONE 4.0 (model_type exaone4, Exaone4ForCausalLM): OLMo 2's output norms alone,
// Qwen3's head norms, windows in three layers of four and RoPE in those alone where the config has
// a window.
#include <gtest/gtest.h>

#include <string>

#include "model/config.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;

std::string layer_types(int layers) {
  std::string types = "[";
  for (int l = 0; l < layers; ++l) {
    types += std::string(l ? ", " : "") + ((l + 1) % 4 ? "\"sliding_attention\"" : "\"full_attention\"");
  }
  return types + "]";
}

// EXAONE-4.0-32B's shape, as its model card gives it (64 layers, 40 heads, 8 kv heads, vocabulary
// 102400), with its Llama 3 rope scaling; `window` and `pattern` as JSON values, `types` whether the
// config lists layer_types (LLLG's).
std::string exaone4(const std::string& window = "4096", const std::string& pattern = "\"LLLG\"", bool types = true) {
  std::string json = R"({
    "architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4", "bos_token_id": 1, "eos_token_id": 361,
    "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120, "intermediate_size": 27392,
    "max_position_embeddings": 131072, "num_attention_heads": 40, "num_hidden_layers": 64, "num_key_value_heads": 8,
    "pad_token_id": 0, "rms_norm_eps": 1e-05, "rope_theta": 1000000, "tie_word_embeddings": false,
    "vocab_size": 102400, "rope_scaling": {"factor": 16.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                           "original_max_position_embeddings": 8192, "rope_type": "llama3"})";
  if (!window.empty()) json += ", \"sliding_window\": " + window;
  json += ", \"sliding_window_pattern\": " + pattern;
  if (types) json += ", \"layer_types\": " + layer_types(64);
  return json + "}";
}

// Counted by hand: untied 102400 x 5120 embeddings and head (1,048,576,000), 64 layers of 483,666,176
// (q and o 5120 x 5120, k and v 1024 x 5120, the q and k head norms' 128 each, the MLP 3 x 5120 x 27392,
// two output norms), the final norm: 32,003,216,384 -- the card's 32 B, 30.95 B without embeddings.
TEST(ModelConfig, ReadsExaone4) {
  const ModelConfig c = ModelConfig::from_json(exaone4(), "config.json");
  EXPECT_EQ(c.num_parameters(), 32003216384);
  EXPECT_TRUE(c.sandwich_norms && c.qk_norm);
  EXPECT_FALSE(c.pre_norms || c.qk_norm_all_heads || c.qkv_bias);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.sliding_window, 4096);
  for (std::int64_t l = 0; l < 64; ++l) {
    const bool global = (l + 1) % 4 == 0;
    EXPECT_EQ(c.windowed(l), !global) << l;
    EXPECT_EQ(c.rotates(l), !global) << l;  // the global layers without RoPE
  }
  // Without a window (EXAONE-4.0-1.2B) every layer is global and rotates.
  const ModelConfig global = ModelConfig::from_json(exaone4("null"), "c");
  for (std::int64_t l = 0; l < 64; ++l) EXPECT_TRUE(!global.windowed(l) && global.rotates(l)) << l;
  // An integer pattern without layer_types: all but every pattern-th layer windowed.
  const ModelConfig two = ModelConfig::from_json(exaone4("4096", "2", false), "c");
  EXPECT_TRUE(two.windowed(0) && two.rotates(0) && !two.windowed(1) && !two.rotates(1));
  // The string pattern without layer_types (read differently by transformers versions), and a config
  // without sliding_window (whose default they disagree on), are refused.
  const std::string string_pattern = error_of(exaone4("4096", "\"LLLG\"", false));
  EXPECT_NE(string_pattern.find("sliding_window_pattern \"LLLG\" without \"layer_types\" is not supported"),
            std::string::npos)
      << string_pattern;
  const std::string no_window = error_of(exaone4(""));
  EXPECT_NE(no_window.find("missing required key \"sliding_window\""), std::string::npos) << no_window;
}

}  // namespace
}  // namespace spin::model
