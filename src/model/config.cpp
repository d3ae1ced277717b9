#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/json_file.h"
#include "model/config_families.h"
#include "model/config_json.h"
#include "model/config_multimodal.h"

namespace spin::model {

namespace {
using config_json::flag;
using config_json::positive_float;
using config_json::positive_int;
using nlohmann::json;

// The model_types spin runs (besides the multimodal checkpoints', config_multimodal.h).
constexpr const char* kModelTypes[] = {
    "llama",    "mistral", "qwen2",   "qwen3",     "gemma",    "gemma2",    "gemma3_text", "phi3",
    "smollm3",  "granite", "olmo",    "olmo2",     "olmo3",    "stablelm",  "cohere",      "cohere2",
    "gpt_neox", "phi",     "mixtral", "qwen3_moe", "olmoe",    "qwen2_moe", "granitemoe",  "granitemoehybrid",
    "glm",      "glm4",    "exaone4", "seed_oss",  "glm4_moe", "dots1",     "deepseek_v2", "deepseek_v3",
    "kimi_k2"};

std::vector<std::int64_t> token_ids(const json& v, const char* key, const std::string& source) {
  std::vector<std::int64_t> ids;
  if (v.is_null()) return ids;
  const json list = v.is_array() ? v : json::array({v});
  for (const json& id : list) {
    require(id.is_number_integer() && id.get<std::int64_t>() >= 0, source, ": \"", key,
            "\" must be a token id or a list of them, got ", v.dump());
    ids.push_back(id.get<std::int64_t>());
  }
  return ids;
}
// rope_scaling `r` of type yarn, as transformers' _compute_yarn_parameters reads it: the original
// context is r's original_max_position_embeddings, else config.json `j`'s max_position_embeddings;
// attention_factor, unless given, is get_mscale(factor, mscale) / get_mscale(factor,
// mscale_all_dim) where both are given and non-zero, else get_mscale(factor) -- get_mscale(s, m)
// being 0.1 m ln s + 1 (1 for s <= 1) --, in double precision.
RopeScaling parse_yarn(const json& j, const json& r, const std::string& source) {
  RopeScaling s;
  s.type = RopeScaling::Type::Yarn;
  require(r.contains("factor"), source, ": rope_scaling lacks \"factor\"");
  s.factor = positive_float(r, "factor", source);
  const double factor = r.at("factor").get<double>();  // as Python holds it, for the attention factor
  const bool given = r.contains("original_max_position_embeddings") && !r.at("original_max_position_embeddings").is_null();
  s.original_max_position_embeddings = positive_int(given ? r : j, given ? "original_max_position_embeddings"
                                                                         : "max_position_embeddings", source);
  const auto number = [&](const char* key) -> std::optional<double> {  // absent, null (or 0, as Python's `or`)
    if (!r.contains(key) || r.at(key).is_null()) return std::nullopt;
    require(r.at(key).is_number() && r.at(key).get<double>() >= 0, source, ": rope_scaling's \"", key,
            "\" must be a non-negative number, got ", r.at(key).dump());
    const double v = r.at(key).get<double>();
    return v == 0 ? std::nullopt : std::optional<double>(v);
  };
  s.beta_fast = number("beta_fast").value_or(32.0);
  s.beta_slow = number("beta_slow").value_or(1.0);
  if (r.contains("truncate") && !r.at("truncate").is_null()) {
    require(r.at("truncate").is_boolean(), source, ": rope_scaling's \"truncate\" must be true or false, got ",
            r.at("truncate").dump());
    s.truncate = r.at("truncate").get<bool>();
  }
  const auto get_mscale = [&](double m) { return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; };
  if (r.contains("attention_factor") && !r.at("attention_factor").is_null()) {
    s.attention_factor = positive_float(r, "attention_factor", source);
  } else if (const auto m = number("mscale"), all = number("mscale_all_dim"); m && all) {
    s.attention_factor = static_cast<float>(get_mscale(*m) / get_mscale(*all));
  } else {
    s.attention_factor = static_cast<float>(get_mscale(1.0));
  }
  return s;
}

// config.json `j`'s rope_scaling `r`; `phi3`: Phi3Config reads the types su and yarn as longrope.
RopeScaling parse_rope_scaling(const json& j, const json& r, bool phi3, const std::string& source) {
  require(r.is_object(), source, ": rope_scaling must be an object, got ", r.dump());
  const std::string type = r.value("rope_type", r.value("type", ""));
  RopeScaling s;
  if (type == "longrope" || (phi3 && (type == "su" || type == "yarn"))) {
    // As transformers computes it (_compute_longrope_parameters, Phi3LongRoPEScaledRotaryEmbedding):
    // the factor is max_position_embeddings over the config's original_max_position_embeddings
    // where it has one (Phi-3), else rope_scaling's; attention_factor, unless given, is
    // sqrt(1 + ln factor / ln original) (1 for a factor of at most 1), in double precision.
    s.type = RopeScaling::Type::LongRope;
    const auto factors = [&](const char* key) {
      require(r.contains(key) && r.at(key).is_array(), source, ": rope_scaling of type longrope lacks the list \"",
              key, "\"");
      std::vector<float> f;
      for (const json& x : r.at(key)) {
        require(x.is_number() && x.get<double>() > 0, source, ": rope_scaling's \"", key,
                "\" must hold positive numbers, got ", x.dump());
        f.push_back(x.get<float>());
      }
      return f;
    };
    s.short_factor = factors("short_factor");
    s.long_factor = factors("long_factor");
    const bool top_level = j.contains("original_max_position_embeddings");
    require(top_level || r.contains("original_max_position_embeddings"), source,
            ": rope_scaling of type longrope needs \"original_max_position_embeddings\"");
    s.original_max_position_embeddings = positive_int(top_level ? j : r, "original_max_position_embeddings", source);
    double factor = 1.0;
    if (top_level) {
      factor = static_cast<double>(positive_int(j, "max_position_embeddings", source)) /
               static_cast<double>(s.original_max_position_embeddings);
    } else if (r.contains("factor") && !r.at("factor").is_null()) {
      factor = positive_float(r, "factor", source);
    }
    s.factor = static_cast<float>(factor);
    if (r.contains("attention_factor") && !r.at("attention_factor").is_null()) {
      s.attention_factor = positive_float(r, "attention_factor", source);
    } else if (factor > 1.0) {
      s.attention_factor = static_cast<float>(
          std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(s.original_max_position_embeddings))));
    }
    return s;
  }
  if (type == "yarn") return parse_yarn(j, r, source);
  if (type == "dynamic") {
    // Dynamic NTK (_compute_dynamic_ntk_parameters): base theta ((factor len / max) - (factor - 1))^(d / (d - 2))
    // for a sequence of len > max positions, theta itself up to max -- the only lengths spin runs.
    s.type = RopeScaling::Type::Dynamic;
    const bool given =
        r.contains("original_max_position_embeddings") && !r.at("original_max_position_embeddings").is_null();
    s.original_max_position_embeddings =
        positive_int(given ? r : j, given ? "original_max_position_embeddings" : "max_position_embeddings", source);
  } else if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::Llama3;
    for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      require(r.contains(key), source, ": rope_scaling of type llama3 lacks \"", key, "\"");
    }
    s.low_freq_factor = positive_float(r, "low_freq_factor", source);
    s.high_freq_factor = positive_float(r, "high_freq_factor", source);
    s.original_max_position_embeddings = positive_int(r, "original_max_position_embeddings", source);
    require(s.high_freq_factor > s.low_freq_factor, source, ": rope_scaling's high_freq_factor (", s.high_freq_factor,
            ") must exceed its low_freq_factor (", s.low_freq_factor, ")");
  } else {
    fail(source, ": rope_scaling ", r.dump(),
         " is not supported (rope types linear, llama3, yarn, longrope and dynamic are)");
  }
  require(r.contains("factor"), source, ": rope_scaling lacks \"factor\"");
  s.factor = positive_float(r, "factor", source);
  return s;
}

