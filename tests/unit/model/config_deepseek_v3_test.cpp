// ModelConfig of DeepSeek-V3 (model_type deepseek_v3, DeepseekV3ForCausalLM: DeepSeek-V3 / R1, Moonlight):
// multi-head latent attention (model/latent_attention.h) with DeepSeek-V3's mixture.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>

#include "model/config.h"
#include "model/flops.h"
#include "model/tp_dims.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// DeepSeek-V3's config.json (its quantization_config aside: see DeepseekV3RefusesWhatItCannotRead).
const std::string kDeepseekV3 = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 0,
  "eos_token_id": 1, "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
  "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
  "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8,
  "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128,
  "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128, "num_nextn_predict_layers": 1,
  "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                   "original_max_position_embeddings": 4096, "type": "yarn"},
  "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "tie_word_embeddings": false,
  "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "use_cache": true, "v_head_dim": 128,
  "vocab_size": 129280})";

// Counted by hand: 61 layers' attention -- q_a_proj 7168 x 1536 and its norm, q_b_proj 1536 x 128 x 192,
// kv_a_proj_with_mqa 7168 x 576 and its norm, kv_b_proj 512 x 128 x 256, o_proj 128 x 128 x 7168 --
// and two norms, 3 dense layers of 3 x 7168 x 18432, 58 layers of 256 experts of 3 x 7168 x 2048 with the
// router, its bias and one shared expert, untied embeddings and head, the final norm: 671,026,419,200 --
// the card's 671 B main model (685 B with its multi-token-prediction layer, not read). 36.62 B in a
// token's products: the card's 37 B activated.
TEST(ModelConfig, ReadsDeepseekV3) {
  const ModelConfig c = ModelConfig::from_json(kDeepseekV3, "config.json");
  EXPECT_EQ(c.num_parameters(), 671026419200);
  EXPECT_EQ(matmul_parameters(c), 36624596992.0);
  EXPECT_TRUE(c.latent_attention());
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.head_dim, 192);  // the query's and key's: 128 by content, 64 rotated
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.value_head_dim(), 128);
  EXPECT_EQ(c.num_kv_heads, 128);
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Interleaved);  // rope_interleave's default
  EXPECT_EQ(c.mtp_layers, 1);
  EXPECT_EQ(c.first_dense_layers, 3);
  EXPECT_EQ(c.dense_intermediate_size, 18432);
  EXPECT_EQ(c.intermediate_size, 2048);
  EXPECT_EQ(c.shared_expert_intermediate_size, 2048);
  EXPECT_TRUE(c.router_sigmoid && c.norm_topk_prob && !c.shared_expert_gated);
  EXPECT_EQ(c.expert_groups, 8);
  EXPECT_EQ(c.expert_groups_chosen, 4);
  EXPECT_EQ(c.routed_scaling_factor, 2.5f);
  EXPECT_EQ(c.hf_names, ModelConfig::HfNames::DeepseekV3);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, RopeScaling::Type::Yarn);
  EXPECT_EQ(c.rope_scaling->attention_factor, 1.0f);  // get_mscale(40, 1) / get_mscale(40, 1)
  // The scores: 192^-1/2 times get_mscale(40, mscale_all_dim 1)^2 = (1 + 0.1 ln 40)^2, as Python's doubles.
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_EQ(c.attention_scores(0).scale, static_cast<float>(std::pow(192.0, -0.5) * m * m));
  EXPECT_NEAR(c.attention_scores(0).scale, 0.13523378, 1e-7);
  // Its split over TP 8: 16 heads of 192 for q and k, of 128 for the values (o_proj's input).
  const TpDims d = tp_dims(c, 0, 8);
  EXPECT_EQ(d.q_width(), 16 * 192);
  EXPECT_EQ(d.kv_width(), 16 * 192);
  EXPECT_EQ(d.o_width(), 16 * 128);
}

