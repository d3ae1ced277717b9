#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "model/linear.h"

namespace spin::model {

MoeRouting MoeRouting::route(const std::vector<float>& logits, std::int64_t n, std::int64_t experts, std::int64_t k,
                             bool normalize) {
  MoeRouting r;
  const auto E = static_cast<std::size_t>(experts), K = static_cast<std::size_t>(k);
  r.probs.resize(static_cast<std::size_t>(n) * E);
  r.experts.resize(static_cast<std::size_t>(n) * K);
  r.weights.resize(static_cast<std::size_t>(n) * K);
  r.counts.assign(E, 0);
  r.k = k;
  std::vector<std::int64_t> order(E);
  for (std::int64_t i = 0; i < n; ++i) {
    const float* l = logits.data() + static_cast<std::size_t>(i) * E;
    float* p = r.probs.data() + static_cast<std::size_t>(i) * E;
    // torch.softmax in float32: exp(l - max) / sum.
    const float top = *std::max_element(l, l + E);
    float sum = 0.0f;
    for (std::size_t e = 0; e < E; ++e) sum += p[e] = std::exp(l[e] - top);
    require(std::isfinite(sum), "mixture of experts: the router's logits of row ", i,
            " are not finite (diverged activations or weights)");
    for (std::size_t e = 0; e < E; ++e) p[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](std::int64_t a, std::int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float chosen = 0.0f;
    for (std::size_t j = 0; j < K; ++j) chosen += p[order[j]];
    for (std::size_t j = 0; j < K; ++j) {
      const std::size_t at = static_cast<std::size_t>(i) * K + j;
      r.experts[at] = order[j];
      r.weights[at] = normalize ? p[order[j]] / chosen : p[order[j]];
      ++r.counts[static_cast<std::size_t>(order[j])];
    }
  }
  // Grouped by expert, rows ascending within each.
  std::vector<std::int64_t> next(E, 0);
  for (std::size_t e = 1; e < E; ++e) next[e] = next[e - 1] + r.counts[e - 1];
  r.slots.resize(r.experts.size());
  r.sources.resize(r.experts.size());
  for (std::size_t at = 0; at < r.experts.size(); ++at) {
    const std::int64_t slot = next[static_cast<std::size_t>(r.experts[at])]++;
    r.slots[at] = slot;
    r.sources[static_cast<std::size_t>(slot)] = static_cast<std::int64_t>(at / K);
  }
  return r;
}

std::vector<float> MoeRouting::logits_grad(const std::vector<float>& dweights, bool normalize) const {
  // w_j = q_{e_j} with q the softmax over every expert (p) or, renormalised, over the chosen ones;
  // either way d logit_m = q_m (D_m - sum_j dw_j w_j), D_m = dw_j where m = e_j, else 0 -- and
  // renormalised q_m = 0 off the chosen experts, whose logits get no gradient.
  const std::size_t E = counts.size(), K = static_cast<std::size_t>(k);
  const std::size_t n = probs.size() / E;
  std::vector<float> d(probs.size(), 0.0f);
  for (std::size_t i = 0; i < n; ++i) {
    float mean = 0.0f;
    for (std::size_t j = 0; j < K; ++j) mean += dweights[i * K + j] * weights[i * K + j];
    float* di = d.data() + i * E;
    if (!normalize) {
      for (std::size_t m = 0; m < E; ++m) di[m] = -probs[i * E + m] * mean;
    }
    for (std::size_t j = 0; j < K; ++j) {
      const auto m = static_cast<std::size_t>(experts[i * K + j]);
      const float q = normalize ? weights[i * K + j] : probs[i * E + m];
      di[m] = q * (dweights[i * K + j] - mean);
    }
  }
  return d;
}

namespace {

// Rows [first, first + count) of a [rows, width] buffer; undefined where `t` is.
Tensor block(const Tensor& t, std::int64_t first, std::int64_t count, std::int64_t width) {
  return t.defined() ? t.view(first * width, {count, width}) : Tensor();
}

template <class T>
void upload(const Tensor& dst, const std::vector<T>& values) {
  copy_bytes(dst.raw(), dst.device(), values.data(), Device::Cpu, values.size() * sizeof(T));
}

// Expert e's matrix `m` in bf16 (mixed precision), or undefined (float32).
Tensor expert16(const LayerWeights& w, std::size_t e, Tensor LayerWeights::Expert::*m) {
  return w.bf16.experts.empty() ? Tensor() : w.bf16.experts[e].*m;
}

// Calls f(expert, first grouped row, rows) for every expert that takes rows.
template <class F>
void for_each_expert(const MoeRouting& r, F&& f) {
  std::int64_t first = 0;
  for (std::size_t e = 0; e < r.counts.size(); ++e) {
    if (r.counts[e] > 0) f(e, first, r.counts[e]);
    first += r.counts[e];
  }
}

}  // namespace

void moe_forward(const ModelContext& ctx, const LayerWeights& w, const ColumnInput& in, std::int64_t n,
                 MoeActivations& a, const Tensor& gate, const Tensor& gate16, const Tensor& up, const Tensor& up16,
                 const Tensor& act, const Tensor& act16, float* out) {
  const auto& k = ctx.k;
  const ModelConfig& c = ctx.config;
  const std::int64_t h = ctx.dims.hidden, inter = ctx.dims.intermediate, E = c.num_experts;
  const std::int64_t K = c.experts_per_token, grouped = n * K;
  linear_forward(ctx, a.logits.f32(), in.x, in.x16, w.router, w.bf16.router, n, h, E, true);
  a.routing = MoeRouting::route(to_host<float>(a.logits), n, E, K, c.norm_topk_prob);
  upload(a.slots, a.routing.slots);
  upload(a.sources, a.routing.sources);
  upload(a.weights, a.routing.weights);
  const auto* sources = a.sources.data<std::int64_t>();
  if (in.x16.defined()) {
    k.gather_rows_bf16(a.x_bf16.bf16(), in.x16.bf16(), sources, grouped, h);
  } else {
    k.gather_rows(a.x.f32(), in.x.f32(), sources, grouped, h);
  }
  const auto& experts = w.experts;
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    const Tensor x = block(a.x, first, rows, h), x16 = block(a.x_bf16, first, rows, h);
    linear_forward_into(ctx, block(gate, first, rows, inter), block(gate16, first, rows, inter), x, x16,
                        experts[e].gate_proj, expert16(w, e, &LayerWeights::Expert::gate_proj), Tensor(), rows, h,
                        inter);
    linear_forward_into(ctx, block(up, first, rows, inter), block(up16, first, rows, inter), x, x16, experts[e].up_proj,
                        expert16(w, e, &LayerWeights::Expert::up_proj), Tensor(), rows, h, inter);
  });
  if (act16.defined()) {
    k.glu_forward_bf16(act16.bf16(), gate16.bf16(), up16.bf16(), grouped * inter, c.activation);
  } else {
    k.glu_forward(act.f32(), gate.f32(), up.f32(), grouped * inter, c.activation);
  }
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    linear_forward(ctx, a.y.f32() + first * h, block(act, first, rows, inter), block(act16, first, rows, inter),
                   experts[e].down_proj, expert16(w, e, &LayerWeights::Expert::down_proj), rows, inter, h, true);
  });
  k.moe_combine(out, a.y.f32(), a.slots.data<std::int64_t>(), a.weights.f32(), n, K, h);
}