// Granite's four scalars, GraniteConfig's defaults (1.0 each, attention_multiplier too) when absent.
void parse_granite_multipliers(const json& j, ModelConfig& c, const std::string& source) {
  const auto scalar = [&](const char* key) { return j.contains(key) ? positive_float(j, key, source) : 1.0f; };
  c.embedding_multiplier = scalar("embedding_multiplier");
  c.attention_multiplier = scalar("attention_multiplier");
  c.residual_multiplier = scalar("residual_multiplier");
  c.logits_scaling = scalar("logits_scaling");
}

// ModelConfig::rope_layers of a SmolLM3 (called once num_layers is known), as SmolLM3Config
// fills it: no_rope_layers (1: the layer uses RoPE), else every layer l with (l + 1) %
// no_rope_layer_interval != 0.
void parse_rope_layers(const json& j, ModelConfig& c, const std::string& source) {
  const auto layers = static_cast<std::size_t>(c.num_layers);
  if (j.contains("no_rope_layers") && !j.at("no_rope_layers").is_null()) {
    const json& v = j.at("no_rope_layers");
    require(v.is_array() && v.size() == layers, source, ": \"no_rope_layers\" must list a 0 or 1 for each of the ",
            layers, " layers, got ", v.dump());
    for (const json& x : v) {
      require(x.is_number_integer() && (x == 0 || x == 1), source, ": \"no_rope_layers\" holds ", x.dump(),
              " (1: the layer uses RoPE, 0: it does not)");
      c.rope_layers.push_back(x == 1);
    }
    return;
  }
  const std::int64_t interval = j.contains("no_rope_layer_interval")
                                    ? positive_int(j, "no_rope_layer_interval", source)
                                    : 4;  // SmolLM3Config's default
  for (std::size_t l = 0; l < layers; ++l) c.rope_layers.push_back((static_cast<std::int64_t>(l) + 1) % interval != 0);
}

