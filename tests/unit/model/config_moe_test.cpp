// ModelConfig of the mixture-of-experts families: Mistral AI's Mixtral (model_type mixtral,
// MixtralForCausalLM: Mistral's layers with a sparse mixture of SwiGLU experts for the MLP, its
// tensor names in the files), Qwen3-MoE (qwen3_moe: Qwen3's attention, the experts under spin's own
// names), Qwen2-MoE (qwen2_moe: Qwen2's attention, and a shared expert beside the routed ones), OLMoE
// and GraniteMoE (granitemoe: Granite's multipliers, every layer's experts in two tensors of the
// files); what spin does not run of them refused by name.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "model/flops.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// Mixtral-8x7B-Instruct-v0.1's config.json.
const std::string kMixtral8x7b = R"({
  "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32, "num_experts_per_tok": 2,
  "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": false,
  "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02, "sliding_window": null,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.36.0.dev0",
  "use_cache": true, "vocab_size": 32000})";

// 46,702,792,704 parameters (Hugging Face's count for Mixtral-8x7B: per layer attention, a router of
// 8 x 4096 and eight experts of three 14336 x 4096 matrices, two norms; two embeddings), of which a
// token meets the attention, the router and two experts: 12.9 B with the LM head. The files' names:
// block_sparse_moe.gate, experts.N.w1 / w3 / w2 for gate / up / down.
TEST(ModelConfig, ReadsMixtral) {
  const ModelConfig c = ModelConfig::from_json(kMixtral8x7b, "config.json");
  EXPECT_TRUE(c.moe());
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.num_parameters(), 46702792704);
  // Per layer 4096 x 128 x 80 (attention) + 3 x 2 x 4096 x 14336 (two experts) + 8 x 4096 (router),
  // and the LM head.
  EXPECT_EQ(matmul_parameters(c), 32.0 * (41943040.0 + 352321536.0 + 32768.0) + 32000.0 * 4096.0);
  // MixtralConfig's defaults: eight experts, two a token, rope_theta 1e6.
  const ModelConfig defaults = ModelConfig::from_json(replaced(kMixtral8x7b, {{"\"num_experts_per_tok\": 2,", ""},
                                                                              {"\"num_local_experts\": 8,", ""},
                                                                              {"\"rope_theta\": 1000000.0,", ""}}),
                                                      "c");
  EXPECT_EQ(defaults.num_experts, 8);
  EXPECT_EQ(defaults.experts_per_token, 2);
  EXPECT_EQ(defaults.rope_theta, 1e6f);

  const HfLayout layout = hf_layout(c);
  for (const auto& [ours, theirs] : std::vector<std::pair<std::string, std::string>>{
           {"model.layers.0.mlp.gate.weight", "model.layers.0.block_sparse_moe.gate.weight"},
           {"model.layers.31.mlp.experts.7.gate_proj.weight", "model.layers.31.block_sparse_moe.experts.7.w1.weight"},
           {"model.layers.2.mlp.experts.0.up_proj.weight", "model.layers.2.block_sparse_moe.experts.0.w3.weight"},
           {"model.layers.2.mlp.experts.5.down_proj.weight", "model.layers.2.block_sparse_moe.experts.5.w2.weight"},
           {"model.layers.2.self_attn.o_proj.weight", "model.layers.2.self_attn.o_proj.weight"},
           {"model.layers.2.post_attention_layernorm.weight", "model.layers.2.post_attention_layernorm.weight"}}) {
    EXPECT_EQ(layout.place(ours).name, theirs);
  }
  // Every expert split over TP as a dense MLP, the router whole on every rank.
  std::int64_t experts = 0;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 1, 4), StageLayers{0, 1, true, false})) {
    if (t.name.find("mlp.experts.") != std::string::npos) {
      ++experts;
      EXPECT_EQ(t.split_dim, t.name.ends_with("down_proj.weight") ? 1 : 0) << t.name;
      EXPECT_EQ(t.length, 14336 / 4) << t.name;
    }
    if (t.name == "model.layers.0.mlp.gate.weight") {
      EXPECT_TRUE(t.replicated());
    }
    EXPECT_EQ(t.name.find("mlp.up_proj"), std::string::npos) << t.name;
  }
  EXPECT_EQ(experts, 8 * 3);
}

