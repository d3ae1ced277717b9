#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "model/adapter_site.h"
#include "model/decoder_layer.h"  // moe_logits, LayerActivations, LayerGradScratch
#include "model/linear.h"

namespace spin::model {

RouterRule RouterRule::of(const ModelConfig& c) {
  return {c.num_experts,    c.experts_per_token,     c.norm_topk_prob, c.shared_expert(),     c.shared_expert_gated,
          c.router_sigmoid, c.routed_scaling_factor, c.expert_groups,  c.expert_groups_chosen};
}

namespace {

// The k largest of values[0, count) by index, largest first, ties to the smaller index.
void top_k(std::vector<std::int64_t>& order, const float* values, std::int64_t k) {
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int64_t a, std::int64_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
}

// The choice among a row's scores s within the rule's chosen groups, the others' experts counted as 0
// (masked_fill's 0.0, not -inf), into `choice`: GLM-4.5's (Glm4MoeMoE.route_tokens_to_experts) by sigmoid
// s + bias, its groups ranked by their two largest biased scores summed; DeepSeek-V2's
// (group_limited_greedy: no bias) by softmax s, its groups ranked by their largest.
void grouped_choice(std::vector<float>& choice, const float* s, const std::vector<float>& bias,
                    const RouterRule& rule) {
  const auto E = static_cast<std::size_t>(rule.experts), G = static_cast<std::size_t>(rule.groups);
  const std::size_t size = E / G;
  for (std::size_t e = 0; e < E; ++e) choice[e] = s[e] + (bias.empty() ? 0.0f : bias[e]);
  if (rule.groups_chosen == rule.groups) return;
  std::vector<float> group_scores(G);
  for (std::size_t g = 0; g < G; ++g) {
    const float* c = choice.data() + g * size;
    const auto first = std::max_element(c, c + size);
    float second = -INFINITY;
    for (std::size_t e = 0; e < size; ++e) {
      if (c + e != first) second = std::max(second, c[e]);
    }
    group_scores[g] = rule.sigmoid ? *first + second : *first;
  }
  std::vector<std::int64_t> groups(G);
  top_k(groups, group_scores.data(), rule.groups_chosen);
  std::vector<bool> kept(G, false);
  for (std::int64_t g = 0; g < rule.groups_chosen; ++g) kept[static_cast<std::size_t>(groups[g])] = true;
  for (std::size_t e = 0; e < E; ++e) {
    if (!kept[e / size]) choice[e] = 0.0f;
  }
}

}  // namespace

MoeRouting MoeRouting::route(const std::vector<float>& logits, std::int64_t n, const RouterRule& rule,
                             const std::vector<float>& bias) {
  MoeRouting r;
  r.rule = rule;
  const std::int64_t k = rule.k;
  r.k = k;
  r.outputs = k + (rule.shared ? 1 : 0);
  const auto E = static_cast<std::size_t>(rule.experts), K = static_cast<std::size_t>(k);
  const auto J = static_cast<std::size_t>(r.outputs), N = static_cast<std::size_t>(n);
  require(!rule.sigmoid || bias.size() == E, "mixture of experts: a sigmoid router needs its correction bias");
  r.probs.resize(N * E);
  if (rule.sigmoid) r.scores.resize(N * E);
  r.experts.resize(N * K);
  r.weights.resize(N * J);
  r.counts.assign(E, 0);
  r.lse.resize(N);
  std::vector<std::int64_t> order(E);
  std::vector<float> choice(rule.sigmoid || rule.groups_chosen < rule.groups ? E : 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto row = static_cast<std::size_t>(i);
    const float* l = logits.data() + row * E;
    float* p = r.probs.data() + row * E;
    // torch.softmax in float32: exp(l - max) / sum.
    const float top = *std::max_element(l, l + E);
    float sum = 0.0f;
    for (std::size_t e = 0; e < E; ++e) sum += p[e] = std::exp(l[e] - top);
    require(std::isfinite(sum), "mixture of experts: the router's logits of row ", i,
            " are not finite (diverged activations or weights)");
    r.lse[row] = top + std::log(sum);
    for (std::size_t e = 0; e < E; ++e) p[e] /= sum;
    // The scores the weights are: the softmax, or torch.sigmoid in float32.
    const float* score = p;
    if (rule.sigmoid) {
      float* s = r.scores.data() + row * E;
      for (std::size_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-l[e]));
      grouped_choice(choice, s, bias, rule);
      top_k(order, choice.data(), k);
      score = s;
    } else if (rule.groups_chosen < rule.groups) {  // DeepSeek-V2's group_limited_greedy
      grouped_choice(choice, p, {}, rule);
      top_k(order, choice.data(), k);
    } else {
      top_k(order, p, k);
    }
    float chosen = 0.0f;
    for (std::size_t j = 0; j < K; ++j) chosen += score[order[j]];
    // Glm4MoeMoE's renormalisation adds 1e-20 to the sum (nothing, in float32, to a sum of sigmoids).
    const float denominator = rule.normalize ? chosen + (rule.sigmoid ? 1e-20f : 0.0f) : 1.0f;
    for (std::size_t j = 0; j < K; ++j) {
      r.experts[row * K + j] = order[j];
      r.weights[row * J + j] = score[order[j]] / denominator * rule.scale;
      ++r.counts[static_cast<std::size_t>(order[j])];
    }
    // The shared expert's gate: torch.sigmoid in float32; an ungated shared expert's output as it is.
    if (rule.shared) r.weights[row * J + K] = rule.shared_gated ? 1.0f / (1.0f + std::exp(-logits[N * E + row])) : 1.0f;
  }
  // Grouped by expert, rows ascending within each; the shared expert's rows after them, in order.
  std::vector<std::int64_t> next(E, 0);
  for (std::size_t e = 1; e < E; ++e) next[e] = next[e - 1] + r.counts[e - 1];
  r.slots.resize(N * J);
  r.sources.resize(N * K);
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t j = 0; j < K; ++j) {
      const std::int64_t slot = next[static_cast<std::size_t>(r.experts[i * K + j])]++;
      r.slots[i * J + j] = slot;
      r.sources[static_cast<std::size_t>(slot)] = static_cast<std::int64_t>(i);
    }
    if (rule.shared) r.slots[i * J + K] = static_cast<std::int64_t>(N * K + i);
  }
  r.held = rule.experts;
  r.rows = static_cast<std::int64_t>(N * K);
  return r;
}