// ModelConfig::sliding_window and windowed_layers (called once num_layers is known); `type` is
// the model_type.
void parse_sliding_window(const json& j, ModelConfig& c, const std::string& type, const std::string& source) {
  // No window in these families' attention (transformers ignores the key).
  if (type == "olmo2" || type == "olmoe" || type == "glm4_moe") return;
  if (type == "smollm3") {  // a window only in NoPE layers, with use_sliding_window (off in the published models)
    require(!(j.contains("use_sliding_window") && j.at("use_sliding_window") == true), source,
            ": SmolLM3's use_sliding_window is not supported (spin runs the published models, which switch it off)");
    return;
  }
  const bool qwen = type == "qwen2" || type == "qwen3" || type == "qwen3_moe" || type == "qwen2_moe",
             gemma2 = type == "gemma2", gemma3 = type == "gemma3_text";
  const bool olmo3 = type == "olmo3", cohere2 = type == "cohere2", exaone4 = type == "exaone4", dots1 = type == "dots1";
  // Qwen2 and Qwen3 keep a sliding_window that applies only with use_sliding_window; Gemma2Config's,
  // Gemma3TextConfig's, Olmo3Config's, Cohere2Config's and Dots1Config's default is 4096.
  const bool applies = !qwen || (j.contains("use_sliding_window") && j.at("use_sliding_window") == true);
  if (!applies) return;
  if (j.contains("sliding_window") && !j.at("sliding_window").is_null()) {
    c.sliding_window = positive_int(j, "sliding_window", source);
  } else if ((gemma2 || gemma3 || olmo3 || cohere2 || dots1) && !j.contains("sliding_window")) {
    c.sliding_window = 4096;
  }
  require(!cohere2 || c.sliding_window, source,
          ": model_type cohere2 needs a sliding_window (its global layers are the unwindowed ones)");
  if (!c.sliding_window) return;
  const auto layers = static_cast<std::size_t>(c.num_layers);
  // EXAONE 4's sliding_window_pattern may be a string of L and G whose reading differs between
  // transformers versions: only its layer_types, or an integer pattern, are read.
  require(!exaone4 || j.contains("layer_types") || !j.contains("sliding_window_pattern") ||
              j.at("sliding_window_pattern").is_number_integer(),
          source, ": sliding_window_pattern ", j.value("sliding_window_pattern", json()).dump(),
          " without \"layer_types\" is not supported for model_type exaone4 (give layer_types, as the published "
          "configs do, or an integer pattern)");
  if (j.contains("layer_types") && !j.at("layer_types").is_null()) {  // newer transformers write it out
    const json& types = j.at("layer_types");
    require(types.is_array() && types.size() == layers, source, ": \"layer_types\" must list the ", layers,
            " layers' attention types, got ", types.dump());
    for (const json& t : types) {
      require(t == "sliding_attention" || t == "full_attention", source, ": layer type ", t.dump(),
              " is not supported (\"sliding_attention\" and \"full_attention\" are)");
      c.windowed_layers.push_back(t == "sliding_attention");
    }
    return;
  }
  // Otherwise each family's rule, as transformers applies it: Gemma 2's even layers, Gemma 3's all
  // but every sliding_window_pattern-th (Gemma3TextConfig's default 6: layers 5, 11, ... are
  // global), OLMo 3's all but every fourth (3, 7, ...), Qwen's layers from max_window_layers on
  // (Qwen2Config's default 28; dots.llm1's likewise, without use_sliding_window), Mistral's every layer.
  // Gemma 3's all but every sliding_window_pattern-th (6), Cohere 2's likewise (4: layers 3, 7, ...).
  // EXAONE 4's likewise (Exaone4Config's 4).
  const std::int64_t pattern = (gemma3 || cohere2 || exaone4) && j.contains("sliding_window_pattern")
                                   ? positive_int(j, "sliding_window_pattern", source)
                               : cohere2 || exaone4 ? 4
                                                    : 6;
  std::int64_t first_qwen = dots1 ? 62 : 28;  // Dots1Config's default, Qwen2Config's
  if ((qwen || dots1) && j.contains("max_window_layers")) {
    const json& v = j.at("max_window_layers");
    require(v.is_number_integer() && v.get<std::int64_t>() >= 0, source,
            ": \"max_window_layers\" must be a non-negative integer, got ", v.dump());
    first_qwen = v.get<std::int64_t>();
  }
  for (std::size_t l = 0; l < layers; ++l) {
    const auto i = static_cast<std::int64_t>(l);
    c.windowed_layers.push_back(gemma2                         ? i % 2 == 0
                                : gemma3 || cohere2 || exaone4 ? (i + 1) % pattern != 0
                                : olmo3                        ? (i + 1) % 4 != 0
                                : qwen || dots1                ? i >= first_qwen
                                                               : true);
  }
}