// A config of granite-3.0-1b-a400m-instruct's shape: Granite's multipliers, 32 experts of 512, 8 a token,
// tied embeddings. 1,334,628,352 parameters: per layer attention 1024 x (1024 + 512 + 512 + 1024), a router
// of 32 x 1024, 32 experts of three 512 x 1024 matrices, two norms; one embedding of 49155 x 1024. The
// files hold each layer's experts as block_sparse_moe.input_linear [32, 2 x 512, 1024] -- expert e's
// gate rows then its up rows -- and output_linear [32, 1024, 512]: each spin tensor a row block of
// those read as [32 x 1024, 1024] and [32 x 1024, 512].
TEST(ModelConfig, ReadsGraniteMoeWithItsExpertsInThreeDimensionalTensors) {
  const std::string granite_moe = R"({
    "architectures": ["GraniteMoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.1,
    "attention_multiplier": 0.015625, "bos_token_id": 0, "embedding_multiplier": 12.0, "eos_token_id": 0,
    "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 512,
    "logits_scaling": 6.0, "max_position_embeddings": 4096, "model_type": "granitemoe", "num_attention_heads": 16,
    "num_experts_per_tok": 8, "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32,
    "output_router_logits": false, "pad_token_id": 0, "residual_multiplier": 0.22, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 10000, "router_aux_loss_coef": 0.001, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "vocab_size": 49155})";
  const ModelConfig c = ModelConfig::from_json(granite_moe, "config.json");
  EXPECT_TRUE(c.moe() && c.norm_topk_prob && c.tie_word_embeddings);
  EXPECT_EQ(c.num_experts, 32);
  EXPECT_EQ(c.experts_per_token, 8);
  EXPECT_EQ(c.embedding_multiplier, 12.0f);
  EXPECT_EQ(c.attention_multiplier, 0.015625f);
  EXPECT_EQ(c.residual_multiplier, 0.22f);
  EXPECT_EQ(c.logits_scaling, 6.0f);
  EXPECT_EQ(c.num_parameters(), 1334628352);
  const HfLayout layout = hf_layout(c);
  const HfLayout::Place up = layout.place("model.layers.3.mlp.experts.5.up_proj.weight");
  EXPECT_EQ(up.name, "model.layers.3.block_sparse_moe.input_linear.weight");
  EXPECT_EQ(up.row, (5 * 2 + 1) * 512);
  EXPECT_EQ(up.rows, 32 * 1024);
  EXPECT_EQ(up.blocks, 32);
  const HfLayout::Place gate = layout.place("model.layers.3.mlp.experts.11.gate_proj.weight");
  EXPECT_EQ(gate.row, 11 * 2 * 512) << "expert 11, not expert 1";
  const HfLayout::Place down = layout.place("model.layers.23.mlp.experts.31.down_proj.weight");
  EXPECT_EQ(down.name, "model.layers.23.block_sparse_moe.output_linear.weight");
  EXPECT_EQ(down.row, 31 * 1024);
  EXPECT_EQ(down.rows, 32 * 1024);
  EXPECT_EQ(layout.place("model.layers.0.mlp.gate.weight").name, "model.layers.0.block_sparse_moe.router.layer.weight");
  EXPECT_EQ(layout.place("model.layers.0.self_attn.q_proj.weight").name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_NE(error_of(replaced(granite_moe, {{"\"rope_theta\": 10000,", "\"rope_theta\": 10000, "
                                                                          "\"position_embedding_type\": \"nope\","}}))
                .find("position_embedding_type \"nope\" is not supported"),
            std::string::npos);
}

