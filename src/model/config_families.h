// The parsers of the families whose config.json has keys of its own (ModelConfig::from_json calls
// them by model_type before reading Llama's keys): each sets its parts of the ModelConfig, may
// rewrite `j` where Llama's keys are read after it (defaults, the experts' width), and throws
// spin::Error naming `source` for what spin does not run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace spin::model {

// StableLM (model_type stablelm; StableLmConfig's defaults where a key is absent): LayerNorms with
// weight and bias, RoPE over a quarter of each head (partial_rotary_factor 0.25 by default), biases
// on q, k and v where use_qkv_bias says so, attention and MLP side by side where
// use_parallel_residual says so; where qk_layernorm (StableLM 2 12B) a LayerNorm of each q and k head
// with its own weight (qk_head_layernorm), a module a head in its files (hf_layout's row splits).
void parse_stablelm(nlohmann::json& j, ModelConfig& c, const std::string& source);

// Cohere (model_type cohere: Command-R, Aya 23, Aya Expanse; CohereConfig's defaults where a key is
// absent): LayerNorms with a weight and no bias, attention and MLP side by side from one norm, RoPE
// in interleaved pairs, the logits times logit_scale, tied embeddings; where use_qk_norm (Command R+)
// a LayerNorm of each q and k head with its own weight (qk_head_layernorm). Cohere 2 (cohere2:
// Command R7B) besides: windows in three layers of four, RoPE in those alone (from_json).
void parse_cohere(const nlohmann::json& j, ModelConfig& c, const std::string& source);

// GPT-NeoX (model_type gpt_neox, GPTNeoXForCausalLM: Pythia; GPTNeoXConfig's defaults where a key
// is absent): LayerNorms with weight and bias, q, k, v and o_proj with biases (attention_bias),
// a plain MLP with biases, the parallel residual with a norm for each half (use_parallel_residual;
// sequential otherwise, Llama's layout), RoPE over rotary_pct of each head (0.25) with base
// rotary_emb_base (or rope_theta), untied embeddings; hidden_act "gelu" exact, "gelu_new" /
// "gelu_fast" / "gelu_pytorch_tanh" its tanh form.
void parse_gpt_neox(nlohmann::json& j, ModelConfig& c, const std::string& source);

// Phi-1.5 / Phi-2 (model_type phi, PhiForCausalLM; PhiConfig's defaults where a key is absent): LayerNorms
// with weight and bias, q, k, v, dense (o_proj) and the plain MLP's fc1 / fc2 with biases, attention and
// MLP side by side from the one norm, RoPE over partial_rotary_factor of each head (0.5), the tanh
// GELU (gelu_new), a bias on the LM head, untied; qk_layernorm is not implemented.
void parse_phi(nlohmann::json& j, ModelConfig& c, const std::string& source);

// GLM (model_type glm: GLM-4-9B-Chat's -hf checkpoints, GLM-Edge) and GLM-4 (glm4: GLM-4-9B-0414,
// GLM-4-32B-0414, GLM-Z1; `glm4`), GlmConfig's / Glm4Config's defaults where a key is absent:
// Llama's layers with biases on q, k and v (attention_bias, true by default; none on o_proj), RoPE
// in interleaved pairs (2i, 2i + 1) over the first partial_rotary_factor of each head (0.5), gate and
// up fused as Phi-3's gate_up_proj in the files; GLM-4 besides an RMSNorm of each half's output
// before its residual add (post_self_attn_layernorm, post_mlp_layernorm: Gemma 2's sandwich
// norms, plain weights), the MLP's input norm keeping Llama's name post_attention_layernorm.
void parse_glm(nlohmann::json& j, ModelConfig& c, const std::string& source, bool glm4);

// Seed-OSS (model_type seed_oss: Seed-OSS-36B-Base / -Instruct; SeedOssForCausalLM; SeedOssConfig's defaults
// where a key is absent): Llama's layers with biases on q, k and v (attention_bias, true), on o_proj where
// attention_out_bias (false) and on the MLP where mlp_bias (false), head_dim 128 apart from hidden / heads;
// its attention_dropout and residual_dropout (0.1) not applied, as TRL's trainers switch dropout off.
void parse_seed_oss(nlohmann::json& j, ModelConfig& c, const std::string& source);