// quantization_config: block-scaled FP8 (quant_method "fp8", fmt "e4m3", weight_block_size [rows, cols]:
// DeepSeek-V3's, Kimi K2's, Qwen3's FP8 releases), read dequantized; any other quantization refused by name.
std::array<std::int64_t, 2> fp8_block_of(const json& q, const std::string& source) {
  require(q.is_object(), source, ": quantization_config must be an object, got ", q.dump());
  require(q.value("quant_method", json()) == json("fp8"), source, ": quantization_config's quant_method ",
          q.value("quant_method", json()).dump(),
          " is not supported (spin reads bf16, f16 and f32 weights, and block-scaled FP8 -- quant_method \"fp8\" "
          "with a weight_block_size -- dequantized to float32)");
  require(q.value("fmt", json("e4m3")) == json("e4m3"), source, ": quantization_config's fmt ",
          q.value("fmt", json()).dump(), " is not supported (\"e4m3\" is)");
  const json block = q.value("weight_block_size", json());
  require(block.is_array() && block.size() == 2 && block[0].is_number_unsigned() && block[1].is_number_unsigned() &&
              block[0].get<std::int64_t>() > 0 && block[1].get<std::int64_t>() > 0,
          source, ": quantization_config's weight_block_size ", block.dump(),
          " is not [rows, cols] (FP8 with a scale per tensor or per channel is not supported)");
  return {block[0].get<std::int64_t>(), block[1].get<std::int64_t>()};
}

}  // namespace

