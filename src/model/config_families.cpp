#include "model/config_families.h"

#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/config_json.h"

namespace spin::model {

using config_json::flag;
using config_json::non_negative_int;
using config_json::positive_float;
using config_json::positive_int;
using nlohmann::json;

namespace {

// The GELU of GPT-NeoX's and Phi's plain MLPs, by hidden_act (`fallback` where absent): "gelu" the exact
// one, "gelu_new" / "gelu_fast" / "gelu_pytorch_tanh" its tanh form. The key is consumed here (the
// Llama families' check of it does not apply), as are attention_bias and mlp_bias: these families'
// biases are set by their parsers.
kernels::Activation parse_gelu(json& j, const char* fallback, const std::string& type, const std::string& source) {
  const std::string act = j.value("hidden_act", std::string(fallback));
  require(act == "gelu" || act == "gelu_new" || act == "gelu_fast" || act == "gelu_pytorch_tanh", source,
          ": hidden_act \"", act, "\" is not supported for model_type ", type,
          " (gelu, gelu_new, gelu_fast, gelu_pytorch_tanh are)");
  for (const char* key : {"hidden_act", "attention_bias", "mlp_bias"}) j.erase(key);
  return act == "gelu" ? kernels::Activation::Gelu : kernels::Activation::GeluTanh;
}

// A mixture of experts' sizes (ModelConfig::num_experts from `experts_key`, experts_per_token from
// num_experts_per_tok, the family's defaults where absent) and, where output_router_logits is true,
// its load-balancing loss's router_aux_loss_coef (`aux_coef`: the family's default).
void parse_experts(const json& j, ModelConfig& c, const char* experts_key, std::int64_t experts, std::int64_t per_token,
                   float aux_coef, const std::string& source) {
  c.num_experts = j.contains(experts_key) ? positive_int(j, experts_key, source) : experts;
  c.experts_per_token = j.contains("num_experts_per_tok") ? positive_int(j, "num_experts_per_tok", source) : per_token;
  require(c.experts_per_token <= c.num_experts, source, ": num_experts_per_tok (", c.experts_per_token, ") exceeds ",
          experts_key, " (", c.num_experts, ")");
  if (!flag(j, "output_router_logits", false, source)) return;
  const json coef = j.value("router_aux_loss_coef", json(aux_coef));
  require(coef.is_number() && coef.get<double>() >= 0.0, source,
          ": \"router_aux_loss_coef\" must be a number >= 0, got ", coef.dump());
  c.router_aux_loss_coef = coef.get<float>();
}

}  // namespace

void parse_stablelm(json& j, ModelConfig& c, const std::string& source) {
  c.layer_norm = c.layer_norm_affine = c.layer_norm_bias = true;
  c.qkv_bias = flag(j, "use_qkv_bias", false, source);
  c.parallel_residual = flag(j, "use_parallel_residual", false, source);
  c.qk_head_layernorm = flag(j, "qk_layernorm", false, source);
  c.hf_names = ModelConfig::HfNames::StableLm;
  if (!j.contains("partial_rotary_factor")) j["partial_rotary_factor"] = 0.25;
}

void parse_cohere(const json& j, ModelConfig& c, const std::string& source) {
  c.layer_norm = c.layer_norm_affine = true;
  c.parallel_residual = true;
  c.rope_pairs = kernels::RopePairs::Interleaved;
  c.tie_word_embeddings = true;  // CohereConfig's default
  c.logit_scale = j.contains("logit_scale") ? positive_float(j, "logit_scale", source) : 0.0625f;
  c.qk_head_layernorm = flag(j, "use_qk_norm", false, source);
}

void parse_gpt_neox(json& j, ModelConfig& c, const std::string& source) {
  c.layer_norm = c.layer_norm_affine = c.layer_norm_bias = true;
  c.gated_mlp = false;
  c.qkv_bias = c.o_bias = flag(j, "attention_bias", true, source);
  c.mlp_bias = true;
  c.parallel_residual = c.parallel_mlp_norm = flag(j, "use_parallel_residual", true, source);
  c.hf_names = ModelConfig::HfNames::GptNeox;
  c.activation = parse_gelu(j, "gelu", "gpt_neox", source);
  if (!j.contains("partial_rotary_factor")) j["partial_rotary_factor"] = j.value("rotary_pct", 0.25);
  if (!j.contains("rope_theta")) j["rope_theta"] = j.value("rotary_emb_base", 10000.0);
  if (!j.contains("tie_word_embeddings")) j["tie_word_embeddings"] = false;
  j.erase("num_key_value_heads");  // GPTNeoXConfig has none: every head its own keys and values
}

void parse_phi(json& j, ModelConfig& c, const std::string& source) {
  c.layer_norm = c.layer_norm_affine = c.layer_norm_bias = true;
  c.gated_mlp = false;
  c.qkv_bias = c.o_bias = c.mlp_bias = c.lm_head_bias = true;
  c.parallel_residual = true;
  c.hf_names = ModelConfig::HfNames::Phi;
  c.activation = parse_gelu(j, "gelu_new", "phi", source);
  require(!flag(j, "qk_layernorm", false, source), source,
          ": \"qk_layernorm\": true (per-head LayerNorms of q and k) is not supported for model_type phi");
  if (!j.contains("partial_rotary_factor")) j["partial_rotary_factor"] = 0.5;
  if (!j.contains("tie_word_embeddings")) j["tie_word_embeddings"] = false;
}

void parse_glm(json& j, ModelConfig& c, const std::string& source, bool glm4) {
  c.qkv_bias = flag(j, "attention_bias", true, source);  // q, k and v alone: GlmAttention's o_proj has none
  j.erase("attention_bias");
  c.rope_pairs = kernels::RopePairs::Interleaved;
  c.hf_names = glm4 ? ModelConfig::HfNames::Glm4 : ModelConfig::HfNames::Glm;
  c.sandwich_norms = glm4;
  if (!j.contains("partial_rotary_factor")) j["partial_rotary_factor"] = 0.5;
  if (!j.contains("tie_word_embeddings")) j["tie_word_embeddings"] = false;
  if (!j.contains("eos_token_id")) j["eos_token_id"] = json::array({151329, 151336, 151338});
}

void parse_seed_oss(json& j, ModelConfig& c, const std::string& source) {
  // SeedOssConfig's defaults: biases on q, k and v, none on o_proj or the MLP.
  c.qkv_bias = flag(j, "attention_bias", true, source);
  c.o_bias = flag(j, "attention_out_bias", false, source);
  c.mlp_bias = flag(j, "mlp_bias", false, source);
  for (const char* key : {"attention_bias", "mlp_bias"}) j.erase(key);  // read here, not by the Llama families' rule
  if (!j.contains("head_dim") || j.at("head_dim").is_null()) j["head_dim"] = 128;
  if (!j.contains("rms_norm_eps")) j["rms_norm_eps"] = 1e-6;
}

void parse_exaone4(const json& j, ModelConfig& c, const std::string& source) {
  c.sandwich_norms = true;
  c.pre_norms = false;
  c.qk_norm = true;
  // Exaone4Config's default window differs between transformers versions (4096, none).
  require(j.contains("sliding_window"), source, ": missing required key \"sliding_window\" (model_type exaone4)");
}

void parse_mixtral(json& j, ModelConfig& c, const std::string& source) {
  parse_experts(j, c, "num_local_experts", 8, 2, 0.001f, source);  // MixtralConfig's defaults
  c.norm_topk_prob = true;
  c.hf_names = ModelConfig::HfNames::Mixtral;
  require(!j.contains("router_jitter_noise") || j.at("router_jitter_noise").is_null() ||
              (j.at("router_jitter_noise").is_number() && j.at("router_jitter_noise").get<double>() == 0.0),
          source, ": router_jitter_noise ", j.value("router_jitter_noise", json()).dump(),
          " is not supported (the router's training noise; 0 in the published configs)");
  if (!j.contains("rope_theta")) j["rope_theta"] = 1e6;  // MixtralConfig's default
}

void parse_granitemoe(const json& j, ModelConfig& c, const std::string& source) {
  parse_experts(j, c, "num_local_experts", 8, 2, 0.001f, source);  // GraniteMoeConfig's defaults
  c.norm_topk_prob = true;  // GraniteMoeTopKGating: the softmax of the chosen experts' logits
  c.hf_names = ModelConfig::HfNames::GraniteMoe;
  const std::string position = j.value("position_embedding_type", std::string("rope"));
  require(position == "rope", source, ": position_embedding_type \"", position,
          "\" is not supported for model_type granitemoe (\"rope\" is)");
}

void parse_granite_hybrid(json& j, ModelConfig& c, const std::string& source, bool& nope) {
  require(j.contains("layer_types") && j.at("layer_types").is_array(), source,
          ": model_type granitemoehybrid needs its \"layer_types\" list (\"attention\" or \"mamba\" a layer)");
  for (const json& t : j.at("layer_types")) {
    require(t == "attention", source, ": layer_types holds ", t.dump(),
            ": Granite 4.0's Mamba-2 layers (the H models) are not supported; spin runs the granitemoehybrid models "
            "whose every layer is \"attention\" (Granite 4.0 Micro)");
  }
  require(j.value("num_local_experts", json(0)) == 0, source, ": num_local_experts ",
          j.value("num_local_experts", json()).dump(),
          " is not supported for model_type granitemoehybrid (experts beside the shared MLP); 0 is");
  require(j.value("normalization_function", std::string("rmsnorm")) == "rmsnorm", source,
          ": normalization_function ", j.value("normalization_function", json()).dump(),
          " is not supported (\"rmsnorm\" is)");
  const std::string position = j.value("position_embedding_type", std::string("rope"));
  require(position == "rope" || position == "nope", source, ": position_embedding_type \"", position,
          "\" is not supported for model_type granitemoehybrid (\"rope\" and \"nope\" are)");
  nope = position == "nope";
  require(j.contains("shared_intermediate_size"), source, ": missing required key \"shared_intermediate_size\"");
  j["intermediate_size"] = positive_int(j, "shared_intermediate_size", source);  // the shared MLP's: the MLP
  c.hf_names = ModelConfig::HfNames::GraniteHybrid;
}

void parse_qwen_moe(json& j, ModelConfig& c, const std::string& source, std::int64_t experts, std::int64_t per_token,
                    std::int64_t width, std::int64_t shared) {
  parse_experts(j, c, "num_experts", experts, per_token, 0.001f, source);
  c.norm_topk_prob = flag(j, "norm_topk_prob", false, source);
  require(!j.contains("decoder_sparse_step") || j.at("decoder_sparse_step") == 1, source, ": decoder_sparse_step ",
          j.value("decoder_sparse_step", json()).dump(),
          " is not supported (dense MLP layers between the sparse ones; every layer sparse: 1)");
  require(!j.contains("mlp_only_layers") || j.at("mlp_only_layers").is_null() ||
              (j.at("mlp_only_layers").is_array() && j.at("mlp_only_layers").empty()),
          source, ": mlp_only_layers ", j.value("mlp_only_layers", json()).dump(),
          " is not supported (dense MLP layers among the sparse ones)");
  j["intermediate_size"] = j.contains("moe_intermediate_size") ? j.at("moe_intermediate_size") : json(width);
  if (shared > 0) {
    c.shared_expert_intermediate_size = j.contains("shared_expert_intermediate_size")
                                            ? positive_int(j, "shared_expert_intermediate_size", source)
                                            : shared;
  }
}

void parse_deepseek_moe(json& j, ModelConfig& c, const std::string& type, const std::string& source,
                        const DeepseekMoeDefaults& d) {
  const std::pair<const char*, std::int64_t> sizes[] = {
      {"n_routed_experts", d.experts}, {"num_experts_per_tok", d.per_token}, {"n_shared_experts", d.shared}};
  for (const auto& [key, fallback] : sizes) {  // 0: no default
    require(fallback > 0 || (j.contains(key) && !j.at(key).is_null()), source, ": missing required key \"", key,
            "\" (model_type ", type, ")");
  }
  parse_experts(j, c, "n_routed_experts", d.experts, d.per_token, 0.0f, source);
  require(!flag(j, "output_router_logits", false, source), source,
          ": output_router_logits true is not supported for model_type ", type,
          d.softmax ? " (DeepSeek-V2's sequence-wise auxiliary loss is not spin's)"
                    : " (a load-balancing loss over its sigmoid router; the published models balance with the "
                      "correction bias instead)");
  // The config's router (DeepseekV3Config's keys, where a config carries them): DeepSeek-V3's sigmoid one
  // (noaux_tc), or DeepSeek-V2's softmax one (greedy, or group_limited_greedy: within groups by their best).
  const std::string scoring = d.softmax ? "softmax" : "sigmoid";
  require(j.value("scoring_func", scoring) == scoring, source, ": scoring_func ",
          j.value("scoring_func", json()).dump(), " is not supported for model_type ", type, " (\"", scoring, "\" is)");
  const std::string method = j.value("topk_method", std::string(d.softmax ? "greedy" : "noaux_tc"));
  const bool grouped = d.softmax ? method == "group_limited_greedy" : method == "noaux_tc";
  require(grouped || (d.softmax && method == "greedy"), source, ": topk_method ", j.value("topk_method", json()).dump(),
          " is not supported for model_type ", type,
          d.softmax ? " (\"greedy\" and \"group_limited_greedy\" are)" : " (\"noaux_tc\" is)");
  c.norm_topk_prob = flag(j, "norm_topk_prob", d.norm_topk_prob, source);
  // (DeepSeek-V2's own code renormalises the chosen weights where norm_topk_prob, transformers' does not:
  // no published model sets it.)
  require(!d.softmax || !c.norm_topk_prob, source, ": norm_topk_prob true is not supported for model_type ", type);
  c.router_sigmoid = !d.softmax;
  c.routed_scaling_factor =
      j.contains("routed_scaling_factor") ? positive_float(j, "routed_scaling_factor", source) : 1.0f;
  const auto groups = [&](const char* key) {
    return grouped && j.contains(key) && !j.at(key).is_null() ? positive_int(j, key, source) : 1;
  };
  c.expert_groups = groups("n_group");
  c.expert_groups_chosen = groups("topk_group");
  require(j.value("moe_layer_freq", json(1)) == json(1), source, ": moe_layer_freq ",
          j.value("moe_layer_freq", json()).dump(), " is not supported (every layer after the dense ones sparse: 1)");
  const std::int64_t group = c.num_experts / c.expert_groups;
  require(c.num_experts % c.expert_groups == 0 && group >= 2, source, ": n_group ", c.expert_groups,
          " does not divide n_routed_experts ", c.num_experts, " into groups of two experts or more");
  require(c.expert_groups_chosen <= c.expert_groups && c.experts_per_token <= c.expert_groups_chosen * group, source,
          ": topk_group ", c.expert_groups_chosen, " of n_group ", c.expert_groups, " groups of ", group,
          " experts cannot hold num_experts_per_tok ", c.experts_per_token);
  const std::int64_t width =
      j.contains("moe_intermediate_size") ? positive_int(j, "moe_intermediate_size", source) : d.width;
  const std::int64_t shared = j.contains("n_shared_experts") ? positive_int(j, "n_shared_experts", source) : d.shared;
  c.shared_expert_intermediate_size = shared * width;  // n_shared_experts experts as one MLP
  c.shared_expert_gated = false;
  c.dense_intermediate_size =
      j.contains("intermediate_size") ? positive_int(j, "intermediate_size", source) : d.dense_width;
  j["intermediate_size"] = width;  // ModelConfig's: the experts'
  c.first_dense_layers = non_negative_int(j, "first_k_dense_replace", d.first_dense, source);
  c.hf_names = ModelConfig::HfNames::DeepseekV3;
}

void parse_glm4_moe(json& j, ModelConfig& c, const std::string& source) {
  c.qkv_bias = flag(j, "attention_bias", false, source);  // q, k and v alone, as GLM's
  j.erase("attention_bias");
  c.qk_norm = flag(j, "use_qk_norm", false, source);
  // Glm4MoeConfig's defaults (GLM-4.5-Air's shapes).
  parse_deepseek_moe(j, c, "glm4_moe", source, {128, 8, 1, 1, true, 1408, 10944, false});
  c.mtp_layers = non_negative_int(j, "num_nextn_predict_layers", 0, source);
  if (!j.contains("head_dim") || j.at("head_dim").is_null()) j["head_dim"] = 128;
  if (!j.contains("partial_rotary_factor")) j["partial_rotary_factor"] = 0.5;
  if (!j.contains("rms_norm_eps")) j["rms_norm_eps"] = 1e-5;
  if (!j.contains("tie_word_embeddings")) j["tie_word_embeddings"] = false;
  if (!j.contains("eos_token_id")) j["eos_token_id"] = json::array({151329, 151336, 151338});
}

void parse_dots1(json& j, ModelConfig& c, const std::string& source) {
  c.qk_norm = true;  // Qwen3Attention's (its biases: attention_bias, Llama's rule)
  parse_deepseek_moe(j, c, "dots1", source, {0, 0, 0, 0, false, 1408, 10944, false});  // Dots1Config's: sizes required
  if (!j.contains("rms_norm_eps")) j["rms_norm_eps"] = 1e-6;
  if (!j.contains("tie_word_embeddings")) j["tie_word_embeddings"] = false;
}

namespace {

// DeepSeek-V2's and V3's: their config class's defaults where keys are absent, the latent attention's keys,
// the mixture (parse_deepseek_moe with `moe`), the multi-token-prediction layers.
void parse_deepseek(json& j, ModelConfig& c, const std::string& type, const std::string& source,
                    const std::vector<std::pair<const char*, json>>& defaults, const DeepseekMoeDefaults& moe,
                    bool interleave_default) {
  for (const auto& [key, value] : defaults) {
    if (!j.contains(key)) j[key] = value;
  }
  require(!flag(j, "attention_bias", false, source), source, ": attention_bias true is not supported for model_type ",
          type, " (biases on q_a_proj, kv_a_proj_with_mqa and o_proj)");
  j.erase("attention_bias");
  require(!flag(j, "mlp_bias", false, source), source, ": mlp_bias true is not supported for model_type ", type);
  j.erase("mlp_bias");
  parse_deepseek_moe(j, c, type, source, moe);
  c.mtp_layers = non_negative_int(j, "num_nextn_predict_layers", 0, source);
  const auto size = [&](const char* key, std::int64_t fallback) {
    return j.contains(key) ? positive_int(j, key, source) : fallback;
  };
  c.q_lora_rank = j.contains("q_lora_rank") && j.at("q_lora_rank").is_null() ? 0 : size("q_lora_rank", 1536);
  c.kv_lora_rank = size("kv_lora_rank", 512);
  c.qk_nope_head_dim = size("qk_nope_head_dim", 128);
  c.v_head_dim = size("v_head_dim", 128);
  const std::int64_t rope = size("qk_rope_head_dim", 64);
  // (Their config classes write head_dim = qk_rope_head_dim, the rotary embedding's width: spin's head_dim is
  // the query's and key's, from_json's rotary_dim the rotated part.)
  j["head_dim"] = c.qk_nope_head_dim + rope;
  j.erase("partial_rotary_factor");
  require(c.v_head_dim <= c.qk_nope_head_dim + rope, source, ": v_head_dim ", c.v_head_dim,
          " wider than qk_nope_head_dim + qk_rope_head_dim ", c.qk_nope_head_dim + rope,
          " is not supported (the values are padded to the keys' width)");
  const std::int64_t heads = positive_int(j, "num_attention_heads", source);
  require(!j.contains("num_key_value_heads") || j.at("num_key_value_heads").is_null() ||
              positive_int(j, "num_key_value_heads", source) == heads,
          source, ": num_key_value_heads other than num_attention_heads is not supported for model_type ", type);
  j["num_key_value_heads"] = heads;
  if (flag(j, "rope_interleave", interleave_default, source)) c.rope_pairs = kernels::RopePairs::Interleaved;
  // Their attention's scale: head_dim^-1/2 times get_mscale(factor, mscale_all_dim)^2 under any rope scaling
  // that gives a non-zero mscale_all_dim.
  if (j.contains("rope_scaling") && j.at("rope_scaling").is_object()) {
    const json& r = j.at("rope_scaling");
    const double all =
        r.contains("mscale_all_dim") && r.at("mscale_all_dim").is_number() ? r.at("mscale_all_dim").get<double>() : 0.0;
    const double factor = r.contains("factor") && r.at("factor").is_number() ? r.at("factor").get<double>() : 1.0;
    if (all != 0.0 && factor > 1.0) c.attention_mscale = 0.1 * all * std::log(factor) + 1.0;
  }
}

}  // namespace

void parse_deepseek_v3(json& j, ModelConfig& c, const std::string& source, const std::string& type) {
  parse_deepseek(j, c, type, source,
                 {{"vocab_size", 129280},
                  {"hidden_size", 7168},
                  {"num_attention_heads", 128},
                  {"num_hidden_layers", 61},
                  {"max_position_embeddings", 4096},
                  {"rms_norm_eps", 1e-6},
                  {"eos_token_id", 1},
                  {"bos_token_id", 0},
                  {"tie_word_embeddings", false}},
                 {256, 8, 1, 3, true, 2048, 18432, false}, true);  // DeepseekV3Config's
}

void parse_deepseek_v2(json& j, ModelConfig& c, const std::string& source) {
  // DeepseekV2Config's (LlamaConfig's sizes; num_experts_per_tok none, which spin requires); its RoPE the
  // complex product of neighbouring pairs, interleaved always.
  j.erase("rope_interleave");
  parse_deepseek(j, c, "deepseek_v2", source,
                 {{"vocab_size", 32000},
                  {"hidden_size", 4096},
                  {"num_attention_heads", 32},
                  {"num_hidden_layers", 32},
                  {"max_position_embeddings", 2048},
                  {"rms_norm_eps", 1e-6},
                  {"eos_token_id", 2},
                  {"bos_token_id", 1},
                  {"tie_word_embeddings", false}},
                 {64, 0, 2, 0, false, 1407, 11008, true}, true);
}

void parse_olmoe(json& j, ModelConfig& c, const std::string& source) {
  c.qk_norm_all_heads = true;
  parse_experts(j, c, "num_experts", 64, 8, 0.01f, source);  // OlmoeConfig's defaults
  c.norm_topk_prob = flag(j, "norm_topk_prob", false, source);
  require(!j.contains("clip_qkv") || j.at("clip_qkv").is_null(), source, ": clip_qkv ",
          j.value("clip_qkv", json()).dump(),
          " is not supported for model_type olmoe (its clamp after the q and k norms)");
}

}  // namespace spin::model