void MoeRouting::keep_experts(std::int64_t first, std::int64_t count) {
  require(first >= 0 && count >= 0 && first + count <= rule.experts, "mixture of experts: experts [", first, ", ",
          first + count, ") outside ", rule.experts);
  if (first == first_expert && count == held) return;
  const auto begin = std::accumulate(counts.begin(), counts.begin() + first, std::int64_t{0});
  const auto end = std::accumulate(counts.begin() + first, counts.begin() + first + count, begin);
  const std::size_t J = static_cast<std::size_t>(outputs), K = static_cast<std::size_t>(k), n = slots.size() / J;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < K; ++j) {
      std::int64_t& slot = slots[i * J + j];
      slot = slot >= begin && slot < end ? slot - begin : -1;
    }
    if (rule.shared) slots[i * J + K] = end - begin + static_cast<std::int64_t>(i);
  }
  sources = std::vector<std::int64_t>(sources.begin() + begin, sources.begin() + end);
  first_expert = first;
  held = count;
  rows = end - begin;
}

std::vector<float> MoeRouting::logits_grad(const std::vector<float>& dweights) const {
  // Softmax scores: w_j = scale q_{e_j} with q the softmax over every expert (p) or, renormalised, over
  // the chosen ones; either way d logit_m = q_m (scale D_m - sum_j dw_j w_j), D_m = dw_j where m = e_j,
  // else 0 -- and renormalised q_m = 0 off the chosen experts, whose logits get no gradient.
  // Sigmoid scores s (the choice, piecewise constant, has no gradient; nor has the bias): w_j =
  // scale s_j / S, S = sum over the chosen (1 unrenormalised), so d s_m = scale (dw_m - sum_j dw_j
  // s_j / S) / S for a chosen m, and d logit_m = d s_m s_m (1 - s_m). A gated shared expert's gate
  // g = sigmoid(t): d t = dw g (1 - g).
  const std::size_t E = counts.size(), K = static_cast<std::size_t>(k), J = static_cast<std::size_t>(outputs);
  const std::size_t n = probs.size() / E;
  const bool gate = rule.shared && rule.shared_gated, normalize = rule.normalize;
  std::vector<float> d(probs.size() + (gate ? n : 0), 0.0f);
  for (std::size_t i = 0; i < n; ++i) {
    float* di = d.data() + i * E;
    if (rule.sigmoid) {
      const float* s = scores.data() + i * E;
      float sum = 0.0f, mean = 0.0f;
      for (std::size_t j = 0; j < K; ++j) sum += s[experts[i * K + j]];
      for (std::size_t j = 0; j < K; ++j) mean += dweights[i * J + j] * s[experts[i * K + j]] / sum;
      for (std::size_t j = 0; j < K; ++j) {
        const auto m = static_cast<std::size_t>(experts[i * K + j]);
        const float ds = normalize ? rule.scale * (dweights[i * J + j] - mean) / sum : rule.scale * dweights[i * J + j];
        di[m] = ds * s[m] * (1.0f - s[m]);
      }
    } else {
      float mean = 0.0f;
      for (std::size_t j = 0; j < K; ++j) mean += dweights[i * J + j] * weights[i * J + j];
      if (!normalize) {
        for (std::size_t m = 0; m < E; ++m) di[m] = -probs[i * E + m] * mean;
      }
      for (std::size_t j = 0; j < K; ++j) {
        const auto m = static_cast<std::size_t>(experts[i * K + j]);
        const float q = normalize ? weights[i * J + j] / rule.scale : probs[i * E + m];
        di[m] = q * (rule.scale * dweights[i * J + j] - mean);
      }
    }
    if (gate) {
      const float g = weights[i * J + K];
      d[n * E + i] = dweights[i * J + K] * g * (1.0f - g);
    }
  }
  return d;
}