// Moonlight-16B-A3B's config.json: q straight from the hidden state (q_lora_rank null), 64 experts of
// 1408, 6 a token, 2 shared, one group, one dense layer of 11264, no rope_scaling (the scores at
// 192^-1/2, RoPE's plain table); by hand 15,960,110,208 parameters (the card's 16 B), 2.58 B in a token's
// products (A3B).
TEST(ModelConfig, ReadsMoonlight) {
  const ModelConfig c = ModelConfig::from_json(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "attention_bias": false,
    "bos_token_id": 163584, "eos_token_id": 163585, "first_k_dense_replace": 1, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 11264, "kv_lora_rank": 512, "max_position_embeddings": 8192,
    "moe_intermediate_size": 1408, "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2,
    "norm_topk_prob": true, "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 27,
    "num_key_value_heads": 16, "q_lora_rank": null, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 50000.0, "routed_scaling_factor": 2.446,
    "scoring_func": "sigmoid", "tie_word_embeddings": false, "topk_group": 1, "topk_method": "noaux_tc",
    "v_head_dim": 128, "vocab_size": 163840})",
                                               "config.json");
  EXPECT_EQ(c.num_parameters(), 15960110208);
  EXPECT_EQ(matmul_parameters(c), 2579103744.0);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.attention_scores(0).scale, static_cast<float>(std::pow(192.0, -0.5)));
  EXPECT_EQ(c.mtp_layers, 0);
  EXPECT_EQ(c.expert_groups, 1);
}

// The published DeepSeek-V3 files are block-scaled FP8 (quantization_config): read dequantized in
// blocks of weight_block_size, and the config spin keeps and exports leaves quantization_config out (what
// it holds is dequantized). Other quantizations are refused by name.
TEST(ModelConfig, DeepseekV3Fp8QuantizationConfig) {
  const std::string fp8 = replaced(kDeepseekV3, {{"\"q_lora_rank\"", R"("quantization_config": {"activation_scheme": )"
                                                                  R"("dynamic", "fmt": "e4m3", "quant_method": "fp8", )"
                                                                  R"("weight_block_size": [128, 64]}, "q_lora_rank")"}});
  const ModelConfig c = ModelConfig::from_json(fp8, "config.json");
  EXPECT_EQ(c.fp8_block, (std::array<std::int64_t, 2>{128, 64}));
  EXPECT_EQ(hf_layout(c).fp8_block, c.fp8_block);
  EXPECT_EQ(c.json_text.find("quantization_config"), std::string::npos);
  EXPECT_EQ(ModelConfig::from_json(c.json_text, "kept").num_parameters(), c.num_parameters());
  EXPECT_EQ(ModelConfig::from_json(kDeepseekV3, "c").fp8_block, (std::array<std::int64_t, 2>{0, 0}));
  EXPECT_EQ(ModelConfig::from_json(kDeepseekV3, "c").json_text, kDeepseekV3);  // unquantized: kept as read
  const std::string gptq = error_of(replaced(fp8, {{"\"quant_method\": \"fp8\"", "\"quant_method\": \"gptq\""}}));
  EXPECT_NE(gptq.find("quantization_config's quant_method \"gptq\" is not supported"), std::string::npos) << gptq;
  const std::string per_tensor = error_of(replaced(fp8, {{", \"weight_block_size\": [128, 64]", ""}}));
  EXPECT_NE(per_tensor.find("weight_block_size null is not [rows, cols]"), std::string::npos) << per_tensor;
  const std::string e5m2 = error_of(replaced(fp8, {{"\"e4m3\"", "\"e5m2\""}}));
  EXPECT_NE(e5m2.find("quantization_config's fmt \"e5m2\" is not supported"), std::string::npos) << e5m2;
}

// DeepseekV3Config's defaults where keys are absent (DeepSeek-V3's shapes), and what spin refuses.
TEST(ModelConfig, DeepseekV3DefaultsAndRefusals) {
  const ModelConfig d = ModelConfig::from_json(R"({"model_type": "deepseek_v3"})", "c");
  EXPECT_EQ(d.num_parameters(), 671026419200);
  EXPECT_EQ(d.attention_scores(0).scale, static_cast<float>(std::pow(192.0, -0.5)));  // no rope_scaling
  EXPECT_EQ(d.eos_token_ids, std::vector<std::int64_t>{1});
  const ModelConfig halves =
      ModelConfig::from_json(replaced(kDeepseekV3, {{"\"bos_token_id\"", "\"rope_interleave\": false, \"bos_token_id\""}}), "c");
  EXPECT_EQ(halves.rope_pairs, kernels::RopePairs::Halves);
  // A head_dim in the file (DeepseekV3Config writes qk_rope_head_dim there) does not change the heads.
  const ModelConfig written =
      ModelConfig::from_json(replaced(kDeepseekV3, {{"\"bos_token_id\"", "\"head_dim\": 64, \"bos_token_id\""}}), "c");
  EXPECT_EQ(written.head_dim, 192);
  const std::string bias = error_of(replaced(kDeepseekV3, {{"\"attention_bias\": false", "\"attention_bias\": true"}}));
  EXPECT_NE(bias.find("attention_bias true is not supported for model_type deepseek_v3"), std::string::npos) << bias;
  const std::string gqa =
      error_of(replaced(kDeepseekV3, {{"\"num_key_value_heads\": 128", "\"num_key_value_heads\": 8"}}));
  EXPECT_NE(gqa.find("num_key_value_heads other than num_attention_heads"), std::string::npos) << gqa;
  const std::string wide = error_of(replaced(kDeepseekV3, {{"\"v_head_dim\": 128", "\"v_head_dim\": 256"}}));
  EXPECT_NE(wide.find("v_head_dim 256 wider than qk_nope_head_dim + qk_rope_head_dim 192"), std::string::npos)
      << wide;
  const std::string greedy = error_of(replaced(kDeepseekV3, {{"\"noaux_tc\"", "\"greedy\""}}));
  EXPECT_NE(greedy.find("topk_method \"greedy\" is not supported for model_type deepseek_v3"), std::string::npos)
      << greedy;
}