ModelConfig ModelConfig::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
  require(j.is_object(), source, ": expected a JSON object");

  // Qwen2 is Llama with biases on q, k and v, Qwen3 with an RMSNorm of each query and key head
  // (both with their own sliding-window switch); Gemma (1) with GeGLU, norms scaling by 1 + w,
  // scaled embeddings and tied ones by default; Gemma 2 Gemma with sandwich norms, its own score
  // scale and soft caps; Gemma 3 (text) Gemma 2 with Qwen3's head norms (scaling by 1 + w), no
  // caps by default, five windowed layers to a global one and their own RoPE base.
  std::string type = "llama";
  if (j.contains("model_type")) {
    type = j.at("model_type").is_string() ? j.at("model_type").get<std::string>() : j.at("model_type").dump();
    if (const auto language = multimodal_text_config(j, type, source)) {  // its language model's
      ModelConfig c = from_json(language->config_json, source + (language->weight_prefix.empty()
                                                                     ? " (its language model)"
                                                                     : " (its text_config)"));
      const std::int64_t pairs = language->rotated_pairs;
      require(pairs == 0 || 2 * pairs == c.head_dim, source, ": mrope_section covers ", 2 * pairs,
              " dimensions of head_dim ", c.head_dim);
      c.hf_weight_prefix = language->weight_prefix;
      c.multimodal = true;
      return c;
    }
    std::string names;
    for (const char* t : kModelTypes) names += (names.empty() ? "" : ", ") + std::string(t);
    require(std::find(std::begin(kModelTypes), std::end(kModelTypes), type) != std::end(kModelTypes), source,
            ": model_type \"", type, "\" is not supported (spin runs the Llama family: ", names,
            "; and the language model of gemma3, mistral3, llava, qwen2_vl and qwen2_5_vl)");
  }
  const bool qwen2 = type == "qwen2" || type == "qwen2_moe", qwen3 = type == "qwen3" || type == "qwen3_moe",
             gemma3 = type == "gemma3_text";
  const bool gemma2 = type == "gemma2" || gemma3;  // Gemma 2's parts
  const bool gemma = type == "gemma" || gemma2;    // Gemma's
  const bool olmo = type == "olmo2" || type == "olmo3";
  ModelConfig c;
  if (type == "stablelm") parse_stablelm(j, c, source);
  if (type == "cohere" || type == "cohere2") parse_cohere(j, c, source);
  if (type == "gpt_neox") parse_gpt_neox(j, c, source);
  if (type == "phi") parse_phi(j, c, source);
  if (type == "glm" || type == "glm4") parse_glm(j, c, source, type == "glm4");
  if (type == "exaone4") parse_exaone4(j, c, source);
  if (type == "seed_oss") parse_seed_oss(j, c, source);
  if (type == "mixtral") parse_mixtral(j, c, source);
  if (type == "granitemoe") parse_granitemoe(j, c, source);
  bool nope = false;  // granitemoehybrid's position_embedding_type "nope": no layer rotates
  if (type == "granitemoehybrid") parse_granite_hybrid(j, c, source, nope);
  // Qwen3MoeConfig's and Qwen2MoeConfig's defaults (Qwen3-30B-A3B's, Qwen1.5-MoE-A2.7B's shapes).
  if (type == "qwen3_moe") parse_qwen_moe(j, c, source, 128, 8, 768, 0);
  if (type == "qwen2_moe") parse_qwen_moe(j, c, source, 60, 4, 1408, 5632);
  if (type == "olmoe") parse_olmoe(j, c, source);
  if (type == "glm4_moe") parse_glm4_moe(j, c, source);
  if (type == "dots1") parse_dots1(j, c, source);
  if (type == "deepseek_v3" || type == "kimi_k2") parse_deepseek_v3(j, c, source, type);
  if (type == "deepseek_v2") parse_deepseek_v2(j, c, source);
  if (type == "olmo") {  // Llama's parts but the norms: LayerNorm without parameters, eps fixed
    c.layer_norm = true;
    if (j.contains("clip_qkv") && !j.at("clip_qkv").is_null()) c.clip_qkv = positive_float(j, "clip_qkv", source);
  }
  if (olmo) {  // Llama's parts but the norms: output norms alone, q and k normed across their heads
    c.sandwich_norms = true;
    c.pre_norms = false;
    c.qk_norm_all_heads = true;
    // Olmo3Config's default rope_theta differs between transformers versions (10000, 500000).
    require(type != "olmo3" || j.contains("rope_theta"), source, ": missing required key \"rope_theta\"");
  }
  if (gemma2) {
    c.sandwich_norms = true;
    // Gemma2Config's and Gemma3TextConfig's defaults when absent (query_pre_attn_scalar 256; caps
    // 50 and 30 for Gemma 2, none for Gemma 3); null switches a cap off.
    c.query_pre_attn_scalar = j.contains("query_pre_attn_scalar") ? positive_float(j, "query_pre_attn_scalar", source)
                                                                  : 256.0f;
    const auto cap = [&](const char* key, float fallback) {
      if (!j.contains(key)) return fallback;
      return j.at(key).is_null() ? 0.0f : positive_float(j, key, source);
    };
    c.attn_logit_softcapping = cap("attn_logit_softcapping", gemma3 ? 0.0f : 50.0f);
    c.final_logit_softcapping = cap("final_logit_softcapping", gemma3 ? 0.0f : 30.0f);
  }
  if (gemma3) {
    c.rope_theta = 1e6f;  // Gemma3TextConfig's default, for the global layers
    c.rope_local_theta = j.contains("rope_local_base_freq") ? positive_float(j, "rope_local_base_freq", source)
                                                            : 10000.0f;
  }
  if (gemma) {
    // As transformers' GemmaMLP: hidden_activation decides (hidden_act is the legacy key and is
    // ignored), and an absent or null one means the tanh approximation.
    const bool given = j.contains("hidden_activation") && !j.at("hidden_activation").is_null();
    require(!given || j.at("hidden_activation") == "gelu_pytorch_tanh", source, ": hidden_activation ",
            given ? j.at("hidden_activation").dump() : "", " is not supported (Gemma's \"gelu_pytorch_tanh\" is)");
    c.activation = kernels::Activation::GeluTanh;
    c.norm_weight_offset = 1.0f;
    c.scale_embeddings = true;
    c.tie_word_embeddings = true;  // GemmaConfig's default
  } else if (j.contains("hidden_act")) {
    require(j.at("hidden_act") == "silu", source, ": hidden_act ", j.at("hidden_act").dump(),
            " is not supported (only \"silu\"; gelu_pytorch_tanh with model_type gemma)");
  }
  // attention_bias: biases on q, k, v and o_proj, as LlamaAttention and the families built on it
  // add them (GPT-NeoX's o_bias: replicated, added once after the reduction); Qwen2's own q, k, v
  // biases take no key. mlp_bias: biases on gate_proj, up_proj and down_proj, as LlamaMLP adds them --
  // the key of Llama's, Granite's and SmolLM3's configs (the other families' MLPs have no biases).
  if (!qwen2 && flag(j, "attention_bias", false, source)) c.qkv_bias = c.o_bias = true;
  const bool mlp_bias_key = type == "llama" || type == "granite" || type == "smollm3";
  if (mlp_bias_key) c.mlp_bias = flag(j, "mlp_bias", false, source);
  for (const std::string key : {"attention_bias", "mlp_bias"}) {
    if (key == "attention_bias" && !qwen2) continue;  // read above
    if (key == "mlp_bias" && mlp_bias_key) continue;
    require(!j.contains(key) || j.at(key) == false, source, ": \"", key,
            "\": true is not supported for model_type ", type, " (of biases spin runs Qwen2's on q, k and v, "
            "attention_bias's on q, k, v and o_proj, and Llama's, Granite's and SmolLM3's mlp_bias)");
  }
  const bool granite = type == "granite" || type == "granitemoe" || type == "granitemoehybrid";
  if (granite) parse_granite_multipliers(j, c, source);
  c.qkv_bias = qwen2 || c.qkv_bias;
  c.qk_norm = qwen3 || gemma3 || c.qk_norm;  // (EXAONE 4 sets it in its parser)
  // Phi-3 is Llama with fused projections in its files (and, in the 128k models, LongRoPE).
  c.fused_projections = type == "phi3";
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
    c.rope_scaling = parse_rope_scaling(j, j.at("rope_scaling"), type == "phi3", source);
  }
  c.vocab_size = positive_int(j, "vocab_size", source);
  c.hidden_size = positive_int(j, "hidden_size", source);
  c.intermediate_size = positive_int(j, "intermediate_size", source);
  c.num_layers = positive_int(j, "num_hidden_layers", source);
  c.num_heads = positive_int(j, "num_attention_heads", source);
  c.max_position_embeddings = positive_int(j, "max_position_embeddings", source);
  if (c.layer_norm) {
    // layer_norm_eps for LayerNorms with parameters (StableLmConfig's and CohereConfig's default
    // 1e-5); OlmoLayerNorm's fixed 1e-5, which its config does not carry.
    const bool given = c.layer_norm_affine && j.contains("layer_norm_eps");
    c.rms_norm_eps = given ? positive_float(j, "layer_norm_eps", source) : 1e-5f;
  } else {
    require(j.contains("rms_norm_eps"), source, ": missing required key \"rms_norm_eps\"");
    c.rms_norm_eps = positive_float(j, "rms_norm_eps", source);
  }
  c.num_kv_heads = j.contains("num_key_value_heads") && !j.at("num_key_value_heads").is_null()
                       ? positive_int(j, "num_key_value_heads", source)
                       : c.num_heads;
  if (j.contains("head_dim") && !j.at("head_dim").is_null()) {
    c.head_dim = positive_int(j, "head_dim", source);
    // GraniteAttention takes hidden_size / num_attention_heads whatever head_dim says.
    require(!granite || c.head_dim * c.num_heads == c.hidden_size, source, ": head_dim ", c.head_dim,
            " is not supported for model_type ", type,
            " (its attention uses hidden_size / num_attention_heads = ", c.hidden_size / c.num_heads, ")");
  } else {
    require(c.hidden_size % c.num_heads == 0, source, ": hidden_size (", c.hidden_size,
            ") is not divisible by num_attention_heads (", c.num_heads, ")");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  require(c.head_dim % 2 == 0, source, ": head_dim (", c.head_dim, ") must be even for RoPE");
  c.rotary_dim = c.head_dim;
  if (j.contains("partial_rotary_factor") && !j.at("partial_rotary_factor").is_null()) {
    // Phi3Attention rotates the first int(head_dim * partial_rotary_factor) dimensions (Phi-4-mini);
    // the other families' attention in transformers rotates every one.
    const json& f = j.at("partial_rotary_factor");
    require(f.is_number() && f.get<double>() > 0 && f.get<double>() <= 1, source,
            ": partial_rotary_factor must be a number in (0, 1], got ", f.dump());
    const bool partial = type == "phi3" || type == "stablelm" || type == "gpt_neox" || type == "phi" || type == "glm" ||
                         type == "glm4" || type == "glm4_moe";
    require(
        partial || f.get<double>() == 1.0, source, ": partial_rotary_factor ", f.dump(),
        " is not supported for model_type ", type,
        " (spin rotates part of a head for phi3, stablelm, gpt_neox, phi, glm, glm4 and glm4_moe only, as transformers "
        "does)");
    c.rotary_dim = static_cast<std::int64_t>(static_cast<double>(c.head_dim) * f.get<double>());
    require(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0, source, ": partial_rotary_factor ", f.dump(), " of head_dim ",
            c.head_dim, " rotates ", c.rotary_dim, " dimensions; RoPE needs an even number of them");
  }
  if (c.latent_attention()) c.rotary_dim = c.head_dim - c.qk_nope_head_dim;  // each head's last dimensions
  if (c.rope_scaling && c.rope_scaling->type == RopeScaling::Type::LongRope) {
    for (const auto* f : {&c.rope_scaling->short_factor, &c.rope_scaling->long_factor}) {
      require(static_cast<std::int64_t>(f->size()) == c.rotary_dim / 2, source, ": rope_scaling's ",
              f == &c.rope_scaling->short_factor ? "short_factor" : "long_factor", " has ", f->size(),
              " entries; ", c.rotary_dim, " rotated dimensions need ", c.rotary_dim / 2);
    }
  }
  require(c.num_heads % c.num_kv_heads == 0, source, ": num_attention_heads (", c.num_heads,
          ") is not divisible by num_key_value_heads (", c.num_kv_heads, ")");
  require(c.vocab_size <= (std::int64_t{1} << 31) - 1, source, ": vocab_size too large");
  if (j.contains("rope_theta")) c.rope_theta = positive_float(j, "rope_theta", source);
  parse_sliding_window(j, c, type, source);
  // OLMo 3: its windowed layers rotate unscaled, rope_scaling (YaRN) is the full-attention layers'
  // alone -- as OLMo-core trained them and transformers 4.57's per-layer-type rotary embeddings
  // run them.
  if (type == "olmo3" && c.rope_scaling) c.rope_local_theta = c.rope_theta;
  if (type == "smollm3") parse_rope_layers(j, c, source);
  if (nope) c.rope_layers.assign(static_cast<std::size_t>(c.num_layers), false);
  // Cohere 2 (Command R7B): RoPE in the windowed layers alone, the global ones attend by content
  // (Cohere2Attention rotates only where it has a sliding window).
  if (type == "cohere2") c.rope_layers = c.windowed_layers;
  // EXAONE 4 likewise where it has windows ("global NoPE"); without, every layer rotates.
  if (type == "exaone4" && c.sliding_window) c.rope_layers = c.windowed_layers;
  if (j.contains("tie_word_embeddings")) {
    require(j.at("tie_word_embeddings").is_boolean(), source,
            ": \"tie_word_embeddings\" must be true or false");
    c.tie_word_embeddings = j.at("tie_word_embeddings").get<bool>();
  }
  if (j.contains("eos_token_id")) c.eos_token_ids = token_ids(j.at("eos_token_id"), "eos_token_id", source);
  if (j.contains("bos_token_id")) {
    const auto bos = token_ids(j.at("bos_token_id"), "bos_token_id", source);
    if (!bos.empty()) c.bos_token_id = bos.front();
  }
  c.check_in_vocabulary(c.eos_token_ids, source);
  // (decoder_layer.cpp runs a mixture of experts in the sequential layout only.)
  require(!c.moe() || !c.parallel_residual, source, ": a mixture of experts with a parallel residual is not supported");
  require(c.first_dense_layers < c.num_layers, source, ": first_k_dense_replace ", c.first_dense_layers,
          " leaves no layer of experts among num_hidden_layers ", c.num_layers);
  if (j.contains("quantization_config") && !j.at("quantization_config").is_null()) {
    c.fp8_block = fp8_block_of(j.at("quantization_config"), source);
    nlohmann::ordered_json kept = nlohmann::ordered_json::parse(text);  // (what spin holds is dequantized)
    kept.erase("quantization_config");
    c.json_text = kept.dump(2) + "\n";
  } else {
    c.json_text = text;
  }
  return c;
}

