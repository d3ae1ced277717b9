// The buffers of a decoder layer's forward and backward (decoder_layer.h's LayerActivations and
// LayerGradScratch): which exist for a family and precision, and their shapes -- what spin plan's
// memory figures count (train/memory_plan.cpp).
#include <algorithm>
#include <vector>

#include "model/adapter_site.h"   // lora_layer_slots
#include "model/decoder_layer.h"  // LayerActivations, LayerGradScratch

namespace spin::model {

Shape mlp_shape(const TpDims& d, const ModelConfig& c, std::int64_t rows) {
  return c.moe() ? Shape{d.mlp_values(c, rows)} : Shape{rows, d.intermediate};
}

std::int64_t moe_logits(const ModelConfig& c, std::int64_t rows) { return rows * c.router_logits(); }

std::int64_t lora_u_rows(const TpDims& d, const ModelConfig& c, LoraTarget t, std::int64_t rows) {
  return c.moe() && lora_mlp_target(t) ? d.grouped_rows(c, rows) + (c.shared_expert() ? rows : 0) : rows;
}

std::int64_t lora_replicated_slots(const TpDims& d, const ModelConfig& c, const LoraConfig& lora) {
  const std::int64_t experts =
      c.moe() && lora.targets_mlp() ? (d.expert_tp > 1 ? c.num_experts : 0) + (c.shared_expert() ? 1 : 0) : 0;
  return lora_layer_slots(c) + 3 * experts;
}

std::int64_t lora_replicated_slot(const ModelConfig& c, const LoraConfig& lora, const TpDims& d) {
  return lora.rank * std::max(d.hidden, c.latent_attention() ? std::max(c.q_lora_rank, c.kv_lora_rank) : 0);
}

std::int64_t moe_dropout_keys(const TpDims& d, const ModelConfig& c, const LoraConfig& lora, std::int64_t rows) {
  return c.moe() && lora.targets_mlp() && lora.dropout > 0.0 ? d.grouped_rows(c, rows) : 0;
}

std::int64_t product_grad_values(const TpDims& d, const ModelConfig& c, std::int64_t rows) {
  // (Latent attention's kv_b_proj: heads x (qk_nope_head_dim + v_head_dim) columns, q_a_proj's and
  // kv_a_proj's whole outputs.)
  const std::int64_t latent =
      c.latent_attention()
          ? std::max({d.heads * (c.qk_nope_head_dim + c.v_head_dim), c.q_lora_rank, c.kv_lora_rank, c.rotary_dim})
          : 0;
  const std::int64_t widest =
      std::max({d.hidden, d.q_width(), d.intermediate, d.shared_intermediate, d.dense_intermediate, latent});
  return c.moe() ? std::max(d.grouped_rows(c, rows) * widest, moe_logits(c, rows)) : rows * widest;
}

void LayerActivations::allocate(const TpDims& d, const BatchGeometry& b, std::int64_t probs_size, Device device,
                                bool mixed, const ModelConfig& config, bool output_in_place, const LoraConfig& lora,
                                bool cached) {
  // Qwen3's head norms keep their inputs in the products' precision, OLMo 2's norms across the
  // heads in float32 (the products' float32 output, which row_dot and the norm read).
  const bool qk_norm = config.qk_norm, all_heads = config.qk_norm_all_heads, clip = config.clip_qkv > 0;
  // Command R+'s per-head LayerNorms: float32 inputs as OLMo 2's, statistics per head as Qwen3's.
  const bool head_ln = config.qk_head_layernorm;
  const std::int64_t rows = b.rows;
  // The residual stream and the norms' outputs: this rank's rows (all of them but under a split).
  // The MLP's buffers: a mixture of experts' for each row's experts_per_token experts (and its shared expert).
  // Generation's absorbed latent attention (latent_attention_cached) forms q alone: no k, v or attention output
  // of the heads (its own buffers hold the latent's).
  const bool absorbed = cached && config.latent_attention();
  const Shape hidden{b.residual_rows(), d.hidden}, per_row{b.residual_rows()}, q_shape{rows, d.q_width()},
      kv_shape{absorbed ? 0 : rows, d.kv_width()}, attn_shape{absorbed ? 0 : rows, d.q_width()},
      mlp = mlp_shape(d, config, rows);
  // Mixed precision: everything but the residual stream, the norms' statistics and the
  // attention's saved values only in bf16 -- only products and bf16-reading kernels read them.
  const Shape none{0};
  const auto f32 = [&](const Shape& s) { return mixed ? none : s; };
  const auto qk = [&](const Shape& s) { return qk_norm || head_ln ? s : none; };
  // The q and k products kept before a norm or OLMo 1.7's clamp, v's before the clamp: in the
  // products' precision (kept_qk, kept_v), and the float32 buffers of them (raw: OLMo 2's always).
  const auto kept_qk = [&](const Shape& s) { return qk_norm || clip ? s : none; };
  const auto kept_v = [&](const Shape& s) { return clip ? s : none; };
  const auto raw = [&](const Shape& s) { return all_heads || head_ln ? s : kept_qk(f32(s)); };
  // OLMo 2: q's and k's statistics in one buffer (all-reduced at once), rstd_q and rstd_k its halves.
  const Shape rstd_q_shape = all_heads ? Shape{2 * rows} : qk({rows * d.heads});
  const Shape rstd_k_shape = all_heads ? none : qk({rows * d.kv_heads});
  const auto sandwich = [&](const Shape& s) { return config.sandwich_norms ? s : none; };
  // The input norms' float32 outputs; without them (OLMo 2) the products read the stream itself.
  const auto normed = [&](const Shape& s) { return config.pre_norms ? f32(s) : none; };
  // The MLP's input norm: none with Cohere's or StableLM's parallel residual (the MLP reads the
  // attention's input norm); x_mid with a parallel residual only where the layer writes its output
  // over x_in (the halves' sum goes there). The gate: none in a plain MLP (GPT-NeoX's).
  const auto second = [&](const Shape& s) { return config.mlp_input_norm() ? s : none; };
  const auto gated = [&](const Shape& s) { return config.gated_mlp ? s : none; };
  const bool mid = !config.parallel_residual || output_in_place;
  const auto t = workspace_.carve(
      device, {hidden,           normed(hidden),         per_row,           f32(q_shape),      f32(kv_shape),
               f32(kv_shape),    {probs_size},           f32(attn_shape),   mid ? hidden : none, second(normed(hidden)),
               second(per_row),  f32(gated(mlp)),        f32(mlp),          f32(mlp),          raw(q_shape),
               raw(kv_shape),    rstd_q_shape,           rstd_k_shape,      sandwich(hidden),  sandwich(per_row),
               sandwich(hidden), sandwich(per_row),      kept_v(f32(kv_shape))});
  x_in = t[0], rstd1 = t[2], probs = t[6], x_mid = mid ? t[8] : Tensor();
  rstd2 = config.mlp_input_norm() ? t[10] : Tensor();
  attn_out = rstd_attn_out = mlp_out = rstd_mlp_out = Tensor();
  if (config.sandwich_norms) attn_out = t[18], rstd_attn_out = t[19], mlp_out = t[20], rstd_mlp_out = t[21];
  q_raw = k_raw = q_raw_bf16 = k_raw_bf16 = rstd_q = rstd_k = rstd_qk = v_raw = v_raw_bf16 = Tensor();
  if (qk_norm || head_ln) rstd_q = t[16], rstd_k = t[17];
  if (all_heads) rstd_qk = t[16], rstd_q = t[16].view(0, {rows}), rstd_k = t[16].view(rows, {rows});
  if (((qk_norm || clip) && !mixed) || all_heads || head_ln) q_raw = t[14], k_raw = t[15];
  if (clip && !mixed) v_raw = t[22];
  if (mixed) {
    const auto h = workspace_bf16_.carve(device,
                                         {hidden, q_shape, kv_shape, kv_shape, attn_shape, second(hidden), gated(mlp),
                                          mlp, mlp, kept_qk(q_shape), kept_qk(kv_shape), kept_v(kv_shape)},
                                         1, DType::BF16);
    n1_bf16 = h[0], q_bf16 = h[1], k_bf16 = h[2], v_bf16 = h[3], attn_bf16 = h[4];
    n2_bf16 = h[5], gate_bf16 = h[6], up_bf16 = h[7], act_bf16 = h[8];
    if (qk_norm || clip) q_raw_bf16 = h[9], k_raw_bf16 = h[10];
    if (clip) v_raw_bf16 = h[11];
    n1 = q = k = v = attn = n2 = gate = up = act = Tensor();
  } else {
    n1 = t[1], q = t[3], k = t[4], v = t[5], attn = t[7], n2 = t[9], gate = t[11], up = t[12], act = t[13];
    if (!config.pre_norms) n1 = n2 = Tensor();  // none: the products read x_in and x_mid (norm_output)
    n1_bf16 = q_bf16 = k_bf16 = v_bf16 = attn_bf16 = n2_bf16 = gate_bf16 = up_bf16 = act_bf16 = Tensor();
  }
  if (!config.mlp_input_norm()) n2 = n2_bf16 = Tensor();
  if (!config.gated_mlp) gate = gate_bf16 = Tensor();
  if (absorbed) k = v = attn = k_bf16 = v_bf16 = attn_bf16 = Tensor();
  if (config.latent_attention()) latent.allocate(d, config, rows, device, mixed, cached);
  moe = MoeActivations{};
  if (config.moe()) {
    const std::int64_t outputs = rows * config.mlp_outputs();
    const auto m = workspace_moe_.carve(device, {{moe_logits(config, rows)}, {outputs, d.hidden}, {outputs}});
    moe.logits = m[0], moe.y = m[1], moe.weights = m[2];
    const std::int64_t keys = moe_dropout_keys(d, config, lora, rows), grouped = d.grouped_rows(config, rows);
    const auto ix = workspace_moe_index_.carve(device, {{outputs}, {grouped}, {keys}}, 1, DType::I64);
    moe.slots = ix[0], moe.sources = ix[1];
    if (keys > 0) moe.row_keys = ix[2];
    // The grouped rows in the products' precision: float32, or bf16 alone.
    const Tensor x = workspace_moe_x_.carve(device, {{grouped, d.hidden}}, 1, mixed ? DType::BF16 : DType::F32)[0];
    (mixed ? moe.x_bf16 : moe.x) = x;
  }
  lora_u = {};
  lora_u32 = Tensor();
  if (!lora.enabled()) return;
  // The saved u of every target (one dtype), then in mixed precision the float32 scratch.
  std::vector<Shape> shapes;
  for (int target = 0; target < kLoraTargets; ++target) {
    const auto it = static_cast<LoraTarget>(target);
    shapes.push_back(lora.targets_(it) ? Shape{lora_u_rows(d, config, it, rows), lora.rank} : Shape{0});
  }
  const auto u = workspace_lora_.carve(device, shapes, 1, mixed ? DType::BF16 : DType::F32);
  for (std::size_t target = 0; target < lora_u.size(); ++target) {
    if (lora.targets[target]) lora_u[target] = u[target];
  }
  if (mixed) lora_u32 = workspace_lora32_.carve(device, {{rows, lora.rank}})[0];
}

void LayerGradScratch::allocate(const TpDims& d, const BatchGeometry& b, Device device, bool mixed,
                                const ModelConfig& config, const LoraConfig& lora) {
  const std::int64_t rows = b.rows;
  const bool qk_norm = config.qk_norm || config.qk_norm_all_heads;
  const bool raw_grads = qk_norm || config.qk_head_layernorm || config.clip_qkv > 0;
  const Shape q_shape{rows, d.q_width()}, kv_shape{rows, d.kv_width()}, mlp = mlp_shape(d, config, rows), none{0};
  const auto qk = [&](const Shape& s) { return qk_norm ? s : none; };
  const auto raw = [&](const Shape& s) { return raw_grads ? s : none; };
  // The norms' weight gradients over TP (Qwen3's head norms), or the per-row sums (OLMo 2's, q's
  // then k's).
  const Shape norm_scratch = config.qk_norm_all_heads ? Shape{2, rows} : Shape{2, d.head_dim};
  const Shape residual{b.residual_rows(), d.hidden};
  const auto t = workspace_.carve(device, {residual,
                                           {b.gathered_rows(), d.hidden},
                                           q_shape,
                                           q_shape,
                                           kv_shape,
                                           kv_shape,
                                           mlp,
                                           config.gated_mlp ? mlp : none,
                                           mlp,
                                           {b.split ? 2 * d.hidden : 0},
                                           raw(q_shape),
                                           raw(kv_shape),
                                           qk(norm_scratch),
                                           config.transforms_branch_outputs() ? residual : none});
  d_residual = t[0], d_norm = t[1], d_attn = t[2], dq = t[3], dk = t[4], dv = t[5];
  d_act = t[6], d_gate = config.gated_mlp ? t[7] : Tensor(), d_up = t[8];
  d_norm_weight = b.split ? t[9] : Tensor();
  dq_raw = raw_grads ? t[10] : Tensor();
  dk_raw = raw_grads ? t[11] : Tensor();
  d_head_norms = qk_norm ? t[12] : Tensor();
  d_output = config.transforms_branch_outputs() ? t[13] : Tensor();
  // The widest product's output gradient: a mixture's experts' over its grouped rows, or its router's.
  dy_bf16 =
      mixed ? workspace_bf16_.carve(device, {{product_grad_values(d, config, rows)}}, 1, DType::BF16)[0] : Tensor();
  if (config.latent_attention()) latent.allocate(d, config, rows, device);
  moe = MoeGradScratch{};
  if (config.moe()) {
    const Shape outputs{rows * config.mlp_outputs(), d.hidden};
    const auto m = workspace_moe_.carve(device, {outputs, outputs, {outputs[0]}, {moe_logits(config, rows)}});
    moe.dy = m[0], moe.dx = m[1], moe.dweights = m[2], moe.dlogits = m[3];
  }
  lora_du = lora_du16 = lora_replicated = frozen_norm = Tensor();
  if (!lora.enabled()) return;
  const auto l = workspace_lora_.carve(
      device,
      {{rows, lora.rank}, {lora_replicated_slots(d, config, lora), lora_replicated_slot(config, lora, d)}, {d.hidden}});
  lora_du = l[0], lora_replicated = l[1], frozen_norm = l[2];
  if (mixed) lora_du16 = workspace_lora16_.carve(device, {{rows, lora.rank}}, 1, DType::BF16)[0];
}

}  // namespace spin::model