// Kimi K2 (model_type kimi_k2: DeepSeek-V3's architecture, so named for inference engines' sake): Kimi-K2-Instruct's
// config.json -- 384 experts in one group, 64 heads, one dense layer, YaRN factor 32, block-scaled FP8. By hand
// 1,026,408,232,448 parameters (the card's 1 T) and 31.69 B in a token's products (32 B activated with the
// embedding's lookup).
TEST(ModelConfig, ReadsKimiK2) {
  const ModelConfig c = ModelConfig::from_json(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "kimi_k2", "attention_bias": false,
    "attention_dropout": 0.0, "bos_token_id": 163584, "eos_token_id": 163585, "first_k_dense_replace": 1,
    "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 18432,
    "kv_lora_rank": 512, "max_position_embeddings": 131072, "moe_intermediate_size": 2048, "moe_layer_freq": 1,
    "n_group": 1, "n_routed_experts": 384, "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 64,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 64, "num_nextn_predict_layers": 0,
    "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06, "rope_scaling": {"beta_fast": 1.0, "beta_slow": 1.0, "factor": 32.0, "mscale": 1.0,
                                            "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                                            "type": "yarn"},
    "rope_theta": 50000.0, "routed_scaling_factor": 2.827, "scoring_func": "sigmoid", "tie_word_embeddings": false,
    "topk_group": 1, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "use_cache": true, "v_head_dim": 128,
    "vocab_size": 163840})",
                                               "config.json");
  EXPECT_EQ(c.num_parameters(), 1026408232448);
  EXPECT_EQ(matmul_parameters(c), 31686066176.0);
  EXPECT_TRUE(c.latent_attention() && c.router_sigmoid);
  EXPECT_EQ(c.fp8_block, (std::array<std::int64_t, 2>{128, 128}));
  EXPECT_EQ(c.routed_scaling_factor, 2.827f);
  const double m = 0.1 * std::log(32.0) + 1.0;
  EXPECT_EQ(c.attention_scores(0).scale, static_cast<float>(std::pow(192.0, -0.5) * m * m));
  const std::string bias = error_of(R"({"model_type": "kimi_k2", "attention_bias": true})");
  EXPECT_NE(bias.find("attention_bias true is not supported for model_type kimi_k2"), std::string::npos) << bias;
}

// DeepSeek-V2-Lite's config.json (model_type deepseek_v2): DeepSeek-V3's latent attention without a q latent,
// softmax routing (greedy: 6 of 64 experts, not renormalised, scaled by 1), 2 shared experts, a dense first
// layer. By hand: 15,706,484,224 parameters (the card's 15.7 B), 2.45 B in a token's products (2.4 B).
const std::string kDeepseekV2Lite = R"({
  "architectures": ["DeepseekV2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001, "bos_token_id": 100000, "eos_token_id": 100001, "first_k_dense_replace": 1,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 10944,
  "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v2", "moe_intermediate_size": 1408,
  "moe_layer_freq": 1, "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2, "norm_topk_prob": false,
  "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 27, "num_key_value_heads": 16,
  "pretraining_tp": 1, "q_lora_rank": null, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                   "original_max_position_embeddings": 4096, "type": "yarn"},
  "rope_theta": 10000, "routed_scaling_factor": 1.0, "scoring_func": "softmax", "seq_aux": true,
  "tie_word_embeddings": false, "topk_group": 1, "topk_method": "greedy", "torch_dtype": "bfloat16",
  "use_cache": true, "v_head_dim": 128, "vocab_size": 102400})";