double MoeRouting::balance_loss() const {
  const std::size_t E = counts.size(), n = probs.size() / E;
  if (n == 0) return 0.0;
  double sum = 0.0;
  for (std::size_t e = 0; e < E; ++e) {
    double p = 0.0;
    for (std::size_t i = 0; i < n; ++i) p += probs[i * E + e];
    sum += static_cast<double>(counts[e]) * p;
  }
  return static_cast<double>(E) * sum / (static_cast<double>(n) * static_cast<double>(n));
}

void MoeRouting::add_balance_grad(std::vector<float>& dlogits, float weight) const {
  // d loss / d p_ie = a_e = weight E counts_e / n^2 (every row alike); through the softmax,
  // d logit_im = p_im (a_m - sum_e p_ie a_e).
  const std::size_t E = counts.size(), n = probs.size() / E;
  std::vector<double> a(E);
  for (std::size_t e = 0; e < E; ++e) {
    a[e] = static_cast<double>(weight) * static_cast<double>(E) * static_cast<double>(counts[e]) /
           (static_cast<double>(n) * static_cast<double>(n));
  }
  for (std::size_t i = 0; i < n; ++i) {
    const float* p = probs.data() + i * E;
    double mean = 0.0;
    for (std::size_t e = 0; e < E; ++e) mean += p[e] * a[e];
    for (std::size_t m = 0; m < E; ++m) dlogits[i * E + m] += static_cast<float>(p[m] * (a[m] - mean));
  }
}

double MoeRouting::z_loss() const {
  if (lse.empty()) return 0.0;
  double sum = 0.0;
  for (const float l : lse) sum += static_cast<double>(l) * l;
  return sum / static_cast<double>(lse.size());
}

void MoeRouting::add_z_grad(std::vector<float>& dlogits, float weight) const {
  const std::size_t E = counts.size(), n = lse.size();
  for (std::size_t i = 0; i < n; ++i) {
    const double scale = 2.0 * weight * lse[i] / static_cast<double>(n);
    for (std::size_t m = 0; m < E; ++m) dlogits[i * E + m] += static_cast<float>(scale * probs[i * E + m]);
  }
}

