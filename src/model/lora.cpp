#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"

namespace spin::model {

namespace {
constexpr const char* kNames[kLoraTargets] = {"q_proj",    "k_proj",   "v_proj",             "o_proj",
                                              "gate_proj", "up_proj",  "down_proj",          "q_a_proj",
                                              "kv_a_proj_with_mqa",    "kv_b_proj"};
}  // namespace

const char* lora_target_name(LoraTarget t) { return kNames[static_cast<int>(t)]; }

bool lora_target_in_model(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::K:
    case LoraTarget::V: return !c.latent_attention();
    case LoraTarget::Gate: return c.gated_mlp;
    case LoraTarget::QA: return c.latent_attention() && c.q_lora_rank > 0;
    case LoraTarget::KvA:
    case LoraTarget::KvB: return c.latent_attention();
    case LoraTarget::Q:
    case LoraTarget::O:
    case LoraTarget::Up:
    case LoraTarget::Down: return true;
  }
  return false;
}

std::array<bool, kLoraTargets> lora_targets_of_model(const ModelConfig& c, std::array<bool, kLoraTargets> targets,
                                                     const std::string& text, const char* setting) {
  const bool all = text == "all-linear" || text == "all";
  std::string present;
  for (int t = 0; t < kLoraTargets; ++t) {
    if (lora_target_in_model(c, static_cast<LoraTarget>(t))) present += cat(present.empty() ? "" : ", ", kNames[t]);
  }
  for (int t = 0; t < kLoraTargets; ++t) {
    auto& target = targets[static_cast<std::size_t>(t)];
    if (!target || lora_target_in_model(c, static_cast<LoraTarget>(t))) continue;
    require(all, setting, " = \"", text, "\": the model has no ", kNames[t], " (its projections: ", present, ")");
    target = false;
  }
  return targets;
}

std::string LoraConfig::targets_text() const {
  std::string out;
  for (int t = 0; t < kLoraTargets; ++t) {
    if (!targets[static_cast<std::size_t>(t)]) continue;
    if (!out.empty()) out += ',';
    out += kNames[t];
  }
  return out;
}

std::string LoraConfig::summary() const {
  return enabled() ? cat("rank ", rank, ", alpha ", alpha, ", targets ", targets_text(), rslora ? ", rsLoRA" : "")
                   : "";
}

void LoraConfig::validate(const char* setting_prefix) const {
  require(rank >= 0, setting_prefix, "rank = ", rank, ": must be 0 (no adapters) or positive");
  require(dropout >= 0.0 && dropout < 1.0, setting_prefix, "dropout = ", dropout, ": must be in [0, 1)");
  require(enabled() || dropout == 0.0, setting_prefix, "dropout = ", dropout, " needs adapters (", setting_prefix,
          "rank)");
  if (!enabled()) return;
  require(alpha > 0.0 && std::isfinite(alpha), setting_prefix, "alpha = ", alpha, ": must be positive and finite");
  require(targets_text() != "", setting_prefix, "targets: no projection to adapt");
}

std::array<bool, kLoraTargets> parse_lora_targets(const std::string& text, const char* setting) {
  using T = LoraTarget;
  // NeMo's names of the fused projections it adapts (its LoRA target_modules), Phi-3's fused
  // modules as PEFT names them, Phi-2's modules (dense, fc1, fc2), Mixtral's experts' (w1, w3, w2),
  // GPT-NeoX's (query_key_value, dense, dense_h_to_4h, dense_4h_to_h) and Granite 4.0's shared MLP's
  // (input_linear = gate and up, output_linear).
  const std::pair<const char*, std::vector<T>> fused[] = {
      {"attention_qkv", {T::Q, T::K, T::V}}, {"attention_dense", {T::O}},
      {"mlp_fc1", {T::Gate, T::Up}},         {"mlp_fc2", {T::Down}},
      {"qkv_proj", {T::Q, T::K, T::V}},      {"gate_up_proj", {T::Gate, T::Up}},
      {"dense", {T::O}},                     {"fc1", {T::Up}},
      {"fc2", {T::Down}},                    {"w1", {T::Gate}},
      {"w3", {T::Up}},                       {"w2", {T::Down}},
      {"query_key_value", {T::Q, T::K, T::V}}, {"dense_h_to_4h", {T::Up}},
      {"dense_4h_to_h", {T::Down}},           {"input_linear", {T::Gate, T::Up}},
      {"output_linear", {T::Down}},           {"q_b_proj", {T::Q}}};
  std::array<bool, kLoraTargets> out{};
  if (text == "all-linear" || text == "all") {
    out.fill(true);
    return out;
  }
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string word = text.substr(at, comma - at);
    bool found = false;
    for (int t = 0; t < kLoraTargets; ++t) {
      if (word == kNames[t]) out[static_cast<std::size_t>(t)] = found = true;
    }
    for (const auto& [name, targets] : fused) {
      if (word != name) continue;
      for (const T t : targets) out[static_cast<std::size_t>(t)] = true;
      found = true;
    }
    require(found, setting, " = \"", text, "\": \"", word,
            "\" is not a projection (all-linear, or a list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
            "down_proj, DeepSeek's q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj -- or NeMo's attention_qkv, "
            "attention_dense, mlp_fc1, mlp_fc2, Phi-3's qkv_proj, gate_up_proj, Phi-2's dense, fc1, fc2, Mixtral's "
            "w1, w3, w2, GPT-NeoX's query_key_value, dense_h_to_4h, dense_4h_to_h, or Granite 4.0's input_linear, "
            "output_linear)");
    at = comma + 1;
  }
  return out;
}