TEST(ModelConfig, ReadsDeepseekV2Lite) {
  const ModelConfig c = ModelConfig::from_json(kDeepseekV2Lite, "config.json");
  EXPECT_EQ(c.num_parameters(), 15706484224);
  EXPECT_EQ(matmul_parameters(c), 2451308544.0);
  EXPECT_TRUE(c.latent_attention());
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_FALSE(c.router_sigmoid || c.norm_topk_prob || c.shared_expert_gated);
  EXPECT_EQ(c.expert_groups, 1);
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Interleaved);
  EXPECT_EQ(c.hf_names, ModelConfig::HfNames::DeepseekV3);  // mlp.shared_experts
  // YaRN: cos and sin unscaled (get_mscale(40, 0.707) / itself), the scores by (1 + 0.0707 ln 40)^2.
  EXPECT_EQ(c.rope_scaling->attention_factor, 1.0f);
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_EQ(c.attention_scores(0).scale, static_cast<float>(std::pow(192.0, -0.5) * m * m));
}

// DeepSeek-V2's (236 B): q through a rank-1536 latent, 6 of 160 experts within the 3 of 8 groups with the
// best probabilities (group_limited_greedy), scaled by 16. By hand 235,741,434,880 parameters, 20.85 B a
// token (the card's 236 B / 21 B). And what spin refuses.
TEST(ModelConfig, ReadsDeepseekV2AndRefusals) {
  const ModelConfig c = ModelConfig::from_json(
      replaced(kDeepseekV2Lite, {{"\"hidden_size\": 2048", "\"hidden_size\": 5120"},
                                 {"\"intermediate_size\": 10944", "\"intermediate_size\": 12288"},
                                 {"\"moe_intermediate_size\": 1408", "\"moe_intermediate_size\": 1536"},
                                 {"\"n_group\": 1", "\"n_group\": 8"},
                                 {"\"n_routed_experts\": 64", "\"n_routed_experts\": 160"},
                                 {"\"num_attention_heads\": 16", "\"num_attention_heads\": 128"},
                                 {"\"num_hidden_layers\": 27", "\"num_hidden_layers\": 60"},
                                 {"\"num_key_value_heads\": 16", "\"num_key_value_heads\": 128"},
                                 {"\"q_lora_rank\": null", "\"q_lora_rank\": 1536"},
                                 {"\"routed_scaling_factor\": 1.0", "\"routed_scaling_factor\": 16.0"},
                                 {"\"topk_group\": 1", "\"topk_group\": 3"},
                                 {"\"greedy\"", "\"group_limited_greedy\""}}),
      "config.json");
  EXPECT_EQ(c.num_parameters(), 235741434880);
  EXPECT_EQ(matmul_parameters(c), 20850769920.0);
  EXPECT_EQ(c.expert_groups, 8);
  EXPECT_EQ(c.expert_groups_chosen, 3);
  EXPECT_EQ(c.routed_scaling_factor, 16.0f);
  // greedy ignores the groups.
  EXPECT_EQ(ModelConfig::from_json(replaced(kDeepseekV2Lite, {{"\"n_group\": 1", "\"n_group\": 8"}}), "c").expert_groups,
            1);
  const std::string normalized =
      error_of(replaced(kDeepseekV2Lite, {{"\"norm_topk_prob\": false", "\"norm_topk_prob\": true"}}));
  EXPECT_NE(normalized.find("norm_topk_prob true is not supported for model_type deepseek_v2"), std::string::npos)
      << normalized;
  const std::string sigmoid = error_of(replaced(kDeepseekV2Lite, {{"\"softmax\"", "\"sigmoid\""}}));
  EXPECT_NE(sigmoid.find("scoring_func \"sigmoid\" is not supported for model_type deepseek_v2 (\"softmax\" is)"),
            std::string::npos)
      << sigmoid;
  const std::string noaux = error_of(replaced(kDeepseekV2Lite, {{"\"greedy\"", "\"noaux_tc\""}}));
  EXPECT_NE(noaux.find("topk_method \"noaux_tc\" is not supported for model_type deepseek_v2"), std::string::npos)
      << noaux;
  const std::string freq = error_of(replaced(kDeepseekV2Lite, {{"\"moe_layer_freq\": 1", "\"moe_layer_freq\": 2"}}));
  EXPECT_NE(freq.find("moe_layer_freq 2 is not supported"), std::string::npos) << freq;
  const std::string per_token = error_of(replaced(kDeepseekV2Lite, {{"\"num_experts_per_tok\": 6, ", ""}}));
  EXPECT_NE(per_token.find("missing required key \"num_experts_per_tok\" (model_type deepseek_v2)"),
            std::string::npos)
      << per_token;
}

}  // namespace
}  // namespace spin::model