TEST(ModelConfig, RefusesWhatMixtralRunsWithoutSpin) {
  EXPECT_NE(error_of(replaced(kMixtral8x7b, {{"\"attention_dropout\": 0.0", "\"router_jitter_noise\": 0.1"}}))
                .find("router_jitter_noise"),
            std::string::npos);
  EXPECT_NE(error_of(replaced(kMixtral8x7b, {{"\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 9"}}))
                .find("num_experts_per_tok (9) exceeds num_local_experts (8)"),
            std::string::npos);
}

// Layer 0's norm weights, in the model's order.
std::vector<std::string> layer_norm_test_names(const ModelConfig& c) {
  std::vector<std::string> names;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 0, 1), StageLayers{0, 1, true, false})) {
    if (t.name.ends_with("norm.weight")) names.push_back(t.name);
  }
  return names;
}

// Qwen3-30B-A3B's config.json.
const std::string kQwen3_30bA3b = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
  "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
  "norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
  "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": false, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": null,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

// 30,532,122,624 parameters (Qwen3-30B-A3B's "30.5B": per layer attention with Qwen3's head norms, a
// router of 128 x 2048 and 128 experts of three 768 x 2048 matrices, two norms; two embeddings), of
// which a token meets the attention, the router and 8 experts: 3.0 B with the LM head (its card's
// 3.3 B counts the embedding too). The experts' width is moe_intermediate_size; their names are spin's.
TEST(ModelConfig, ReadsQwen3Moe) {
  const ModelConfig c = ModelConfig::from_json(kQwen3_30bA3b, "config.json");
  EXPECT_TRUE(c.moe() && c.qk_norm);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.experts_per_token, 8);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.intermediate_size, 768);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.num_parameters(), 30532122624);
  EXPECT_EQ(matmul_parameters(c),
            48.0 * (18874368.0 + 8.0 * 3.0 * 2048.0 * 768.0 + 128.0 * 2048.0) + 151936.0 * 2048.0);
  const HfLayout layout = hf_layout(c);
  for (const char* name : {"model.layers.0.mlp.gate.weight", "model.layers.47.mlp.experts.127.down_proj.weight",
                           "model.layers.3.self_attn.k_norm.weight"}) {
    EXPECT_EQ(layout.place(name).name, name);
  }
  // Qwen3MoeConfig's defaults: 128 experts, 8 a token, not renormalised, experts of 768.
  const ModelConfig defaults =
      ModelConfig::from_json(replaced(kQwen3_30bA3b, {{"\"num_experts\": 128,", ""},
                                                      {"\"num_experts_per_tok\": 8,", ""},
                                                      {"\"norm_topk_prob\": true,", ""},
                                                      {"\"moe_intermediate_size\": 768,", ""}}),
                             "c");
  EXPECT_EQ(defaults.num_experts, 128);
  EXPECT_EQ(defaults.experts_per_token, 8);
  EXPECT_FALSE(defaults.norm_topk_prob);
  EXPECT_EQ(defaults.intermediate_size, 768);
  // Dense layers among the sparse ones are refused.
  EXPECT_NE(error_of(replaced(kQwen3_30bA3b, {{"\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2"}}))
                .find("decoder_sparse_step 2"),
            std::string::npos);
  EXPECT_NE(error_of(replaced(kQwen3_30bA3b, {{"\"mlp_only_layers\": []", "\"mlp_only_layers\": [0, 5]"}}))
                .find("mlp_only_layers [0,5]"),
            std::string::npos);
}

// Qwen1.5-MoE-A2.7B-Chat's config.json.
const std::string kQwen15MoeA27b = R"({
  "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
  "max_position_embeddings": 8192, "max_window_layers": 21, "model_type": "qwen2_moe", "num_attention_heads": 16,
  "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936,
  "decoder_sparse_step": 1, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
  "num_experts_per_tok": 4, "num_experts": 60, "norm_topk_prob": false, "output_router_logits": false,
  "router_aux_loss_coef": 0.001})";

