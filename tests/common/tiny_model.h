// Small random models for model tests, built in memory (no files): ModelWeights::init_random
// keys every value by its global index, so the same seed gives the same global model under any
// tensor-parallel layout. Norm weights are moved away from 1 so that tests see them act.
#pragma once

#include <string>
#include <vector>

#include "core/philox.h"
#include "model/config.h"
#include "model/weights.h"

namespace spin::testing {

// Llama, or a family's own parts: Mistral's sliding window (3 keys, shorter than the tests'
// sequences), Qwen2's q/k/v biases, Qwen3's head norms, Gemma's GeGLU, 1 + w norms and scaled
// embeddings, Gemma 2's besides: sandwich norms, its score scale (query_pre_attn_scalar 3 against
// head_dim 4), caps small enough to bend this model's scores (1) and logits (2), and a window of
// 4 keys in its even layers; Gemma 3's: Gemma 2's without caps, head norms of 1 + w, and a
// 3-key window in layer 0 of every 2 (sliding_window_pattern 2), whose RoPE base (100) is not the
// global layers' (10000).
// Phi-3's: LongRoPE's short factors (1.5 and 3, alternating) and attention factor
// (original_max_position_embeddings 32 of 64: sqrt(1 + ln 2 / ln 32)); Phi-4-mini's: Phi-3's with
// a partial rotary factor of 0.5 (the first half of each head rotates, LongRoPE's lists cover it);
// SmolLM3's: RoPE in the first layer, none in the second (no_rope_layers [1, 0]); Granite's: its four
// scalars away from 1 and from the values they replace (embeddings times 3, scores times 0.3 instead
// of head_dim's 0.5, each half's output times 0.7, logits divided by 4); OLMo's: LayerNorms
// without parameters for every norm, q, k and v clamped at 2 (clip_qkv: about a tenth of them);
// OLMo 2's: output norms alone, q and k normed across heads; StableLM's: LayerNorms with weights
// and biases, biases on q, k and v, half of each head rotating (its 0.25 of the tiny head_dim 4
// would be one dimension); StableLmParallel StableLM's with use_parallel_residual (attention and
// MLP side by side, one norm a layer); Cohere's: LayerNorms with a weight alone, attention and MLP
// side by side, RoPE in interleaved pairs, the logits times 0.25 (logit_scale); Cohere 2's besides a
// 3-key window and RoPE in layer 0 of every 2, the other layer global without RoPE. GPT-NeoX's:
// LayerNorms with weights and biases, a plain MLP with the exact GELU, biases on every projection,
// the parallel residual with a norm per half, half of each head rotating, every head its own kv
// head (GPT-NeoX has no GQA: the shape's kv_heads is ignored); GptNeoxSequential its sequential
// layout (use_parallel_residual false) with the tanh GELU (gelu_new). Phi-2's: GPT-NeoX's plain MLP
// with the tanh GELU and biases, attention and MLP side by side from one LayerNorm, half of each head
// rotating, a bias on the LM head. Mixtral's, Qwen3-MoE's and OLMoE's: a mixture of 4 experts, 2 a
// token; Qwen2-MoE's besides a shared expert of intermediate + 8 behind its gate. CohereQkNorm:
// Cohere's with a LayerNorm of each q and k head (use_qk_norm); StableLmQkNorm: StableLmParallel's
// with them (qk_layernorm). LlamaBiases: Llama's with biases on q, k, v and o_proj (attention_bias) and
// on gate_proj, up_proj and down_proj (mlp_bias). GraniteMoe:
// Granite's scalars with Mixtral's mixture. Glm4: biases on q, k and v, half of each head rotating in
// interleaved pairs, a norm of each half's output (Gemma 2's sandwich norms with plain weights).
// Exaone4: OLMo 2's output norms alone with Qwen3's head norms, a 3-key window and RoPE in layer 0,
// layer 1 global without RoPE. Glm4Moe: biases on q, k and v, Qwen3's head norms, half of each head
// rotating (rotate_half's pairs), layer 0 a dense MLP (intermediate), the others GLM-4.5's mixture --
// 4 experts of intermediate / 2 in 2 groups, 2 a token from the best group by sigmoid score + the
// correction bias, renormalised and scaled by 2.5, and two shared experts as one ungated MLP. DeepseekV3:
// GLM-4.5's mixture behind DeepSeek-V3's latent attention -- q through a rank-6 latent and its norm, keys
// and values through a rank-8 one, each head 4 content and 4 rotated dimensions (interleaved pairs) of query
// and key, a value of 3 (padded to 8 for the attention), YaRN's factor 4 with mscale_all_dim 1 scaling the
// scores by (1 + 0.1 ln 4)^2; every head its own kv head (the shape's kv_heads is ignored). DeepseekV2: its
// latent attention with q straight from the input (q_proj), no rope_scaling, and DeepSeek-V2's softmax router
// -- 6 experts of intermediate / 2 in 3 groups, a token's 2 the group with the best probability (not
// always greedy's best two), scaled by 2 -- beside two shared experts, after a dense layer 0.
enum class TinyFamily {
  Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma2, Gemma3, Phi3, Phi4Mini, SmolLM3, Granite, Olmo, Olmo2, StableLm,
  StableLmParallel, Cohere, Cohere2, GptNeox, GptNeoxSequential, Phi, Mixtral, Qwen3Moe, Olmoe, Qwen2Moe,
  CohereQkNorm, StableLmQkNorm, LlamaBiases, GraniteMoe, Glm4, Exaone4, Glm4Moe, DeepseekV3, DeepseekV2
};

// Its model_type, for the tests' traces.
inline const char* tiny_family_name(TinyFamily f) {
  switch (f) {
    case TinyFamily::Llama: return "llama";
    case TinyFamily::Mistral: return "mistral";
    case TinyFamily::Qwen2: return "qwen2";
    case TinyFamily::Qwen3: return "qwen3";
    case TinyFamily::Gemma: return "gemma";
    case TinyFamily::Gemma2: return "gemma2";
    case TinyFamily::Gemma3: return "gemma3_text";
    case TinyFamily::Phi3: return "phi3";
    case TinyFamily::Phi4Mini: return "phi3 (partial rotary)";
    case TinyFamily::SmolLM3: return "smollm3";
    case TinyFamily::Granite: return "granite";
    case TinyFamily::Olmo: return "olmo";
    case TinyFamily::Olmo2: return "olmo2";
    case TinyFamily::StableLm: return "stablelm";
    case TinyFamily::StableLmParallel: return "stablelm (parallel residual)";
    case TinyFamily::Cohere: return "cohere";
    case TinyFamily::Cohere2: return "cohere2";
    case TinyFamily::GptNeox: return "gpt_neox";
    case TinyFamily::GptNeoxSequential: return "gpt_neox (sequential)";
    case TinyFamily::Phi: return "phi";
    case TinyFamily::Mixtral: return "mixtral";
    case TinyFamily::Qwen3Moe: return "qwen3_moe";
    case TinyFamily::Olmoe: return "olmoe";
    case TinyFamily::Qwen2Moe: return "qwen2_moe";
    case TinyFamily::CohereQkNorm: return "cohere (qk norms)";
    case TinyFamily::StableLmQkNorm: return "stablelm (qk norms)";
    case TinyFamily::LlamaBiases: return "llama (attention_bias, mlp_bias)";
    case TinyFamily::GraniteMoe: return "granitemoe";
    case TinyFamily::Glm4: return "glm4";
    case TinyFamily::Exaone4: return "exaone4";
    case TinyFamily::Glm4Moe: return "glm4_moe";
    case TinyFamily::DeepseekV3: return "deepseek_v3";
    case TinyFamily::DeepseekV2: return "deepseek_v2";
  }
  return "?";
}

struct TinyShape {
  int vocab = 37;
  int hidden = 16;
  int intermediate = 24;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int max_positions = 64;
  bool tie = false;
  TinyFamily family = TinyFamily::Llama;
  float clip_qkv = -1.0f;  // OLMo: in place of the family's 2 where >= 0 (0: none)
  float router_aux_loss_coef = 0.0f;  // a mixture of experts: its load-balancing loss trained (ModelConfig's)
};

inline model::ModelConfig tiny_config(const TinyShape& s = {}) {
  const bool partial = s.family == TinyFamily::Phi4Mini;
  const int pairs = s.hidden / s.heads / (partial ? 4 : 2);  // LongRoPE's factors: one a rotated pair
  std::string phi3 = std::string("\"model_type\": \"phi3\", ") + (partial ? "\"partial_rotary_factor\": 0.5, " : "") +
                     "\"original_max_position_embeddings\": 32, \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [";
  for (int i = 0; i < pairs; ++i) phi3 += i % 2 ? ", 3.0" : (i ? ", 1.5" : "1.5");
  phi3 += "], \"long_factor\": [";
  for (int i = 0; i < pairs; ++i) phi3 += i ? ", 8.0" : "8.0";
  phi3 += "]}, ";
  const std::string type =
      s.family == TinyFamily::Phi3 || partial    ? phi3
      : s.family == TinyFamily::SmolLM3          ? "\"model_type\": \"smollm3\", \"no_rope_layers\": [1, 0], "
      : s.family == TinyFamily::Granite          ? "\"model_type\": \"granite\", \"embedding_multiplier\": 3.0, "
                                                   "\"attention_multiplier\": 0.3, \"residual_multiplier\": 0.7, "
                                                   "\"logits_scaling\": 4.0, "
      : s.family == TinyFamily::GraniteMoe       ? "\"model_type\": \"granitemoe\", \"embedding_multiplier\": 3.0, "
                                                   "\"attention_multiplier\": 0.3, \"residual_multiplier\": 0.7, "
                                                   "\"logits_scaling\": 4.0, \"num_local_experts\": 4, "
                                                   "\"num_experts_per_tok\": 2, "
      : s.family == TinyFamily::Olmo             ? "\"model_type\": \"olmo\", \"clip_qkv\": 2.0, "
      : s.family == TinyFamily::Olmo2            ? "\"model_type\": \"olmo2\", "
      : s.family == TinyFamily::StableLm         ? "\"model_type\": \"stablelm\", \"use_qkv_bias\": true, "
                                                   "\"partial_rotary_factor\": 0.5, \"layer_norm_eps\": 1e-5, "
      : s.family == TinyFamily::StableLmParallel ? "\"model_type\": \"stablelm\", \"use_parallel_residual\": true, "
                                                   "\"partial_rotary_factor\": 0.5, "
      : s.family == TinyFamily::StableLmQkNorm   ? "\"model_type\": \"stablelm\", \"use_parallel_residual\": true, "
                                                   "\"partial_rotary_factor\": 0.5, \"qk_layernorm\": true, "
      : s.family == TinyFamily::Cohere           ? "\"model_type\": \"cohere\", \"logit_scale\": 0.25, "
      : s.family == TinyFamily::CohereQkNorm     ? "\"model_type\": \"cohere\", \"logit_scale\": 0.25, "
                                                   "\"use_qk_norm\": true, "
      : s.family == TinyFamily::Cohere2          ? "\"model_type\": \"cohere2\", \"logit_scale\": 0.25, "
                                                   "\"sliding_window\": 3, \"sliding_window_pattern\": 2, "
      : s.family == TinyFamily::GptNeox          ? "\"model_type\": \"gpt_neox\", \"rotary_pct\": 0.5, "
      : s.family == TinyFamily::Phi              ? "\"model_type\": \"phi\", \"partial_rotary_factor\": 0.5, "
      : s.family == TinyFamily::GptNeoxSequential
          ? "\"model_type\": \"gpt_neox\", \"rotary_pct\": 0.5, \"use_parallel_residual\": false, "
            "\"hidden_act\": \"gelu_new\", "
      : s.family == TinyFamily::Mixtral          ? "\"model_type\": \"mixtral\", \"num_local_experts\": 4, "
                                                   "\"num_experts_per_tok\": 2, "
      : s.family == TinyFamily::Olmoe            ? "\"model_type\": \"olmoe\", \"num_experts\": 4, "
                                                   "\"num_experts_per_tok\": 2, "
      : s.family == TinyFamily::Qwen3Moe
          ? "\"model_type\": \"qwen3_moe\", \"num_experts\": 4, \"num_experts_per_tok\": 2, "
            "\"moe_intermediate_size\": " + std::to_string(s.intermediate) + ", "
      : s.family == TinyFamily::Qwen2Moe
          ? "\"model_type\": \"qwen2_moe\", \"num_experts\": 4, \"num_experts_per_tok\": 2, "
            "\"moe_intermediate_size\": " + std::to_string(s.intermediate) + ", "
            "\"shared_expert_intermediate_size\": " + std::to_string(s.intermediate + 8) + ", "
      : s.family == TinyFamily::Mistral          ? "\"model_type\": \"mistral\", \"sliding_window\": 3, "
      : s.family == TinyFamily::Glm4             ? "\"model_type\": \"glm4\", \"eos_token_id\": 2, "
      : s.family == TinyFamily::Exaone4          ? "\"model_type\": \"exaone4\", \"sliding_window\": 3, "
                                                   "\"layer_types\": [\"sliding_attention\", \"full_attention\"], "
      : s.family == TinyFamily::Glm4Moe
          ? "\"model_type\": \"glm4_moe\", \"eos_token_id\": 2, \"attention_bias\": true, \"use_qk_norm\": true, "
            "\"head_dim\": " + std::to_string(s.hidden / s.heads) + ", \"n_routed_experts\": 4, "
            "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": " + std::to_string(s.intermediate / 2) + ", "
            "\"n_shared_experts\": 2, \"n_group\": 2, \"topk_group\": 1, \"routed_scaling_factor\": 2.5, "
            "\"first_k_dense_replace\": 1, "
      : s.family == TinyFamily::DeepseekV3
          ? "\"model_type\": \"deepseek_v3\", \"eos_token_id\": 2, \"q_lora_rank\": 6, \"kv_lora_rank\": 8, "
            "\"qk_nope_head_dim\": 4, \"qk_rope_head_dim\": 4, \"v_head_dim\": 3, \"n_routed_experts\": 4, "
            "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": " + std::to_string(s.intermediate / 2) + ", "
            "\"n_shared_experts\": 2, \"n_group\": 2, \"topk_group\": 1, \"routed_scaling_factor\": 2.5, "
            "\"first_k_dense_replace\": 1, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, "
            "\"original_max_position_embeddings\": 16, \"mscale\": 1.0, \"mscale_all_dim\": 1.0}, "
      : s.family == TinyFamily::DeepseekV2
          ? "\"model_type\": \"deepseek_v2\", \"eos_token_id\": 2, \"q_lora_rank\": null, \"kv_lora_rank\": 8, "
            "\"qk_nope_head_dim\": 4, \"qk_rope_head_dim\": 4, \"v_head_dim\": 3, \"n_routed_experts\": 6, "
            "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": " + std::to_string(s.intermediate / 2) + ", "
            "\"n_shared_experts\": 2, \"n_group\": 3, \"topk_group\": 1, \"topk_method\": \"group_limited_greedy\", "
            "\"routed_scaling_factor\": 2.0, \"first_k_dense_replace\": 1, "
      : s.family == TinyFamily::Qwen2            ? "\"model_type\": \"qwen2\", "
      : s.family == TinyFamily::LlamaBiases ? "\"attention_bias\": true, \"mlp_bias\": true, "
      : s.family == TinyFamily::Qwen3            ? "\"model_type\": \"qwen3\", "
      : s.family == TinyFamily::Gemma            ? "\"model_type\": \"gemma\", "
      : s.family == TinyFamily::Gemma2
          ? "\"model_type\": \"gemma2\", \"query_pre_attn_scalar\": 3, "
            "\"attn_logit_softcapping\": 1.0, \"final_logit_softcapping\": 2.0, \"sliding_window\": 4, "
      : s.family == TinyFamily::Gemma3
          ? "\"model_type\": \"gemma3_text\", \"query_pre_attn_scalar\": 3, \"sliding_window\": 3, "
            "\"sliding_window_pattern\": 2, \"rope_local_base_freq\": 100.0, "
          : "";
  const std::string json = "{" + type +
      "\"vocab_size\": " + std::to_string(s.vocab) +
      ", \"hidden_size\": " + std::to_string(s.hidden) +
      ", \"intermediate_size\": " + std::to_string(s.intermediate) +
      ", \"num_hidden_layers\": " + std::to_string(s.layers) +
      ", \"num_attention_heads\": " + std::to_string(s.heads) +
      ", \"num_key_value_heads\": " + std::to_string(s.family == TinyFamily::DeepseekV3 || s.family == TinyFamily::DeepseekV2 ? s.heads
                                                                                                      : s.kv_heads) +
      ", \"max_position_embeddings\": " + std::to_string(s.max_positions) +
      ", \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0" +
      ", \"tie_word_embeddings\": " + (s.tie ? "true" : "false") + "}";
  model::ModelConfig config = model::ModelConfig::from_json(json, "tiny test config");
  if (s.clip_qkv >= 0.0f) config.clip_qkv = s.clip_qkv;
  config.router_aux_loss_coef = s.router_aux_loss_coef;
  return config;
}

// Keyed by the tensor's name, like init_random, so that every layout builds the same model. The
// norm weights (replicated, or OLMo 2's and Command R+'s q and k norms split over TP with the heads:
// keyed by global index) are scales around 1, stored as such or, for Gemma's norms
// (`norm_weight_offset` 1), as the scale minus one; the other replicated vectors likewise -- but
// GLM-4.5's router correction bias, small around 0 (normal(0, 0.05)) so that it moves the choice of
// experts without deciding it alone.
inline void init_tiny_weights(model::ModelWeights& w, std::uint64_t seed, float std = 0.3f,
                              float norm_weight_offset = 0.0f) {
  w.init_random(seed, std);
  for (const ShardedTensor& p : w.sharded_state_dict()) {
    const bool norm = p.name.ends_with("norm.weight");
    if (!norm && (!p.replicated() || p.global_shape.size() > 1)) continue;
    // The global index of element 0: a split norm weight is split along its first dimension.
    std::int64_t inner = 1;
    for (std::size_t dim = 1; dim < p.global_shape.size(); ++dim) inner *= p.global_shape[dim];
    const std::int64_t first = p.replicated() ? 0 : p.offset * inner;
    std::uint64_t stream = 0xcbf29ce484222325ull;
    for (unsigned char ch : p.name) stream = (stream ^ ch) * 0x100000001b3ull;
    const bool router_bias = p.name.ends_with("e_score_correction_bias");
    const float center = router_bias ? 0.0f : 1.0f - norm_weight_offset, spread = router_bias ? 0.05f : 0.2f;
    std::vector<float> d(static_cast<std::size_t>(p.local.numel()));
    for (std::size_t i = 0; i < d.size(); ++i) {
      d[i] = center +
             spread * philox_normal(seed + 1, stream, static_cast<std::uint64_t>(first + static_cast<std::int64_t>(i)));
    }
    copy_bytes(p.local.raw(), p.local.device(), d.data(), Device::Cpu, p.local.nbytes());
  }
}

// Every matrix of `w` (LoRA adapters, say: B too, which init_random leaves at zero) normal(0, std),
// keyed by (seed, name, global row and column) as init_random keys its values: the same global
// tensors under any TP layout. 2-D tensors only.
inline void randomize_matrices(model::ModelWeights& w, std::uint64_t seed, float std) {
  for (const ShardedTensor& p : w.sharded_state_dict()) {
    std::uint64_t stream = 0xcbf29ce484222325ull;
    for (unsigned char ch : p.name) stream = (stream ^ ch) * 0x100000001b3ull;
    const std::int64_t rows = p.local.shape()[0], cols = p.local.shape()[1], global_cols = p.global_shape[1];
    std::vector<float> d(static_cast<std::size_t>(rows * cols), 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < cols; ++c) {
        if ((p.split_dim == 0 ? r : p.split_dim == 1 ? c : 0) >= (p.replicated() ? 1 : p.length)) continue;
        const std::int64_t gr = p.split_dim == 0 ? p.offset + r : r;
        const std::int64_t gc = p.split_dim == 1 ? p.offset + c : c;
        d[static_cast<std::size_t>(r * cols + c)] =
            std * philox_normal(seed, stream, static_cast<std::uint64_t>(gr * global_cols + gc));
      }
    }
    copy_bytes(p.local.raw(), p.local.device(), d.data(), Device::Cpu, p.local.nbytes());
  }
}

// Every projection of a model without latent attention (q, k, v, o, gate, up, down) adapted at rank
// `rank`, alpha 2 x rank (scale 2).
inline model::LoraConfig tiny_lora(std::int64_t rank = 3) {
  model::LoraConfig lora;
  lora.rank = rank;
  lora.alpha = 2.0 * static_cast<double>(rank);
  for (const auto t : {model::LoraTarget::Q, model::LoraTarget::K, model::LoraTarget::V, model::LoraTarget::O,
                       model::LoraTarget::Gate, model::LoraTarget::Up, model::LoraTarget::Down}) {
    lora.targets[static_cast<std::size_t>(t)] = true;
  }
  return lora;
}
// Every projection `config` has adapted (all-linear: latent attention's four too, no gate in a plain MLP).
inline model::LoraConfig tiny_lora(const model::ModelConfig& config, std::int64_t rank = 3) {
  model::LoraConfig lora = tiny_lora(rank);
  lora.targets.fill(true);
  lora.targets = model::lora_targets_of_model(config, lora.targets, "all-linear", "test");
  return lora;
}

}  // namespace spin::testing