void ModelConfig::check_in_vocabulary(const std::vector<std::int64_t>& eos_ids, const std::string& source) const {
  for (std::int64_t id : eos_ids) {
    require(id < vocab_size, source, ": eos_token_id ", id, " is outside the vocabulary (", vocab_size, ")");
  }
}

std::vector<std::int64_t> ModelConfig::generation_eos_ids(const std::string& model_dir) const {
  const std::string path = model_dir + "/generation_config.json";
  if (!std::filesystem::exists(path)) return {};
  const json j = read_json_file(path);
  require(j.is_object(), path, ": expected a JSON object");
  if (!j.contains("eos_token_id")) return {};
  const std::vector<std::int64_t> ids = token_ids(j.at("eos_token_id"), "eos_token_id", path);
  check_in_vocabulary(ids, path);
  return ids;
}

ModelConfig ModelConfig::load(const std::string& model_dir) {
  return from_file(model_dir + "/config.json", " (not a Hugging Face model directory?)");
}

ModelConfig ModelConfig::from_file(const std::string& path, const std::string& hint) {
  return from_json(read_text_file(path, hint), path);
}

kernels::AttentionScores ModelConfig::attention_scores(std::int64_t layer) const {
  kernels::AttentionScores s = kernels::AttentionScores::standard(head_dim);
  if (query_pre_attn_scalar) s.scale = static_cast<float>(std::pow(static_cast<double>(*query_pre_attn_scalar), -0.5));
  if (attention_mscale != 1.0) {  // DeepSeek-V3's: Python's head_dim ** -0.5 * mscale * mscale
    s.scale = static_cast<float>(std::pow(static_cast<double>(head_dim), -0.5) * attention_mscale * attention_mscale);
  }
  if (attention_multiplier) s.scale = *attention_multiplier;
  s.softcap = attn_logit_softcapping;
  if (windowed(layer)) s.window = *sliding_window;
  return s;
}