// 14,315,784,192 parameters (Qwen1.5-MoE-A2.7B's "14.3B": per layer Qwen2's attention with its q, k
// and v biases, a router of 60 x 2048 and 60 experts of three 1408 x 2048 matrices, a shared expert of
// three 5632 x 2048 and its gate's 2048, two norms; two embeddings), of which a token meets the
// attention, the router, 4 experts, the shared expert and its gate: 2.1 B a token in the layers (its
// card's "A2.7B" counts the embedding and the head too).
TEST(ModelConfig, ReadsQwen2Moe) {
  const ModelConfig c = ModelConfig::from_json(kQwen15MoeA27b, "config.json");
  EXPECT_TRUE(c.moe() && c.shared_expert() && c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.num_experts, 60);
  EXPECT_EQ(c.experts_per_token, 4);
  EXPECT_EQ(c.mlp_outputs(), 5);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.intermediate_size, 1408);
  EXPECT_EQ(c.shared_expert_intermediate_size, 5632);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.num_parameters(), 14315784192);
  const double layer =
      2048.0 * 128.0 * 64.0 + 4.0 * 3.0 * 2048.0 * 1408.0 + 60.0 * 2048.0 + 3.0 * 2048.0 * 5632.0 + 2048.0;
  EXPECT_EQ(matmul_parameters(c), 24.0 * layer + 151936.0 * 2048.0);
  // The shared expert split over TP as a dense MLP of its own width, its gate whole on every rank.
  int shared = 0;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 1, 4), StageLayers{0, 1, true, false})) {
    if (t.name.find("mlp.shared_expert.") != std::string::npos) {
      ++shared;
      EXPECT_EQ(t.split_dim, t.name.ends_with("down_proj.weight") ? 1 : 0) << t.name;
      EXPECT_EQ(t.length, 5632 / 4) << t.name;
    }
    if (t.name.find("mlp.experts.") != std::string::npos) {
      EXPECT_EQ(t.length, 1408 / 4) << t.name;
    }
    if (t.name == "model.layers.0.mlp.shared_expert_gate.weight") {
      ++shared;
      EXPECT_TRUE(t.replicated());
      EXPECT_EQ(t.global_shape, (Shape{1, 2048}));
    }
  }
  EXPECT_EQ(shared, 4);
  const HfLayout layout = hf_layout(c);
  for (const char* name :
       {"model.layers.0.mlp.shared_expert_gate.weight", "model.layers.23.mlp.shared_expert.down_proj.weight",
        "model.layers.5.mlp.experts.59.up_proj.weight"}) {
    EXPECT_EQ(layout.place(name).name, name);
  }
  // Qwen2MoeConfig's defaults: 60 experts, 4 a token, of 1408, a shared expert of 5632.
  const ModelConfig defaults =
      ModelConfig::from_json(replaced(kQwen15MoeA27b, {{"\"num_experts\": 60,", ""},
                                                       {"\"num_experts_per_tok\": 4,", ""},
                                                       {"\"moe_intermediate_size\": 1408,", ""},
                                                       {"\"shared_expert_intermediate_size\": 5632,", ""}}),
                             "c");
  EXPECT_EQ(defaults.num_parameters(), c.num_parameters());
  // The shared expert's width must divide over TP as the experts' does.
  const ModelConfig odd = ModelConfig::from_json(
      replaced(kQwen15MoeA27b,
               {{"\"shared_expert_intermediate_size\": 5632", "\"shared_expert_intermediate_size\": 5630"}}),
      "c");
  try {
    tp_dims(odd, 0, 4);
    ADD_FAILURE() << "a shared expert of 5630 split four ways";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shared_expert_intermediate_size (5630)"), std::string::npos) << e.what();
  }
  EXPECT_NE(error_of(replaced(kQwen15MoeA27b, {{"\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2"}}))
                .find("decoder_sparse_step 2"),
            std::string::npos);
  EXPECT_EQ(ModelConfig::from_json(
                replaced(kQwen15MoeA27b, {{"\"output_router_logits\": false", "\"output_router_logits\": true"}}), "c")
                .router_aux_loss_coef,
            0.001f);
}