void moe_backward(const ModelContext& ctx, const LayerWeights& w, LayerWeights& g, const ColumnInput& in,
                  std::int64_t n, const MoeActivations& a, const Tensor& gate, const Tensor& gate16, const Tensor& up,
                  const Tensor& up16, const Tensor& act, const Tensor& act16, MoeGradScratch& s, const Tensor& d_act,
                  const Tensor& d_gate, const Tensor& d_up, const Tensor& dy16, const float* dout, float* d_in) {
  const auto& k = ctx.k;
  const ModelConfig& c = ctx.config;
  const std::int64_t h = ctx.dims.hidden, inter = ctx.dims.intermediate, E = c.num_experts;
  const std::int64_t K = c.experts_per_token, grouped = n * K;
  const auto* slots = a.slots.data<std::int64_t>();
  // d/d each expert's output and d/d the weights, these summed over TP (each rank's y is partial).
  k.moe_combine_backward(s.dy.f32(), s.dweights.f32(), dout, a.y.f32(), slots, a.weights.f32(), n, K, h);
  if (ctx.tp.size() > 1) ctx.tp.all_reduce(s.dweights.f32(), static_cast<std::size_t>(grouped));
  upload(s.dlogits, a.routing.logits_grad(to_host<float>(s.dweights), c.norm_topk_prob));

  // A frozen model (LoRA's base) has no expert gradients.
  const auto grad = [&](std::size_t e, Tensor LayerWeights::Expert::*m) -> float* {
    return e < g.experts.size() ? f32_or_null(g.experts[e].*m) : nullptr;
  };
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    linear_backward(ctx, d_act.f32() + first * inter, grad(e, &LayerWeights::Expert::down_proj), s.dy.f32() + first * h,
                    dy16, block(act, first, rows, inter), block(act16, first, rows, inter), w.experts[e].down_proj,
                    expert16(w, e, &LayerWeights::Expert::down_proj), rows, inter, h, false);
  });
  if (act16.defined()) {
    k.glu_backward_bf16(d_gate.f32(), d_up.f32(), d_act.f32(), gate16.bf16(), up16.bf16(), grouped * inter,
                        c.activation);
  } else {
    k.glu_backward(d_gate.f32(), d_up.f32(), d_act.f32(), gate.f32(), up.f32(), grouped * inter, c.activation);
  }
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    const Tensor x = block(a.x, first, rows, h), x16 = block(a.x_bf16, first, rows, h);
    float* dx = s.dx.f32() + first * h;
    linear_backward(ctx, dx, grad(e, &LayerWeights::Expert::gate_proj), d_gate.f32() + first * inter, dy16, x, x16,
                    w.experts[e].gate_proj, expert16(w, e, &LayerWeights::Expert::gate_proj), rows, h, inter, false);
    linear_backward(ctx, dx, grad(e, &LayerWeights::Expert::up_proj), d_up.f32() + first * inter, dy16, x, x16,
                    w.experts[e].up_proj, expert16(w, e, &LayerWeights::Expert::up_proj), rows, h, inter, true);
  });
  k.moe_combine(d_in, s.dx.f32(), slots, nullptr, n, K, h);
  // The router: its weights' gradient whole on every rank, its input gradient on rank 0 alone.
  linear_backward(ctx, ctx.tp.rank() == 0 ? d_in : nullptr, f32_or_null(g.router), s.dlogits.f32(), dy16, in.x, in.x16,
                  w.router, w.bf16.router, n, h, E, true);
}

}  // namespace spin::model