float ModelConfig::embedding_scale(bool bf16_activations) const {
  if (!scale_embeddings) return embedding_multiplier;
  // Python's hidden_size**0.5 (a double), then the tensor's dtype (bf16 through float32, as torch
  // converts a scalar).
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(hidden_size)));
  return bf16_activations ? bf16_to_f32(f32_to_bf16(scale)) : scale;
}

std::int64_t ModelConfig::max_sequence_length() const {
  if (rope_scaling && rope_scaling->type == RopeScaling::Type::Dynamic) {
    return std::min(max_position_embeddings, rope_scaling->original_max_position_embeddings);
  }
  return max_position_embeddings;
}

std::int64_t ModelConfig::long_rope_context() const {
  return rope_scaling ? rope_scaling->long_switch(max_position_embeddings) : 0;
}

std::int64_t ModelConfig::attention_matrix_parameters() const {
  const std::int64_t h = hidden_size;
  if (!latent_attention()) return h * head_dim * (2 * num_heads + 2 * num_kv_heads);  // q, k, v, o
  // q_a_proj and q_b_proj (or q_proj), kv_a_proj_with_mqa, kv_b_proj, o_proj from the heads' values.
  const std::int64_t q_width = num_heads * head_dim;
  return (q_lora_rank > 0 ? h * q_lora_rank + q_lora_rank * q_width : h * q_width) + h * (kv_lora_rank + rotary_dim) +
         kv_lora_rank * num_heads * (qk_nope_head_dim + v_head_dim) + num_heads * v_head_dim * h;
}