// OLMoE-1B-7B-0924's config.json.
const std::string kOlmoe1b7b = R"({
  "architectures": ["OlmoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "clip_qkv": null,
  "eos_token_id": 50279, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 1024, "max_position_embeddings": 4096, "model_type": "olmoe", "norm_topk_prob": false,
  "num_attention_heads": 16, "num_experts": 64, "num_experts_per_tok": 8, "num_hidden_layers": 16,
  "num_key_value_heads": 16, "output_router_logits": false, "pad_token_id": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": null, "rope_theta": 10000.0, "router_aux_loss_coef": 0.01, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 50304})";

// 6,919,161,856 parameters (OLMoE-1B-7B's "6.9B": per layer attention with q and k norms across
// their 2048 columns each, a router of 64 x 2048 and 64 experts of three 1024 x 2048 matrices, two
// pre-norms; two embeddings), 1.2 B of them a token with the LM head (its card's 1.3 B counts the
// embedding too): Llama's pre-norms with OLMo 2's norms across the heads.
TEST(ModelConfig, ReadsOlmoe) {
  const ModelConfig c = ModelConfig::from_json(kOlmoe1b7b, "config.json");
  EXPECT_TRUE(c.moe() && c.qk_norm_all_heads && c.pre_norms);
  EXPECT_FALSE(c.qk_norm || c.sandwich_norms || c.norm_topk_prob);
  EXPECT_EQ(c.num_experts, 64);
  EXPECT_EQ(c.experts_per_token, 8);
  EXPECT_EQ(c.num_parameters(), 6919161856);
  EXPECT_EQ(layer_norm_test_names(c),
            (std::vector<std::string>{"model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_norm.weight",
                                      "model.layers.0.self_attn.k_norm.weight",
                                      "model.layers.0.post_attention_layernorm.weight"}));
  EXPECT_NE(error_of(replaced(kOlmoe1b7b, {{"\"clip_qkv\": null", "\"clip_qkv\": 8.0"}})).find("clip_qkv 8.0"),
            std::string::npos);
}

// The router's load-balancing loss: trained where output_router_logits says so (as transformers'
// trainers add it), with router_aux_loss_coef -- MixtralConfig's 0.001 where the key is absent --,
// not otherwise whatever the coefficient; a negative coefficient refused.
TEST(ModelConfig, ReadsTheLoadBalancingLossWhereOutputRouterLogits) {
  EXPECT_EQ(ModelConfig::from_json(kMixtral8x7b, "c").router_aux_loss_coef, 0.0f);
  const std::string on =
      replaced(kMixtral8x7b, {{"\"output_router_logits\": false", "\"output_router_logits\": true"}});
  EXPECT_EQ(ModelConfig::from_json(on, "c").router_aux_loss_coef, 0.02f);
  EXPECT_EQ(ModelConfig::from_json(replaced(on, {{"\"router_aux_loss_coef\": 0.02, ", ""}}), "c").router_aux_loss_coef,
            0.001f);
  EXPECT_NE(error_of(replaced(on, {{"\"router_aux_loss_coef\": 0.02", "\"router_aux_loss_coef\": -1"}}))
                .find("\"router_aux_loss_coef\" must be a number >= 0, got -1"),
            std::string::npos);
  EXPECT_EQ(ModelConfig::from_json(
                replaced(kOlmoe1b7b, {{"\"output_router_logits\": false", "\"output_router_logits\": true"}}), "c")
                .router_aux_loss_coef,
            0.01f);
}

}  // namespace
}  // namespace spin::model