namespace {

// [count, width] from element `offset` of a buffer; undefined where `t` is.
Tensor rows_at(const Tensor& t, std::int64_t offset, std::int64_t count, std::int64_t width) {
  return t.defined() ? t.view(offset, {count, width}) : Tensor();
}

// Rows [first, first + count) of a [rows, width] buffer; undefined where `t` is.
Tensor block(const Tensor& t, std::int64_t first, std::int64_t count, std::int64_t width) {
  return rows_at(t, first * width, count, width);
}

template <class T>
void upload(const Tensor& dst, const std::vector<T>& values) {
  copy_bytes(dst.raw(), dst.device(), values.data(), Device::Cpu, values.size() * sizeof(T));
}

// Expert e's matrix `m` in bf16 (mixed precision), or undefined (float32).
Tensor expert16(const LayerWeights& w, std::size_t e, Tensor LayerWeights::Expert::*m) {
  return w.bf16.experts.empty() ? Tensor() : w.bf16.experts[e].*m;
}

// A layer's LoRA adapters of its experts' projections (none: adapters null, or without MLP
// targets): expert e's (e = num_experts: the shared expert's) adapter of target t as a site over
// its block of `rows` rows from grouped row `first` (the shared expert's rows follow the grouped
// ones: the MLP's input rows themselves, whose keys LoRA's dropout reads).
class ExpertAdapters {
 public:
  ExpertAdapters(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights* adapters,
                 const LayerActivations& a)
      : ctx_(ctx),
        b_(b),
        layer_(layer),
        a_(a),
        ad_(adapters != nullptr && !adapters->experts.empty() ? adapters : nullptr) {}

  // Whether expert e has an adapter of t.
  bool adapts(std::size_t e, LoraTarget t) const { return ad_ != nullptr && factors(*ad_, e, t).a.defined(); }
  AdapterSite site(std::size_t e, LoraTarget t, std::int64_t first, std::int64_t rows, std::int64_t in) const {
    const LoraFactors& f = factors(*ad_, e, t);
    const bool mixed = !ad_->bf16.experts.empty();
    AdapterSite s{f,
                  mixed ? factors_bf16(e, t) : kNoFactors,
                  ad_->lora_scale,
                  block(a_.lora_u[static_cast<std::size_t>(t)], first, rows, f.a.shape()[0]),
                  b_.dropout,
                  {}};
    if (b_.dropout != nullptr) {
      const std::int64_t* keys = shared(e) ? b_.dropout->row_keys : a_.moe.row_keys.data<std::int64_t>() + first;
      // A row-parallel adapter's columns from this rank's place among those its projection is split over.
      const int rank = shared(e) ? ctx_.tp.rank() : ctx_.dims.expert_rank;
      s.mask = b_.dropout->expert_mask(layer_, static_cast<std::int64_t>(e), static_cast<int>(t),
                                       lora_row_parallel(t) ? rank * in : 0, keys);
    }
    return s;
  }
  // Where expert e's adapter of t puts its gradients (g: the adapters' gradients).
  std::pair<float*, float*> grads(const LayerWeights& g, std::size_t e, LoraTarget t, const Tensor& replicated) const {
    // The shared expert split over the TP group, an expert over its expert-parallel group's ranks.
    const bool partial = shared(e) ? ctx_.tp.size() > 1 : ctx_.dims.expert_tp > 1;
    return adapter_grads(factors(g, e, t), t, replicated,
                         expert_adapter_slot(ctx_.config, static_cast<std::int64_t>(e), t), partial);
  }

 private:
  bool shared(std::size_t e) const { return e == ad_->experts.size(); }
  static const LoraFactors& factors(const LayerWeights& w, std::size_t e, LoraTarget t) {
    return (e == w.experts.size() ? w.shared_expert : w.experts[e]).lora[expert_lora(t)];
  }
  const LoraFactors& factors_bf16(std::size_t e, LoraTarget t) const {
    return (shared(e) ? ad_->bf16.shared_expert : ad_->bf16.experts[e]).lora[expert_lora(t)];
  }

  static inline const LoraFactors kNoFactors{};
  const ModelContext& ctx_;
  const BatchGeometry& b_;
  std::int64_t layer_;
  const LayerActivations& a_;
  const LayerWeights* ad_;
};

// Calls f(expert, first grouped row, rows) for every expert of the layout (MoeRouting::keep_experts) that
// takes rows.
template <class F>
void for_each_expert(const MoeRouting& r, F&& f) {
  std::int64_t first = 0;
  for (auto e = static_cast<std::size_t>(r.first_expert); e < static_cast<std::size_t>(r.first_expert + r.held); ++e) {
    if (r.counts[e] > 0) f(e, first, r.counts[e]);
    first += r.counts[e];
  }
}

}  // namespace