std::int64_t ModelConfig::num_parameters() const {
  const std::int64_t h = hidden_size;
  // (Latent attention's matrices and its two latent norms.)
  const std::int64_t attn = attention_matrix_parameters() + (latent_attention() ? q_lora_rank + kv_lora_rank : 0);
  // A layer of experts: every expert's projections, the router's [experts, hidden] (and GLM-4.5's
  // correction bias); a shared expert's projections and its gate's [1, hidden]. A dense layer: its MLP.
  const std::int64_t experts =
      mlp_projections() * h * intermediate_size * num_experts + num_experts * h + (router_sigmoid ? num_experts : 0) +
      (shared_expert() ? mlp_projections() * h * shared_expert_intermediate_size + (shared_expert_gated ? h : 0) : 0);
  const std::int64_t dense = mlp_projections() * h * dense_mlp_width();
  const std::int64_t biases = (qkv_bias ? head_dim * (num_heads + 2 * num_kv_heads) : 0) + (o_bias ? h : 0) +
                              (mlp_bias ? (gated_mlp ? 2 : 1) * dense_mlp_width() + h : 0);
  const std::int64_t qk_norms = qk_norm                                  ? 2 * head_dim
                                : qk_norm_all_heads || qk_head_layernorm ? head_dim * (num_heads + num_kv_heads)
                                                                         : 0;
  const std::int64_t norm = (norm_biases() ? 2 : 1) * h;  // a norm's weight, and its bias where it has one
  const std::int64_t per_layer = attn + biases + qk_norms + layer_norm_weights() * norm;
  const std::int64_t embeddings = vocab_size * h * (tie_word_embeddings ? 1 : 2) + (lm_head_bias ? vocab_size : 0);
  return num_layers * per_layer + moe_layers() * experts + (num_layers - moe_layers()) * dense + embeddings +
         (final_norm_weight() ? norm : 0);
}

}  // namespace spin::model
