// A mixture of experts in place of a decoder layer's MLP (ModelConfig::moe: the sparse MoE block of
// Mixtral, Qwen3-MoE and OLMoE), over the n rows of the MLP's input x (its norm's output, gathered
// under sequence parallelism):
//   logits = x router^T [n, experts];  p = softmax(logits), float32;
//   each row's experts_per_token (k) most probable experts e_j, ties to the smaller index, weighted
//   w_j = p_{e_j} -- divided by their sum where norm_topk_prob --;
//   out = sum_j w_j expert_{e_j}(x),  expert(x) = down(act(gate(x)) * up(x)),
//   + sigmoid(x . shared_gate) shared(x) where the mixture has a shared expert (Qwen2-MoE's:
//   ModelConfig::shared_expert), an MLP of its own width every row goes through -- GLM-4.5's
//   ungated: + shared(x).
// GLM-4.5's sigmoid router (ModelConfig::router_sigmoid) scores s = sigmoid(logits) instead, picks
// the k largest s + bias (the files' e_score_correction_bias) within the chosen groups of experts,
// and weighs w_j = scale s_{e_j} (/ their sum where norm_topk_prob); RouterRule below. DeepSeek-V2's
// softmax router weighs w_j = scale p_{e_j}, its choice (group_limited_greedy) within the groups with the
// largest best probabilities.
// Under TP every expert is split as a dense MLP is (gate and up by rows, down by columns) and the
// router is replicated: each rank routes every row, runs its share of the chosen experts and
// writes partial sums, which the layer reduces as it does a dense MLP's (one all-reduce, or under
// sequence parallelism one reduce-scatter). Dropless, as transformers' Mixtral: every row goes to
// its k experts whatever their load. Under expert parallelism (tp_dims' expert_parallel: TpDims) a rank
// holds 1/expert_parallel of the experts, each split over expert_tp ranks: it runs only the rows chosen
// for its experts (every rank has every row: no dispatch), and its partial sums leave out the rest --
// which the same reduction adds. The join skips the outputs another rank computes (slot -1).
//
// The routing is decided on the host: the experts' products need each expert's row count there to
// size their GEMMs, so the [n, experts] logits come back once a layer forward (a device sync on a
// GPU; the backward returns the [n, k] weight gradients the same way). The rows are gathered into
// one buffer grouped by expert ([n k, hidden]: each row once per chosen expert, rows ascending
// within an expert), each expert's products run over its block, and the outputs are joined
// weighted (Kernels::moe_combine). A shared expert's rows follow the grouped ones in its buffers
// (the MLP's n rows as they are: its products read the input itself), and the join takes it as
// each row's last output, weighted by its gate -- whose logits come back with the router's.
//
// Backward: d w_j = dout . expert_{e_j}(x) (partial sums over TP: all-reduced, [n, k], with the
// shared expert's [n, k + 1]), through the top-k softmax (and the shared gate's sigmoid) to the
// logits (host), the router's (and shared gate's) weight gradient dlogits^T x, complete on every
// rank; the input gradient the experts' (gathered back per row) plus dlogits router -- that one
// added on TP rank 0 alone, since the layer sums the column-parallel input gradient over TP.
#pragma once

#include <cstdint>
#include <vector>

#include "model/context.h"
#include "model/tp_regions.h"
#include "model/weights.h"

namespace spin::model {

// How a layer's router scores, picks and weighs its experts (ModelConfig's, RouterRule::of).
struct RouterRule {
  std::int64_t experts = 0;
  std::int64_t k = 0;              // experts a row
  bool normalize = false;          // norm_topk_prob: the weights renormalised over the chosen
  bool shared = false;             // a shared expert's output after the chosen ones
  bool shared_gated = true;        // ... weighted by sigmoid of its gate's logit (after the experts'); else 1
  bool sigmoid = false;            // GLM-4.5's scores, choice by score + bias, within groups (else softmax's)
  float scale = 1.0f;              // routed_scaling_factor
  std::int64_t groups = 1;         // n_group: equal groups of experts
  std::int64_t groups_chosen = 1;  // topk_group: those a row's experts come from

  static RouterRule of(const ModelConfig& c);
};

// One forward's routing, on the host. Each row's outputs are its k experts' and, with a shared
// expert, that one's last: `outputs` (k or k + 1) a row.
struct MoeRouting {
  std::vector<float> probs;           // [n, experts]: softmax of the router's logits (the router losses')
  std::vector<float> scores;          // [n, experts]: a sigmoid router's scores, empty otherwise
  std::vector<std::int64_t> experts;  // [n, k]: each row's experts, most probable first
  std::vector<float> weights;         // [n, outputs]: their weights, then the shared expert's gate
  std::vector<std::int64_t> counts;   // [experts]: rows each expert takes
  std::vector<std::int64_t> slots;    // [n, outputs]: where each output sits: the grouped rows, then the shared
  std::vector<std::int64_t> sources;  // [n k]: the row each grouped row comes from
  std::vector<float> lse;             // [n]: log-sum-exp of each row's router logits (the z-loss's)
  std::int64_t k = 0;
  std::int64_t outputs = 0;
  RouterRule rule;
  // The experts whose rows `slots` and `sources` lay out (keep_experts): all of them, or under expert
  // parallelism this rank's [first_expert, first_expert + held), whose grouped rows are `rows` in all.
  std::int64_t first_expert = 0;
  std::int64_t held = 0;
  std::int64_t rows = 0;

