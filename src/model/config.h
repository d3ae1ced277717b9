// ModelConfig: the architecture of a Llama-family model (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, Qwen3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM,
// Phi3ForCausalLM, SmolLM3ForCausalLM, GraniteForCausalLM, OlmoForCausalLM, Olmo2ForCausalLM, Olmo3ForCausalLM,
// StableLmForCausalLM, CohereForCausalLM, Cohere2ForCausalLM, GPTNeoXForCausalLM, PhiForCausalLM,
// MixtralForCausalLM, Qwen3MoeForCausalLM, OlmoeForCausalLM), read from a
// Hugging Face config.json. Features spin does not implement (rope_scaling other than linear, llama3, yarn, longrope
// and dynamic, partial rotary embeddings outside Phi-3's, StableLM's, GPT-NeoX's and Phi's families, biases other
// than Qwen2's, StableLM's, GPT-NeoX's and Phi's, activations other than SiLU and the GELUs those families use) are
// refused by name rather than ignored.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/kernels.h"

namespace spin::model {

// config.json's rope_scaling, of the rope types spin implements (model/rope.h): linear (the
// positions divided by `factor`), llama3 (Llama 3.1 / 3.2: each inverse frequency rescaled by
// its wavelength against the original context), yarn (YaRN, the long-context setting of Qwen2.5
// and Qwen3: the frequencies that turn fewer than beta_slow times over the original context
// divided by `factor`, those turning more than beta_fast times kept, a linear ramp between; cos
// and sin times attention_factor) and longrope (Phi-3's 128k models: each inverse frequency
// divided by its short_factor, cos and sin times attention_factor, for sequences up to
// original_max_position_embeddings; a longer sequence takes long_factor at every position, as
// transformers switches: ModelConfig::long_rope_context) and dynamic (dynamic NTK: transformers raises
// the RoPE base only once a sequence outgrows max_position_embeddings -- or rope_scaling's
// original_max_position_embeddings where it gives one --, so up to there it is plain RoPE, and
// ModelConfig::max_sequence_length stops there too).
struct RopeScaling {
  enum class Type { Linear, Llama3, Yarn, LongRope, Dynamic };
  Type type = Type::Linear;
  float factor = 1.0f;
  float low_freq_factor = 1.0f, high_freq_factor = 4.0f;  // llama3
  std::int64_t original_max_position_embeddings = 0;      // llama3, yarn, longrope, dynamic
  double beta_fast = 32.0, beta_slow = 1.0;               // yarn: rotations over the original context
  bool truncate = true;                                   // yarn: the ramp's ends rounded outwards to whole dims
  std::vector<float> short_factor, long_factor;           // longrope: rotary_dim / 2 each
  float attention_factor = 1.0f;                          // yarn, longrope: cos and sin's scale