std::pair<std::int64_t, std::int64_t> lora_projection_extents(const ModelConfig& c, const TpDims& d, LoraTarget t) {
  switch (t) {
    case LoraTarget::Q: return {c.latent_attention() && c.q_lora_rank > 0 ? c.q_lora_rank : d.hidden, d.q_width()};
    case LoraTarget::K:
    case LoraTarget::V: return {d.hidden, d.kv_width()};
    case LoraTarget::O: return {d.o_width(), d.hidden};
    case LoraTarget::Gate:
    case LoraTarget::Up: return {d.hidden, d.dense_intermediate};
    case LoraTarget::Down: return {d.dense_intermediate, d.hidden};
    case LoraTarget::QA: return {d.hidden, c.q_lora_rank};
    case LoraTarget::KvA: return {d.hidden, c.kv_lora_rank + c.rotary_dim};
    case LoraTarget::KvB: return {c.kv_lora_rank, d.heads * (c.qk_nope_head_dim + c.v_head_dim)};
  }
  return {0, 0};
}

std::int64_t lora_widest_input(const ModelConfig& c, const LoraConfig& lora, const TpDims& dims) {
  std::int64_t widest = 0;
  for (int t = 0; t < kLoraTargets; ++t) {
    const auto target = static_cast<LoraTarget>(t);
    if (!lora.targets_(target)) continue;
    const std::int64_t down = std::max({dims.intermediate, dims.shared_intermediate, dims.dense_intermediate});
    widest = std::max(widest, target == LoraTarget::Down ? down : lora_projection_extents(c, dims, target).first);
  }
  return widest;
}

void lora_forward(const kernels::Kernels& k, const LoraFactors& w, const LoraFactors& w16, float scale,
                  const Tensor& x, const Tensor& x16, const Tensor& u, const Tensor& u16, float* y,
                  std::uint16_t* y16, std::int64_t n, std::int64_t in, std::int64_t out) {
  const std::int64_t r = w.a.shape()[0];
  if (!x16.defined()) {
    k.gemm(false, true, n, r, in, scale, x.f32(), in, w.a.f32(), in, 0.0f, u.f32(), r);
    k.gemm(false, true, n, out, r, 1.0f, u.f32(), r, w.b.f32(), r, 1.0f, y, out);
    return;
  }
  k.gemm_bf16(false, true, n, r, in, scale, x16.bf16(), in, w16.a.bf16(), in, 0.0f, u.f32(), r);
  k.to_bf16(u16.bf16(), u.f32(), n * r);
  if (y16 != nullptr) {
    k.gemm_bf16(false, true, n, out, r, 1.0f, u16.bf16(), r, w16.b.bf16(), r, 1.0f, y16, out);
  } else {
    k.gemm_bf16(false, true, n, out, r, 1.0f, u16.bf16(), r, w16.b.bf16(), r, 1.0f, y, out);
  }
}

void lora_backward(const kernels::Kernels& k, const LoraFactors& w, const LoraFactors& w16, float scale, float* da,
                   float* db, const float* dy, const Tensor& dy16, const Tensor& x, const Tensor& x16, const Tensor& u,
                   const Tensor& u16, const Tensor& du, const Tensor& du16, float* dx, std::int64_t n, std::int64_t in,
                   std::int64_t out, bool accumulate_dx) {
  const float dx_beta = accumulate_dx ? 1.0f : 0.0f;
  const std::int64_t r = w.a.shape()[0];
  if (!x16.defined()) {
    k.gemm(true, false, out, r, n, 1.0f, dy, out, u.f32(), r, 1.0f, db, r);
    k.gemm(false, false, n, r, out, scale, dy, out, w.b.f32(), r, 0.0f, du.f32(), r);
    k.gemm(true, false, r, in, n, 1.0f, du.f32(), r, x.f32(), in, 1.0f, da, in);
    if (dx != nullptr) k.gemm(false, false, n, in, r, 1.0f, du.f32(), r, w.a.f32(), in, dx_beta, dx, in);
    return;
  }
  k.gemm_bf16(true, false, out, r, n, 1.0f, dy16.bf16(), out, u16.bf16(), r, 1.0f, db, r);
  k.gemm_bf16(false, false, n, r, out, scale, dy16.bf16(), out, w16.b.bf16(), r, 0.0f, du.f32(), r);
  k.to_bf16(du16.bf16(), du.f32(), n * r);
  k.gemm_bf16(true, false, r, in, n, 1.0f, du16.bf16(), r, x16.bf16(), in, 1.0f, da, in);
  if (dx != nullptr) k.gemm_bf16(false, false, n, in, r, 1.0f, du16.bf16(), r, w16.a.bf16(), in, dx_beta, dx, in);
}

void lora_merge(const kernels::Kernels& k, const Tensor& w, const LoraFactors& f, float scale, std::int64_t in,
                std::int64_t out) {
  const std::int64_t r = f.a.shape()[0];
  k.gemm(false, false, out, in, r, scale, f.b.f32(), r, f.a.f32(), in, 1.0f, w.f32(), in);
}

}  // namespace spin::model