  // Routes n rows of `logits` ([n, experts], then with a gated shared expert its gate's [n]) to
  // their k experts by `rule`; `bias` ([experts]): a sigmoid router's correction bias.
  static MoeRouting route(const std::vector<float>& logits, std::int64_t n, const RouterRule& rule,
                          const std::vector<float>& bias = {});
  // Lays out the grouped rows of experts [first, first + count) alone (expert parallelism: this rank's,
  // TpDims): `sources` becomes theirs, `slots` their outputs' places among them, -1 for an output another
  // rank computes, and the shared expert's rows follow them. Routing, weights and counts stay whole.
  void keep_experts(std::int64_t first, std::int64_t count);
  // d loss / d logits (route's layout) from d loss / d weights ([n, outputs]).
  std::vector<float> logits_grad(const std::vector<float>& dweights) const;

  // The router's load-balancing loss over these n rows (Switch Transformer's, as transformers'
  // load_balancing_loss_func and Megatron's switch_load_balancing_loss_func form it): experts x
  // sum_e f_e P_e, f_e the fraction of rows routed to e (each row counted once per chosen expert,
  // so the f_e sum to k) and P_e the mean probability of e; k where routing is uniform.
  double balance_loss() const;
  // Adds `weight` x d balance_loss / d logits to `dlogits` (route's layout: the router's [n,
  // experts] first); f, the counts, is constant, as in both frameworks.
  void add_balance_grad(std::vector<float>& dlogits, float weight) const;
  // ST-MoE's router z-loss over these rows (Megatron's z_loss_func): the mean of each row's
  // squared log-sum-exp of the router's logits, which keeps the logits small.
  double z_loss() const;
  // Adds `weight` x d z_loss / d logits: 2 lse_i p_im / n.
  void add_z_grad(std::vector<float>& dlogits, float weight) const;
};

// The router's auxiliary losses of a layer or a model: MoeRouting::balance_loss and z_loss.
struct RouterLosses {
  double balance = 0.0;
  double z = 0.0;
};

// d loss / d a layer's router losses.
struct RouterLossWeights {
  float balance = 0.0f;
  float z = 0.0f;
};

// The buffers of one layer's forward, kept for its backward (LayerActivations::moe). gate, up and
// act of the experts are LayerActivations' own: [n k, intermediate], then a shared expert's
// [n, shared intermediate] (TpDims::mlp_values). j: the outputs a row (ModelConfig::mlp_outputs).
struct MoeActivations {
  Tensor logits;     // [n, experts] float32, then a gated shared expert's gate's [n]
  Tensor x, x_bf16;  // [n k, hidden]: the grouped rows, float32 or in mixed precision bf16 alone
  Tensor y;          // [n j, hidden], float32: each output (down_proj's partial sums), the shared expert's last
  Tensor weights;    // [n j], float32
  Tensor slots;      // int64 [n j]
  Tensor sources;    // int64 [n k]
  Tensor row_keys;   // int64 [n k]: the grouped rows' dropout keys (LoRA's dropout of the experts' adapters)
  MoeRouting routing;
};

// The backward's buffers (LayerGradScratch::moe): d/d y and d/d x of the outputs' rows, d/d the
// weights, d/d the logits (the shapes of MoeActivations').
struct MoeGradScratch {
  Tensor dy, dx, dweights, dlogits;
};

struct LayerActivations;
struct LayerGradScratch;

// out (the row-parallel partial sums, b.rows rows of hidden) = the mixture over `in`'s rows, into
// the layer's buffers `a` (its MLP buffers gate, up, act and their bf16, a.moe). `adapters`: the
// layer's LoRA adapters (ModelWeights::adapters, or null), whose experts' -- where the adapters
// target the MLP -- add their terms to every expert's products (and the shared expert's), keeping
// their u in a.lora_u's rows of the grouped rows; the router is never adapted. `layer`: the layer's
// global index (LoRA's dropout masks).
void moe_forward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                 const LayerWeights* adapters, const ColumnInput& in, LayerActivations& a, float* out);

// From dout (d loss / d the reduced output, b.rows rows): d_in (= the experts' input gradient, and
// on TP rank 0 + the router's), and the gradients into g's defined tensors: the model's (none for a
// frozen model: LoRA's base), or with `adapters` the adapters' (their replicated factors' partial
// sums in s.lora_replicated, as the layer's own). s: the layer's scratch (d_act, d_gate, d_up the
// MLP buffers' size, dy_bf16, s.moe). b.router_balance_weight, b.router_z_weight: d loss / d this
// layer's auxiliary losses (MoeRouting's balance_loss and z_loss; 0: not trained).
void moe_backward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                  LayerWeights& g, const LayerWeights* adapters, const ColumnInput& in, const LayerActivations& a,
                  LayerGradScratch& s, const float* dout, float* d_in);

}  // namespace spin::model