  // LongRoPE's switch for a model of `positions` positions: a longer sequence takes the long
  // factors (original_max_position_embeddings, at most `positions`); 0 for the other types.
  std::int64_t long_switch(std::int64_t positions) const {
    return type == Type::LongRope ? std::min(original_max_position_embeddings, positions) : 0;
  }
};

struct ModelConfig {
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;        // num_hidden_layers
  std::int64_t num_heads = 0;         // num_attention_heads
  std::int64_t num_kv_heads = 0;      // num_key_value_heads (defaults to num_heads)
  std::int64_t head_dim = 0;          // head_dim (defaults to hidden_size / num_heads)
  // The dimensions of each query and key head that RoPE rotates (the first ones; the rest pass
  // through): head_dim, or int(head_dim * partial_rotary_factor) for Phi-3-family models that give
  // one (Phi-4-mini: 96 of 128), and StableLM's models (a quarter: 16 of 64).
  std::int64_t rotary_dim = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  std::optional<RopeScaling> rope_scaling;
  std::int64_t max_position_embeddings = 0;
  // Sliding-window attention: the query at position i sees keys i - window < j <= i
  // (kernels::AttentionScores) in the layers windowed_layers marks (num_layers entries; empty
  // without a window): every layer for Mistral, the even ones for Gemma 2, those from
  // max_window_layers on for Qwen2 / Qwen3 with use_sliding_window, as config.json's layer_types
  // says where it has them.
  std::optional<std::int64_t> sliding_window;
  std::vector<bool> windowed_layers;
  // SmolLM3 (model_type smollm3), Cohere 2 (cohere2: the windowed layers): the layers that apply
  // RoPE (num_layers entries; empty: all) -- for SmolLM3
  // config.json's no_rope_layers, whose 1 means "rotates" (transformers' use_rope), or every
  // layer but each no_rope_layer_interval-th (4: layers 3, 7, ...) without the list. The others
  // (NoPE) attend by content alone.
  std::vector<bool> rope_layers;
  // Gemma 3: the windowed layers rotate by rope_local_base_freq (without rope_scaling), the others
  // by rope_theta (with it).
  std::optional<float> rope_local_theta;
  // Phi-3 (model_type phi3): the Hugging Face files hold q, k and v as one qkv_proj and the gate
  // and up projections as one gate_up_proj (model::hf_layout); in spin they are the usual
  // tensors, split over TP as always.
  bool fused_projections = false;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // biases on the q, k and v projections (model_type qwen2; stablelm's use_qkv_bias)
  bool qk_norm = false;   // RMSNorm of each query and key head before RoPE (model_type qwen3)
  // OLMo 2 / OLMo 3 (model_type olmo2, olmo3): q_norm and k_norm span each row's whole q (k)
  // width, every head at once -- weights of heads x head_dim split over TP with the heads, the
  // norm's statistics summed over the TP group (Kernels::row_dot) --, and no norm before either
  // half: sandwich_norms' output norms alone (pre_norms false; Hugging Face's
  // post_attention_layernorm and post_feedforward_layernorm).
  bool qk_norm_all_heads = false;
  // Command R+ (model_type cohere, use_qk_norm) and StableLM 2 12B (stablelm, qk_layernorm): a
  // LayerNorm of each query and key head before RoPE with a weight of its own, no bias (q_norm
  // [heads, head_dim], k_norm [kv heads, head_dim], split over TP with the heads:
  // Kernels::head_layernorm_*; StableLM's files hold a module a head, q_layernorm.norms.<h>).
  bool qk_head_layernorm = false;
  bool pre_norms = true;
  // OLMo (model_type olmo, the first OLMo): every norm -- both halves' input norms and the final
  // one -- a LayerNorm without weight or bias (OlmoLayerNorm: (x - mean) / sqrt(var + 1e-5) in
  // float32), so the model has no norm parameters; rms_norm_eps holds its 1e-5.
  // StableLM (model_type stablelm): LayerNorms with a weight and a bias each (nn.LayerNorm:
  // layer_norm_affine, layer_norm_bias), eps config.json's layer_norm_eps; Cohere's with a weight
  // alone (CohereLayerNorm).
  bool layer_norm = false;
  bool layer_norm_affine = false;
  bool layer_norm_bias = false;
  // StableLM's use_parallel_residual, Cohere's layers (GPT-J's layout): attention and MLP both read
  // the input norm's output, x_out = x_in + attn(norm(x_in)) + mlp(norm(x_in)); no norm before the MLP.
  bool parallel_residual = false;
  // GPT-NeoX (model_type gpt_neox: Pythia): the MLP a plain one, down(act(up(x))) without a gate
  // (gated_mlp false; hidden_act's GELU); biases on o_proj (o_bias: attention_bias, beside q, k
  // and v's) and on the MLP's projections (mlp_bias) -- o_proj's and down_proj's, row-parallel,
  // added once after their reduction --; with its parallel residual the MLP reads a norm of its
  // own of x_in (parallel_mlp_norm: post_attention_layernorm), x_out = x_in + attn(n1(x_in)) +
  // mlp(n2(x_in)); the files name tensors GPT-NeoX's way, q, k and v fused per head
  // (hf_names: model::hf_layout). Phi-2 (model_type phi): the plain MLP and biases, Cohere's parallel
  // residual from one norm, a bias on the LM head (lm_head_bias: [vocab], split with its rows) and
  // its own names (self_attn.dense, mlp.fc1 / fc2, model.final_layernorm).
  bool gated_mlp = true;
  bool o_bias = false;
  bool mlp_bias = false;
  bool parallel_mlp_norm = false;
  bool lm_head_bias = false;
  // GLM (model_type glm): gate and up fused as gate_up_proj in the files; GLM-4 (glm4) besides its
  // sandwich norms' names (post_self_attn_layernorm, post_mlp_layernorm, and post_attention_layernorm
  // the MLP's input norm, Llama's name for it).
  // DeepSeek-V3's (GLM-4.5's, dots.llm1's): the shared expert as mlp.shared_experts, the router's correction
  // bias kept in float32.
  enum class HfNames { Llama, GptNeox, Phi, Mixtral, StableLm, GraniteMoe, GraniteHybrid, Glm, Glm4, DeepseekV3 };
  HfNames hf_names = HfNames::Llama;
  // Mixtral (model_type mixtral), Qwen3-MoE (qwen3_moe: its moe_intermediate_size here), OLMoE (olmoe), GraniteMoE
  // (granitemoe: Granite's multipliers too): the MLP a sparse mixture of num_experts SwiGLU experts, each of
  // intermediate_size, behind a router (Hugging Face's block_sparse_moe.gate: [num_experts, hidden], replicated) whose
  // softmax picks each token's experts_per_token most probable experts and weights their outputs by those
  // probabilities -- renormalised over the chosen ones where norm_topk_prob (Mixtral's and GraniteMoE's always: its
  // softmax of the chosen logits is the same; the others' as configured). Each expert is split over TP as a dense
  // MLP is (model/moe.h). GraniteMoE's files hold each layer's experts in two tensors (hf_names GraniteMoe:
  // model::hf_layout).
  // 0 experts: a dense MLP.
  std::int64_t num_experts = 0;
  std::int64_t experts_per_token = 0;
  bool norm_topk_prob = false;
  // Qwen2-MoE (qwen2_moe): beside the routed experts a shared expert, a SwiGLU MLP of this width
  // every token goes through, its output weighted by sigmoid(x . shared_expert_gate) ([1, hidden],
  // replicated) and added to theirs; split over TP as a dense MLP. 0: none.
  std::int64_t shared_expert_intermediate_size = 0;
  // Whether the shared expert's output is weighted by its gate (Qwen2-MoE's) or added as it is (GLM-4.5's
  // shared_experts: no mlp.shared_expert_gate).
  bool shared_expert_gated = true;
  // GLM-4.5's router (glm4_moe; DeepSeek-V3's noaux_tc): each expert's score sigmoid(logit) in place of the
  // softmax; the experts chosen by score + a correction bias ([experts], replicated: the files'
  // mlp.gate.e_score_correction_bias, a buffer their trainer balanced the load with -- read, kept and written,
  // never trained), and only among the expert_groups_chosen of expert_groups equal groups whose two best biased
  // scores sum highest; the weights the chosen experts' scores, renormalised where norm_topk_prob, times
  // routed_scaling_factor (model/moe.h).
  bool router_sigmoid = false;
  float routed_scaling_factor = 1.0f;
  std::int64_t expert_groups = 1;
  std::int64_t expert_groups_chosen = 1;
  // GLM-4.5's first_k_dense_replace: a mixture whose first this many layers have a dense MLP of
  // dense_intermediate_size (the experts' width is intermediate_size) in place of the experts.
  std::int64_t first_dense_layers = 0;
  std::int64_t dense_intermediate_size = 0;
  // GLM-4.5's multi-token-prediction layers (num_nextn_predict_layers), which its files hold after the
  // decoder's as model.layers.{num_layers + i}: not part of the causal LM, so neither read nor written.
  std::int64_t mtp_layers = 0;
  // The router's load-balancing loss (MoeRouting::balance_loss, averaged over the layers of experts) times this
  // is added to the training loss: router_aux_loss_coef where output_router_logits is true, as
  // transformers' trainers add it; 0 (not trained) otherwise.
  float router_aux_loss_coef = 0.0f;
  // And ST-MoE's router z-loss (MoeRouting::z_loss, averaged over the layers of experts) times this: no
  // config.json key of these families (spin train's model.router_z_loss_coef); 0: not trained.
  float router_z_loss_coef = 0.0f;
  bool trains_router_losses() const { return router_aux_loss_coef > 0.0f || router_z_loss_coef > 0.0f; }
  // A sigmoid router's auxiliary-loss-free balancing (DeepSeek-V3's; Megatron's
  // --moe-router-bias-update-rate): after each training step every layer's correction bias moves by
  // this toward the balance of the step's load (train::update_router_biases); 0: kept as read. No
  // config.json key (spin train's model.router_bias_update_rate).
  float router_bias_update_rate = 0.0f;
  // DeepSeek-V3's multi-head latent attention (model_type deepseek_v3: DeepSeek-V3 / R1, Kimi K2, Moonlight;
  // kv_lora_rank > 0; model/latent_attention.h): the queries from q_b_proj(rmsnorm(q_a_proj(x))) (q_proj(x) where
  // q_lora_rank is 0), each head's qk_nope_head_dim dimensions by content and its last rotary_dim dimensions
  // rotated; the keys' and values' latent c = rmsnorm(the first kv_lora_rank of kv_a_proj_with_mqa(x)), each
  // head's key [kv_b_proj's content part of c, the one rotated key of kv_a_proj's last rotary_dim outputs shared
  // by every head] and value (v_head_dim) from kv_b_proj(c). head_dim is the query's and key's
  // (qk_nope_head_dim + qk_rope_head_dim), num_kv_heads num_heads; scores scaled by head_dim^-1/2 times
  // attention_mscale squared (YaRN's get_mscale(factor, mscale_all_dim); 1 otherwise).
  std::int64_t q_lora_rank = 0;
  std::int64_t kv_lora_rank = 0;
  std::int64_t qk_nope_head_dim = 0;
  std::int64_t v_head_dim = 0;
  double attention_mscale = 1.0;
  bool latent_attention() const { return kv_lora_rank > 0; }
  // The width of a value head: v_head_dim in latent attention, head_dim otherwise.
  std::int64_t value_head_dim() const { return latent_attention() ? v_head_dim : head_dim; }
  // Which dimensions of a head RoPE turns together: rotate_half's (i, i + rotary_dim / 2), or
  // Cohere's interleaved (2i, 2i + 1) (its rotate_half over x[..., ::2] and x[..., 1::2]).
  kernels::RopePairs rope_pairs = kernels::RopePairs::Halves;
  // OLMo 1.7 on: q, k and v clamped to [-clip_qkv, clip_qkv] right after
  // their products (before RoPE), torch.clamp's gradient; 0: none.
  float clip_qkv = 0.0f;
  // Gemma (model_type gemma): GeGLU instead of SwiGLU, RMSNorm scales of 1 + the stored weight,
  // the embedding's output multiplied by sqrt(hidden_size), tied embeddings by default.
  kernels::Activation activation = kernels::Activation::Silu;
  float norm_weight_offset = 0.0f;  // 1 for Gemma: y = x / rms(x) * (1 + w)
  bool scale_embeddings = false;    // Gemma: embeddings * sqrt(hidden_size)
  // Gemma 2 (model_type gemma2): Gemma's parts, and an RMSNorm of each half's output before its
  // residual add (sandwich_norms: Hugging Face's post_attention_layernorm and
  // post_feedforward_layernorm, the MLP's input norm then named pre_feedforward_layernorm),
  // scores scaled by query_pre_attn_scalar^-1/2 instead of head_dim's and capped by
  // attn_logit_softcapping, the logits capped by final_logit_softcapping (cap tanh(x / cap)).
  bool sandwich_norms = false;
  std::optional<float> query_pre_attn_scalar;
  float attn_logit_softcapping = 0.0f;   // 0: none
  float final_logit_softcapping = 0.0f;  // 0: none
  // Granite (model_type granite; its muP scalars): the embedding's output times
  // embedding_multiplier, scores scaled by attention_multiplier instead of 1/sqrt(head_dim), each
  // half's output times residual_multiplier before its residual add, the logits divided by
  // logits_scaling. 1 (none) for the other families.
  float embedding_multiplier = 1.0f;
  std::optional<float> attention_multiplier;
  float residual_multiplier = 1.0f;
  float logits_scaling = 1.0f;
  // Cohere (model_type cohere): the logits times logit_scale (0.0625 for Command-R and Aya 23).
  float logit_scale = 1.0f;
  std::vector<std::int64_t> eos_token_ids;
  std::optional<std::int64_t> bos_token_id;
  std::string json_text;  // the config.json text, kept to write into checkpoints and exports
  // Block-scaled FP8 weights (quantization_config: quant_method "fp8", fmt "e4m3", weight_block_size): read
  // dequantized (HfLayout::fp8_block); {0, 0}: none. json_text then leaves quantization_config out: what spin
  // holds and writes is dequantized.
  std::array<std::int64_t, 2> fp8_block{};
  // The prefix of the model's tensor names in its Hugging Face files: "language_model." for a
  // multimodal checkpoint -- Gemma 3's (model_type gemma3, Gemma3ForConditionalGeneration),
  // Mistral Small 3.1's (mistral3, Mistral3ForConditionalGeneration) or LLaVA's (llava:
  // LLaVA-1.5, Pixtral-12B) -- whose language model spin runs: its json_text is then that model's
  // own config (gemma3_text, mistral or llama, as the text model's class reads it), so that
  // checkpoints and exports hold the language model alone.
  std::string hf_weight_prefix;
  // The files hold a multimodal model -- the checkpoints above, or Qwen2-VL's / Qwen2.5-VL's
  // (qwen2_vl, qwen2_5_vl: a Qwen2 language model under the usual names, beside its "visual."
  // tower, no prefix) -- whose other tensors an export writes back as they are.
  bool multimodal = false;