void moe_forward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                 const LayerWeights* adapters, const ColumnInput& in, LayerActivations& la, float* out) {
  const auto& k = ctx.k;
  const ModelConfig& c = ctx.config;
  MoeActivations& a = la.moe;
  const Tensor &gate = la.gate, &gate16 = la.gate_bf16, &up = la.up, &up16 = la.up_bf16;
  const Tensor &act = la.act, &act16 = la.act_bf16;
  const std::int64_t n = b.rows, h = ctx.dims.hidden, inter = ctx.dims.intermediate, E = c.num_experts;
  const std::int64_t J = c.mlp_outputs();
  const bool shared = c.shared_expert();
  const ExpertAdapters ad(ctx, b, layer, adapters, la);
  // The router's logits, then a gated shared expert's gate's: one copy to the host (GLM-4.5's
  // correction bias besides).
  linear_forward(ctx, a.logits.f32(), in.x, in.x16, w.router, w.bf16.router, n, h, E, true);
  if (w.shared_expert_gate.defined()) {
    linear_forward(ctx, a.logits.f32() + n * E, in.x, in.x16, w.shared_expert_gate, w.bf16.shared_expert_gate, n, h, 1,
                   true);
  }
  a.routing = MoeRouting::route(to_host<float>(a.logits.view(0, {moe_logits(c, n)})), n, RouterRule::of(c),
                                w.router_bias.defined() ? to_host<float>(w.router_bias) : std::vector<float>());
  a.routing.keep_experts(ctx.dims.first_expert, ctx.dims.experts);
  const std::int64_t grouped = a.routing.rows;  // this rank's
  upload(a.slots, a.routing.slots);
  upload(a.sources, a.routing.sources);
  upload(a.weights, a.routing.weights);
  if (a.row_keys.defined() && b.dropout != nullptr) {  // the grouped rows' dropout keys: their sources'
    std::vector<std::int64_t> keys(a.routing.sources.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      keys[i] = b.dropout->host_row_keys[static_cast<std::size_t>(a.routing.sources[i])];
    }
    upload(a.row_keys, keys);
  }
  const auto* sources = a.sources.data<std::int64_t>();
  if (in.x16.defined()) {
    k.gather_rows_bf16(a.x_bf16.bf16(), in.x16.bf16(), sources, grouped, h);
  } else {
    k.gather_rows(a.x.f32(), in.x.f32(), sources, grouped, h);
  }
  // A column-parallel product of expert e over its rows (x, x16; from grouped row `first`, the
  // shared expert's after them) into y / y16, with its adapter's term.
  const auto column_product = [&](std::size_t e, LoraTarget t, const Tensor& y, const Tensor& y16, std::int64_t first,
                                  std::int64_t rows, const Tensor& x, const Tensor& x16, const Tensor& m,
                                  const Tensor& m16, std::int64_t width) {
    linear_forward_into(ctx, y, y16, x, x16, m, m16, Tensor(), rows, h, width);
    if (!ad.adapts(e, t)) return;
    adapter_site_forward(ctx, ad.site(e, t, first, rows, h), la.lora_u32, x, x16, f32_or_null(y),
                         y16.defined() ? y16.bf16() : nullptr, rows, h, width);
  };
  const auto& experts = w.experts;
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    const Tensor x = block(a.x, first, rows, h), x16 = block(a.x_bf16, first, rows, h);
    column_product(e, LoraTarget::Gate, block(gate, first, rows, inter), block(gate16, first, rows, inter), first, rows,
                   x, x16, experts[e].gate_proj, expert16(w, e, &LayerWeights::Expert::gate_proj), inter);
    column_product(e, LoraTarget::Up, block(up, first, rows, inter), block(up16, first, rows, inter), first, rows, x,
                   x16, experts[e].up_proj, expert16(w, e, &LayerWeights::Expert::up_proj), inter);
  });
  // The shared expert over the n rows themselves, its buffers after the grouped rows'.
  const std::int64_t si = ctx.dims.shared_intermediate, at = grouped * inter;
  const LayerWeights::Expert &s = w.shared_expert, &s16 = w.bf16.shared_expert;
  const auto E_shared = static_cast<std::size_t>(E);
  if (shared) {
    column_product(E_shared, LoraTarget::Gate, rows_at(gate, at, n, si), rows_at(gate16, at, n, si), grouped, n, in.x,
                   in.x16, s.gate_proj, s16.gate_proj, si);
    column_product(E_shared, LoraTarget::Up, rows_at(up, at, n, si), rows_at(up16, at, n, si), grouped, n, in.x, in.x16,
                   s.up_proj, s16.up_proj, si);
  }
  const std::int64_t values = grouped * inter + n * si;  // (si: 0 without a shared expert)
  if (act16.defined()) {
    k.glu_forward_bf16(act16.bf16(), gate16.bf16(), up16.bf16(), values, c.activation);
  } else {
    k.glu_forward(act.f32(), gate.f32(), up.f32(), values, c.activation);
  }
  // down_proj of expert e over its act rows into a.y's rows from `first`, with its adapter's term.
  const auto down_product = [&](std::size_t e, std::int64_t first, std::int64_t rows, const Tensor& x,
                                const Tensor& x16, const Tensor& m, const Tensor& m16, std::int64_t width) {
    float* y = a.y.f32() + first * h;
    linear_forward(ctx, y, x, x16, m, m16, rows, width, h, true);
    if (ad.adapts(e, LoraTarget::Down)) {
      adapter_site_forward(ctx, ad.site(e, LoraTarget::Down, first, rows, width), la.lora_u32, x, x16, y, nullptr, rows,
                           width, h);
    }
  };
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    down_product(e, first, rows, block(act, first, rows, inter), block(act16, first, rows, inter), experts[e].down_proj,
                 expert16(w, e, &LayerWeights::Expert::down_proj), inter);
  });
  if (shared) {
    down_product(E_shared, grouped, n, rows_at(act, at, n, si), rows_at(act16, at, n, si), s.down_proj, s16.down_proj,
                 si);
  }
  k.moe_combine(out, a.y.f32(), a.slots.data<std::int64_t>(), a.weights.f32(), n, J, h);
}