// EXAONE 4.0 (model_type exaone4: EXAONE-4.0-1.2B, EXAONE-4.0-32B; Exaone4ForCausalLM): OLMo 2's layers
// -- no norm before either half, an RMSNorm of each half's output (post_attention_layernorm,
// post_feedforward_layernorm) -- with Qwen3's RMSNorm of each query and key head before RoPE; where
// sliding_window is set, the windowed layers (layer_types, or all but every sliding_window_pattern-th)
// rotate and the others attend without RoPE (Exaone4Attention's "global NoPE"), else every layer
// rotates. sliding_window is required: the versions of Exaone4Config disagree on its default.
void parse_exaone4(const nlohmann::json& j, ModelConfig& c, const std::string& source);

// Mixtral (model_type mixtral, MixtralForCausalLM: Mixtral 8x7B, 8x22B; MixtralConfig's defaults where a
// key is absent): Mistral's layers with the MLP a sparse mixture of experts -- num_local_experts SwiGLU
// experts (w1, w3, w2: gate, up, down), each token through its num_experts_per_tok most probable ones
// by the router's softmax, renormalised over them; the load-balancing loss where output_router_logits
// (ModelConfig::router_aux_loss_coef). Not implemented: the router's training noise
// (router_jitter_noise).
void parse_mixtral(nlohmann::json& j, ModelConfig& c, const std::string& source);

// GraniteMoE (model_type granitemoe, GraniteMoeForCausalLM: granite-3.0 / 3.1 1B-A400M and 3B-A800M;
// GraniteMoeConfig's defaults where a key is absent): Granite's layers and multipliers (the caller's
// parse_granite_multipliers) with Mixtral's mixture -- num_local_experts SwiGLU experts, each token through
// its num_experts_per_tok largest router logits weighted by their softmax (Mixtral's renormalised
// probabilities, the same numbers) -- whose files hold each layer's experts as two 3-D tensors,
// block_sparse_moe.input_linear [experts, 2 x intermediate, hidden] (each expert's gate then up rows) and
// output_linear [experts, hidden, intermediate], the router as block_sparse_moe.router.layer.
// position_embedding_type other than "rope" is refused.
void parse_granitemoe(const nlohmann::json& j, ModelConfig& c, const std::string& source);

// Granite 4.0's attention-only models (model_type granitemoehybrid with every layer_types entry
// "attention": Granite 4.0 Micro): Granite's layers and multipliers (the caller's) with the MLP as
// GraniteMoeHybridMLP's shared_mlp -- input_linear = [gate; up] rows of shared_intermediate_size each,
// output_linear the down projection (hf_names GraniteHybrid) --, RoPE where position_embedding_type is
// "rope" and none in any layer where it is "nope" (`nope` set; the caller fills rope_layers). Mamba-2
// layers (the H models) and experts beside the shared MLP are refused by name.
void parse_granite_hybrid(nlohmann::json& j, ModelConfig& c, const std::string& source, bool& nope);

// Qwen's mixtures (model_type qwen2_moe and qwen3_moe; their configs' defaults where a key is absent):
// every layer's MLP a sparse mixture of num_experts SwiGLU experts of moe_intermediate_size (the dense
// intermediate_size unused), each token through its num_experts_per_tok most probable, weighted by
// their softmax probabilities -- renormalised over them where norm_topk_prob (false by default) --,
// under spin's own names (mlp.gate, mlp.experts.N.gate_proj / up_proj / down_proj). Qwen2-MoE's shared
// expert (mlp.shared_expert.*, mlp.shared_expert_gate) where `shared` (its default width), Qwen3-MoE has
// none. Dense layers among the sparse ones (decoder_sparse_step > 1, mlp_only_layers: no published
// model has them) are not implemented. `experts`, `per_token`, `width` (moe_intermediate_size) and
// `shared` are its config class's defaults.
void parse_qwen_moe(nlohmann::json& j, ModelConfig& c, const std::string& source, std::int64_t experts,
                    std::int64_t per_token, std::int64_t width, std::int64_t shared);

// GLM-4.5 / 4.6 (model_type glm4_moe, Glm4MoeForCausalLM: GLM-4.5, GLM-4.5-Air, GLM-4.6; Glm4MoeConfig's
// defaults where a key is absent): GLM-4's attention without its sandwich norms -- q, k and v biases where
// attention_bias, RoPE over the first partial_rotary_factor (0.5) of each head in rotate_half's pairs (not
// GLM-4's interleaved ones), Qwen3's head norms where use_qk_norm -- and, after first_k_dense_replace dense
// layers (intermediate_size), a mixture of n_routed_experts SwiGLU experts of moe_intermediate_size behind
// DeepSeek-V3's sigmoid router (ModelConfig::router_sigmoid: e_score_correction_bias, n_group, topk_group,
// norm_topk_prob, routed_scaling_factor) and n_shared_experts shared experts as one ungated MLP
// (mlp.shared_experts): parse_deepseek_moe below. Its multi-token-prediction layers
// (num_nextn_predict_layers, after the decoder's in the files) are not read. A load-balancing loss
// (output_router_logits) is refused.
void parse_glm4_moe(nlohmann::json& j, ModelConfig& c, const std::string& source);