  // Parses and validates; `source` names the input in errors (e.g. the file path).
  static ModelConfig from_json(const std::string& text, const std::string& source);
  // Reads `<model_dir>/config.json`.
  static ModelConfig load(const std::string& model_dir);
  // Reads a config.json at `path`; `hint` follows "cannot open" in the error.
  static ModelConfig from_file(const std::string& path, const std::string& hint = "");

  // The factor on the embedding's output: sqrt(hidden_size) for Gemma -- rounded to bf16 when
  // the activations are (`bf16_activations`), as Hugging Face's Gemma rounds it to the
  // activations' dtype and Gemma's own implementation does --, Granite's embedding_multiplier (a
  // Python float, which torch multiplies in float32 whatever the tensor's dtype), else 1.
  float embedding_scale(bool bf16_activations) const;
  // How layer `layer`'s attention forms scores: scale 1/sqrt(head_dim) (Gemma 2:
  // 1/sqrt(query_pre_attn_scalar), Python's query_pre_attn_scalar**-0.5 in float32; Granite:
  // attention_multiplier), the cap,
  // the window where the layer has one.
  kernels::AttentionScores attention_scores(std::int64_t layer) const;
  // Whether each half's output passes through more than the residual add on its way to the
  // stream (Gemma 2's output norms, Granite's residual multiplier): its gradient then differs
  // from the stream's, and the backward forms it in a scratch of its own.
  bool transforms_branch_outputs() const { return sandwich_norms || residual_multiplier != 1.0f; }
  // Whether layer `layer` rotates its queries and keys (false in SmolLM3's NoPE layers).
  bool rotates(std::int64_t layer) const {
    return rope_layers.empty() || rope_layers.at(static_cast<std::size_t>(layer));
  }
  // Whether layer `layer` attends within the sliding window.
  bool windowed(std::int64_t layer) const {
    return sliding_window.has_value() && windowed_layers.at(static_cast<std::size_t>(layer));
  }
  // `model_dir`/generation_config.json's eos_token_id (one id or a list; none without the file
  // or the key): what transformers' generate() stops at besides config.json's. Errors name the file.
  std::vector<std::int64_t> generation_eos_ids(const std::string& model_dir) const;
  // Throws naming `source` unless every id is in the vocabulary.
  void check_in_vocabulary(const std::vector<std::int64_t>& eos_ids, const std::string& source) const;
  // Longest sequence the model takes: max_position_embeddings (with dynamic scaling, rope_scaling's
  // original_max_position_embeddings where it is smaller: past it transformers would raise the base).
  std::int64_t max_sequence_length() const;
  // LongRoPE's switch: a sequence longer than this (original_max_position_embeddings) runs on the
  // long factors at every position, a shorter one on the short factors -- transformers' choice
  // for a forward of that sequence alone (Phi3LongRoPEScaledRotaryEmbedding; it decides for a
  // whole padded batch by its longest sequence, spin for each sequence). 0 without LongRoPE.
  std::int64_t long_rope_context() const;
  // Parameters of the full (unsharded) model.
  std::int64_t num_parameters() const;
  // The weights of one layer's attention matrices: q, k, v and o_proj, or latent attention's.
  std::int64_t attention_matrix_parameters() const;
  // The [hidden] norm weights a decoder layer holds (Llama's two; Gemma 2's four; OLMo 2's two
  // output norms; a parallel residual's one, GPT-NeoX's two; none for OLMo's LayerNorms), and
  // whether the final norm has one.
  std::int64_t layer_norm_weights() const {
    return final_norm_weight()
               ? (sandwich_norms ? 4 : 2) - (pre_norms ? 0 : 2) - (parallel_residual && !parallel_mlp_norm ? 1 : 0)
               : 0;
  }
  // Whether the layer has a norm before its MLP (Hugging Face's post_attention_layernorm): not
  // with Cohere's or StableLM's parallel residual, which share the input norm.
  bool mlp_input_norm() const { return !parallel_residual || parallel_mlp_norm; }
  bool final_norm_weight() const { return !layer_norm || layer_norm_affine; }
  // The MLP's projections: gate, up and down; a plain MLP's up and down (each expert's, in a
  // mixture of experts).
  std::int64_t mlp_projections() const { return gated_mlp ? 3 : 2; }
  // Whether the MLP is a mixture of experts (Mixtral's) -- in every layer, or all but the first
  // first_dense_layers (moe_layer).
  bool moe() const { return num_experts > 0; }
  bool moe_layer(std::int64_t layer) const { return moe() && layer >= first_dense_layers; }
  std::int64_t moe_layers() const { return moe() ? num_layers - first_dense_layers : 0; }
  // The width of a dense MLP: a dense model's, or a mixture's dense layers' (0 without any).
  std::int64_t dense_mlp_width() const {
    return moe() ? (first_dense_layers > 0 ? dense_intermediate_size : 0) : intermediate_size;
  }
  // The rows of the MLP's buffers for `rows` tokens: those, or a mixture's grouped rows (each token
  // once per chosen expert).
  std::int64_t mlp_rows(std::int64_t rows) const { return moe() ? rows * experts_per_token : rows; }
  // Whether a mixture has a shared expert (Qwen2-MoE's).
  bool shared_expert() const { return shared_expert_intermediate_size > 0; }
  // The outputs joined a row: the chosen experts' and the shared expert's (model/moe.h); 1 for a dense MLP.
  std::int64_t mlp_outputs() const { return moe() ? experts_per_token + (shared_expert() ? 1 : 0) : 1; }
  // The router's logits a row: the experts', then a gated shared expert's gate's.
  std::int64_t router_logits() const { return num_experts + (shared_expert() && shared_expert_gated ? 1 : 0); }
  // Whether every norm with a weight has a [hidden] bias beside it (StableLM's LayerNorms).
  bool norm_biases() const { return layer_norm && layer_norm_affine && layer_norm_bias; }
  // What the logits are multiplied by: Granite's 1 / logits_scaling, Cohere's logit_scale, else 1.
  float logits_factor() const { return logits_scaling != 1.0f ? 1.0f / logits_scaling : logit_scale; }
};

}  // namespace spin::model