void moe_backward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                  LayerWeights& g, const LayerWeights* adapters, const ColumnInput& in, const LayerActivations& la,
                  LayerGradScratch& ls, const float* dout, float* d_in) {
  const auto& k = ctx.k;
  const ModelConfig& c = ctx.config;
  const MoeActivations& a = la.moe;
  MoeGradScratch& s = ls.moe;
  const Tensor &gate = la.gate, &gate16 = la.gate_bf16, &up = la.up, &up16 = la.up_bf16;
  const Tensor &act = la.act, &act16 = la.act_bf16;
  const Tensor &d_act = ls.d_act, &d_gate = ls.d_gate, &d_up = ls.d_up, &dy16 = ls.dy_bf16;
  const std::int64_t n = b.rows, h = ctx.dims.hidden, inter = ctx.dims.intermediate, E = c.num_experts;
  const std::int64_t J = c.mlp_outputs(), grouped = a.routing.rows;
  const bool shared = c.shared_expert();
  const ExpertAdapters ad(ctx, b, layer, adapters, la);
  const auto* slots = a.slots.data<std::int64_t>();
  // d/d each output and d/d the weights, these summed over TP (each rank's y is partial).
  k.moe_combine_backward(s.dy.f32(), s.dweights.f32(), dout, a.y.f32(), slots, a.weights.f32(), n, J, h);
  if (ctx.tp.size() > 1) ctx.tp.all_reduce(s.dweights.f32(), static_cast<std::size_t>(n * J));
  std::vector<float> dlogits = a.routing.logits_grad(to_host<float>(s.dweights.view(0, {n * J})));
  if (b.router_balance_weight != 0.0f) a.routing.add_balance_grad(dlogits, b.router_balance_weight);
  if (b.router_z_weight != 0.0f) a.routing.add_z_grad(dlogits, b.router_z_weight);
  upload(s.dlogits, dlogits);

  // Expert e's (shared: E) product of target t over its rows: the matrix's backward (dW into g's
  // gradient where it has one: none in a frozen model, LoRA's base), then its adapter's.
  const auto product_backward = [&](std::size_t e, LoraTarget t, float* dx, float* dw, const float* dy, const Tensor& x,
                                    const Tensor& x16, const Tensor& m, const Tensor& m16, std::int64_t first,
                                    std::int64_t rows, std::int64_t width_in, std::int64_t width_out, bool accumulate) {
    linear_backward(ctx, dx, dw, dy, dy16, x, x16, m, m16, rows, width_in, width_out, accumulate);
    if (!ad.adapts(e, t)) return;
    const auto [da, db] = ad.grads(g, e, t, ls.lora_replicated);
    adapter_site_backward(ctx, ad.site(e, t, first, rows, width_in), da, db, dy, dy16, x, x16, ls.lora_du, ls.lora_du16,
                          dx, rows, width_in, width_out);
  };
  // The model's gradients of expert e's matrix `m`, or null (a frozen model's, LoRA's base).
  const auto grad = [&](std::size_t e, Tensor LayerWeights::Expert::*m) -> float* {
    return e < g.experts.size() ? f32_or_null(g.experts[e].*m) : nullptr;
  };
  const auto E_shared = static_cast<std::size_t>(E);
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    product_backward(e, LoraTarget::Down, d_act.f32() + first * inter, grad(e, &LayerWeights::Expert::down_proj),
                     s.dy.f32() + first * h, block(act, first, rows, inter), block(act16, first, rows, inter),
                     w.experts[e].down_proj, expert16(w, e, &LayerWeights::Expert::down_proj), first, rows, inter, h,
                     false);
  });
  const std::int64_t si = ctx.dims.shared_intermediate, at = grouped * inter;
  const LayerWeights::Expert &sw = w.shared_expert, &sw16 = w.bf16.shared_expert, &sg = g.shared_expert;
  if (shared) {
    product_backward(E_shared, LoraTarget::Down, d_act.f32() + at, f32_or_null(sg.down_proj), s.dy.f32() + grouped * h,
                     rows_at(act, at, n, si), rows_at(act16, at, n, si), sw.down_proj, sw16.down_proj, grouped, n, si,
                     h, false);
  }
  const std::int64_t values = grouped * inter + n * si;  // (si: 0 without a shared expert)
  if (act16.defined()) {
    k.glu_backward_bf16(d_gate.f32(), d_up.f32(), d_act.f32(), gate16.bf16(), up16.bf16(), values, c.activation);
  } else {
    k.glu_backward(d_gate.f32(), d_up.f32(), d_act.f32(), gate.f32(), up.f32(), values, c.activation);
  }
  for_each_expert(a.routing, [&](std::size_t e, std::int64_t first, std::int64_t rows) {
    const Tensor x = block(a.x, first, rows, h), x16 = block(a.x_bf16, first, rows, h);
    float* dx = s.dx.f32() + first * h;
    product_backward(e, LoraTarget::Gate, dx, grad(e, &LayerWeights::Expert::gate_proj), d_gate.f32() + first * inter,
                     x, x16, w.experts[e].gate_proj, expert16(w, e, &LayerWeights::Expert::gate_proj), first, rows, h,
                     inter, false);
    product_backward(e, LoraTarget::Up, dx, grad(e, &LayerWeights::Expert::up_proj), d_up.f32() + first * inter, x, x16,
                     w.experts[e].up_proj, expert16(w, e, &LayerWeights::Expert::up_proj), first, rows, h, inter, true);
  });
  if (shared) {
    float* dx = s.dx.f32() + grouped * h;
    product_backward(E_shared, LoraTarget::Gate, dx, f32_or_null(sg.gate_proj), d_gate.f32() + at, in.x, in.x16,
                     sw.gate_proj, sw16.gate_proj, grouped, n, h, si, false);
    product_backward(E_shared, LoraTarget::Up, dx, f32_or_null(sg.up_proj), d_up.f32() + at, in.x, in.x16, sw.up_proj,
                     sw16.up_proj, grouped, n, h, si, true);
  }
  k.moe_combine(d_in, s.dx.f32(), slots, nullptr, n, J, h);
  // The router and the shared expert's gate: their weights' gradients whole on every rank, their
  // input gradients on rank 0 alone.
  float* const d_in0 = ctx.tp.rank() == 0 ? d_in : nullptr;
  linear_backward(ctx, d_in0, f32_or_null(g.router), s.dlogits.f32(), dy16, in.x, in.x16, w.router, w.bf16.router, n, h,
                  E, true);
  if (w.shared_expert_gate.defined()) {
    linear_backward(ctx, d_in0, f32_or_null(g.shared_expert_gate), s.dlogits.f32() + n * E, dy16, in.x, in.x16,
                    w.shared_expert_gate, w.bf16.shared_expert_gate, n, h, 1, true);
  }
}

}  // namespace spin::model