// DeepSeek-V3's mixture as GLM-4.5 and dots.llm1 configure it (DeepseekV3MoE): after
// first_k_dense_replace dense layers (intermediate_size), n_routed_experts SwiGLU experts of
// moe_intermediate_size behind the sigmoid router (ModelConfig::router_sigmoid: its
// e_score_correction_bias, n_group, topk_group, norm_topk_prob, routed_scaling_factor; scoring_func
// other than "sigmoid" and topk_method other than "noaux_tc" refused) and n_shared_experts shared
// experts as one ungated MLP (mlp.shared_experts: hf_names DeepseekV3). `d`: the config class's
// defaults (a size of 0: the key is required).
struct DeepseekMoeDefaults {
  std::int64_t experts = 0, per_token = 0, shared = 0;
  std::int64_t first_dense = 0;
  bool norm_topk_prob = false;
  std::int64_t width = 0, dense_width = 0;  // moe_intermediate_size, intermediate_size
  bool softmax = false;                     // DeepSeek-V2's softmax router instead of the sigmoid one
};
void parse_deepseek_moe(nlohmann::json& j, ModelConfig& c, const std::string& type, const std::string& source,
                        const DeepseekMoeDefaults& d);

// dots.llm1 (model_type dots1, Dots1ForCausalLM: dots.llm1.base, dots.llm1.inst; Dots1Config's defaults
// where a key is absent): Qwen3's attention (an RMSNorm of each q and k head, full RoPE; attention_bias's
// biases on q, k, v and o_proj as Llama's) with DeepSeek-V3's mixture (parse_deepseek_moe; its sizes
// required, first_k_dense_replace 0 and norm_topk_prob false by default); a window in the layers from
// max_window_layers on where sliding_window is set (Dots1Config's 4096 and 62).
void parse_dots1(nlohmann::json& j, ModelConfig& c, const std::string& source);

// DeepSeek-V3 (model_type deepseek_v3, DeepseekV3ForCausalLM: DeepSeek-V3 / V3.1 / R1, Kimi K2, Moonlight;
// DeepseekV3Config's defaults where a key is absent): multi-head latent attention (ModelConfig::latent_attention:
// q_lora_rank -- null: q_proj --, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim; RoPE in
// interleaved pairs where rope_interleave; the scores' YaRN mscale_all_dim) and DeepSeek-V3's mixture
// (parse_deepseek_moe). Its multi-token-prediction layers (num_nextn_predict_layers) are not read; attention_bias
// is refused. Kimi K2 (model_type kimi_k2: Kimi-K2-Base, -Instruct, -Thinking) is DeepSeek-V3's architecture under a
// model_type of its own (`type`, for the errors), read the same way.
void parse_deepseek_v3(nlohmann::json& j, ModelConfig& c, const std::string& source,
                       const std::string& type = "deepseek_v3");

// DeepSeek-V2 (model_type deepseek_v2, DeepseekV2ForCausalLM: DeepSeek-V2, V2-Lite, V2.5, Coder-V2; DeepseekV2Config's
// defaults where a key is absent): DeepSeek-V3's latent attention (RoPE in interleaved pairs always) with its own
// router -- softmax probabilities, the num_experts_per_tok (required) most probable (topk_method greedy) or those
// within the topk_group of n_group groups with the largest best probabilities (group_limited_greedy), weighted by
// their probabilities times routed_scaling_factor, not renormalised (norm_topk_prob true refused) -- beside
// n_shared_experts ungated shared experts, after first_k_dense_replace (0) dense layers.
void parse_deepseek_v2(nlohmann::json& j, ModelConfig& c, const std::string& source);

// OLMoE (model_type olmoe, OlmoeForCausalLM: OLMoE-1B-7B; OlmoeConfig's defaults where a key is absent):
// Llama's pre-norm layers with OLMo 2's q and k norms across all their heads, and the MLP a sparse
// mixture of num_experts (64) SwiGLU experts of intermediate_size, each token through its
// num_experts_per_tok (8) most probable, weighted by their softmax probabilities (renormalised only
// where norm_topk_prob, false as published); Qwen3-MoE's names. Its clip_qkv (after the norms, unlike
// OLMo 1.7's) is not implemented.
void parse_olmoe(nlohmann::json& j, ModelConfig& c, const std::string& source);

}  // namespace spin::model
