#include "model/transformer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/tp_regions.h"
#include "parallel/tp_mappings.h"

namespace spin::model {

namespace {
// The final norm's parameters and the LM head (with its bf16 copy and Phi's bias), as lm_head.h takes them.
HeadWeights head_weights(const ModelWeights& w) {
  return {{w.norm, w.norm_bias}, w.lm_head, w.lm_head_bf16, w.lm_head_bias};
}
}  // namespace

Transformer::Transformer(const ModelConfig& config, const TpDims& dims, const StageLayers& stage,
                         parallel::Communicator& tp, const kernels::Kernels& kernels)
    : config_(config),
      dims_(dims),
      stage_(stage),
      rope_(config.rotary_dim, config.max_sequence_length(), config.rope_theta, kernels.device(), config.rope_scaling),
      local_rope_(config.rope_local_theta ? std::optional<RopeTable>(std::in_place, config.rotary_dim,
                                                                      config.max_sequence_length(),
                                                                      *config.rope_local_theta, kernels.device())
                                          : std::nullopt),
      ctx_{config_, dims_, tp, kernels, rope_, local_rope_ ? &*local_rope_ : nullptr},
      expert_counts_(static_cast<std::size_t>(config.moe() ? config.num_layers * config.num_experts : 0), 0) {
  require(tp.size() == dims.size && tp.rank() == dims.rank, "the TP communicator (rank ",
          tp.rank(), " of ", tp.size(), ") does not match the model's TP layout (rank ",
          dims.rank, " of ", dims.size, ")");
}

std::int64_t Transformer::validate(const TokenBatch& batch) const {
  require(batch.num_seqs() >= 1, "empty batch");
  std::int64_t longest = 0;
  for (std::int64_t s = 0; s < batch.num_seqs(); ++s) {
    // The whole sequence's length, counting a cached prefix and, for a prompt prefilled in chunks,
    // the chunks to come.
    const std::int64_t extent = batch.extents.at(static_cast<std::size_t>(s));
    require(extent <= config_.max_sequence_length(), "sequence ", s, " has ", extent,
            " tokens; the model allows at most ", config_.max_sequence_length(),
            config_.max_sequence_length() < config_.max_position_embeddings
                ? " (rope_scaling's original_max_position_embeddings: past it dynamic NTK would take a larger "
                  "base, which spin does not implement)"
                : " (max_position_embeddings)");
    longest = std::max(longest, extent);
  }
  for (std::int64_t i = 0; i < batch.rows(); ++i) {
    const std::int32_t t = batch.tokens[static_cast<std::size_t>(i)];
    require(t >= 0 && t < config_.vocab_size, "token id ", t, " in sequence ",
            batch.sequence_of[static_cast<std::size_t>(i)], " is outside the vocabulary [0, ",
            config_.vocab_size, ")");
  }
  return longest;
}

BatchGeometry Transformer::geometry(const Activations& a) const {
  return BatchGeometry{a.batch.rows(),
                       a.batch.num_seqs(),
                       a.batch.cu_seqlens.data(),
                       a.arrays.positions,
                       a.arrays.rope_rows,
                       a.sequence_parallel ? &a.split : nullptr,
                       a.dropout.row_keys != nullptr ? &a.dropout : nullptr};
}

std::int64_t Transformer::boundary_rows(const TokenBatch& batch) const {
  return sequence_parallel() ? SequenceSplit::of(batch.rows(), ctx_.tp.size(), ctx_.tp.rank()).local : batch.rows();
}

void Transformer::start(const TokenBatch& batch, Activations& a, const BatchArrays::Generation& generation) const {
  const std::int64_t positions = validate(batch);
  if (local_rope_) local_rope_->cover(positions);
  // LongRoPE: the rows of a sequence longer than its switch read the long table.
  const std::int64_t switch_at = config_.long_rope_context();
  if (switch_at == 0 || positions <= switch_at) {
    rope_.cover(positions);
    a.batch = batch;
    a.arrays.upload(batch, device(), {}, generation);
    return;
  }
  rope_.cover(switch_at, positions);
  std::vector<std::int32_t> rows(batch.positions);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (batch.extents[static_cast<std::size_t>(batch.sequence_of[i])] > switch_at) {
      rows[i] = static_cast<std::int32_t>(rope_.long_row(rows[i]));
    }
  }
  a.batch = batch;
  a.arrays.upload(batch, device(), rows, generation);
}

ForwardResult Transformer::forward(const ModelWeights& w, const TokenBatch& batch) const {
  Activations acts;
  return forward(w, batch, acts, false);
}

void Transformer::check_stage_weights(const ModelWeights& w) const {
  require(static_cast<std::int64_t>(w.layers.size()) >= stage_.local + stage_.count(), "weights of ", w.layers.size(),
          " layers for a pipeline stage (chunk) of ", stage_.count(), " from local layer ", stage_.local);
  require(w.device() == device(), "weights on ", device_name(w.device()), " for kernels on ",
          device_name(device()));
}

void Transformer::check_adapters(const ModelWeights& w, const ModelWeights* adapters) const {
  if (adapters == nullptr) return;
  require(adapters->is_adapters() && adapters->layers.size() == w.layers.size() &&
              adapters->has_bf16() == w.has_bf16() && adapters->device() == w.device(),
          "LoRA adapters of another shard, precision or device than the model's weights");
}

void Transformer::stage_input(const ModelWeights& w, const Activations& a,
                              std::span<const float> input, float* x0) const {
  const BatchGeometry b = geometry(a);
  const std::int64_t n = b.residual_rows();
  const std::int64_t h = dims_.hidden;
  if (stage_.first) {
    // Vocab-parallel embedding, a row-parallel region: each rank fills the rows of the ids it
    // holds, zeros elsewhere.
    ctx_.k.embedding_forward(row_parallel_partial(b, x0), a.arrays.tokens, w.embed_tokens.f32(), b.rows, h,
                             dims_.vocab_start, dims_.vocab_valid, config_.embedding_scale(w.has_bf16()));
    reduce_row_parallel(ctx_, b, x0);
  } else {
    require(static_cast<std::int64_t>(input.size()) == n * h, "pipeline stage input has ",
            input.size(), " floats, expected ", n, " x ", h);
    copy_bytes(x0, device(), input.data(), device(), input.size_bytes());
  }
}

namespace {
// The set of buffers a training forward gives layer l of a stage whose first `recomputed` layers
// share one set: the others each have their own, after it.
std::size_t activation_slot(std::int64_t l, std::int64_t recomputed) {
  return static_cast<std::size_t>(recomputed > 0 ? std::max<std::int64_t>(l - recomputed + 1, 0) : l);
}
}  // namespace

void Transformer::run_layers(const ModelWeights& w, const BatchGeometry& b, Activations& a,
                             float* out, KvCache* cache, const KvCacheView& where) const {
  const std::int64_t layers = stage_.count(), recomputed = a.recomputed;
  for (std::int64_t l = 0; l < layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    // Without a backward one set serves every layer, each writing its output over its input.
    LayerActivations& la = a.layers[a.for_backward ? activation_slot(l, recomputed) : 0];
    if (l < recomputed) la.x_in = a.layer_inputs[li];  // kept for the backward's recomputation
    float* x_out = l + 1 == layers      ? out
                   : !a.for_backward    ? la.x_in.f32()
                   : l + 1 < recomputed ? a.layer_inputs[li + 1].f32()
                                        : a.layers[activation_slot(l + 1, recomputed)].x_in.f32();
    KvCacheView view = where;
    if (cache) {
      view.keys = cache->keys(l);
      view.values = cache->values(l);
      view.bf16 = cache->bf16();
      view.capacity = cache->capacity(l);
      view.cache_rows = where.cache_rows + cache->capacity_index(l) * static_cast<std::size_t>(b.rows);
    }
    decoder_layer_forward(ctx_, w.layers[weights_index(l)], stage_.begin + l, b, la, x_out, cache ? &view : nullptr,
                          adapters_of(a, l));
    if (a.for_backward && config_.moe_layer(stage_.begin + l)) {  // the mixture's load (take_expert_counts)
      const std::vector<std::int64_t>& counts = la.moe.routing.counts;
      const auto first = static_cast<std::size_t>((stage_.begin + l) * config_.num_experts);
      for (std::size_t e = 0; e < counts.size(); ++e) expert_counts_[first + e] += counts[e];
      router_losses_.balance += la.moe.routing.balance_loss();
      router_losses_.z += la.moe.routing.z_loss();
    }
  }
}

std::vector<std::int64_t> Transformer::take_expert_counts() const {
  std::vector<std::int64_t> counts(expert_counts_.size(), 0);
  counts.swap(expert_counts_);
  return counts;
}

RouterLosses Transformer::take_router_losses() const { return std::exchange(router_losses_, RouterLosses{}); }

ForwardResult Transformer::forward(const ModelWeights& w, const TokenBatch& batch,
                                   Activations& a, bool for_backward,
                                   std::span<const float> input, const ModelWeights* adapters) const {
  check_stage_weights(w);
  check_adapters(w, adapters);
  start(batch, a);
  a.adapters = adapters;
  const LoraConfig lora = adapters ? adapters->lora() : LoraConfig{};
  const std::int64_t n = batch.rows();
  const std::int64_t h = dims_.hidden;
  const bool mixed = w.has_bf16();
  a.sequence_parallel = sequence_parallel();
  if (a.sequence_parallel) {
    a.split = SequenceSplit::of(n, ctx_.tp.size(), ctx_.tp.rank());
    a.split.full = a.split_storage.carve(device(), {{a.split.padded, h}})[0];
    a.split.gathered = a.gathered_storage.carve(device(), {{a.split.padded, h}}, 1, mixed ? DType::BF16 : DType::F32)[0];
  }
  a.dropout = {};
  if (for_backward && lora.dropout > 0.0) {
    require(!batch.row_keys.empty(),
            "LoRA dropout: the training batch's sequences have no keys (model::Sequence::key)");
    a.dropout.p = static_cast<float>(lora.dropout);
    a.dropout.seed = batch.dropout_seed;
    a.dropout.row_keys = a.arrays.row_keys;
    a.dropout.host_row_keys = batch.row_keys;
    const Shape scratch{n, lora_widest_input(config_, lora, dims_)};
    a.dropout.x = a.dropout_storage.carve(device(), {scratch})[0];
    if (mixed) a.dropout.x16 = a.dropout_storage16.carve(device(), {scratch}, 1, DType::BF16)[0];
  }
  const BatchGeometry b = geometry(a);
  const std::int64_t probs_size =
      ctx_.k.attention_saved_size(b.cu_seqlens, b.num_seqs, dims_.heads, dims_.head_dim);
  a.for_backward = for_backward;
  a.recomputed = for_backward ? recomputed_layers() : 0;
  a.layers.resize(static_cast<std::size_t>(for_backward ? stage_.count() - a.recomputed + (a.recomputed > 0 ? 1 : 0)
                                                        : 1));
  // Without a backward one set of activations serves every layer, each writing its output over its input.
  const bool in_place = !for_backward;
  for (LayerActivations& la : a.layers) la.allocate(dims_, b, probs_size, device(), mixed, config_, in_place, lora);
  if (a.recomputed > 0) {
    std::vector<Shape> shapes(static_cast<std::size_t>(a.recomputed + 1), Shape{b.residual_rows(), h});
    a.layer_inputs = a.recompute_storage.carve(device(), shapes);
    a.recompute_output = a.layer_inputs.back();
    a.layer_inputs.pop_back();
  }
  if (stage_.last) {
    a.head.allocate(dims_, b, device(), mixed, logits_chunk_rows_);
  } else {
    a.stage_output = a.output_storage.carve(device(), {{b.residual_rows(), h}})[0];
  }
  stage_input(w, a, input, (a.recomputed > 0 ? a.layer_inputs[0] : a.layers[0].x_in).f32());
  run_layers(w, b, a, stage_.last ? a.head.x.f32() : a.stage_output.f32(), nullptr, {});

  ForwardResult r;
  if (!stage_.last) return r;
  lm_head_forward(ctx_, head_weights(w), b, a.arrays.targets, a.head);
  r.token_logprobs = to_host<float>(a.head.logprob);
  r.sequence_logprobs.assign(static_cast<std::size_t>(b.num_seqs), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto row = static_cast<std::size_t>(i);
    r.sequence_logprobs[static_cast<std::size_t>(batch.sequence_of[row])] +=
        batch.loss_mask[row] * r.token_logprobs[row];
  }
  return r;
}

void Transformer::forward_cached(const ModelWeights& w, const TokenBatch& batch,
                                 std::span<const std::int64_t> slots, KvCache& cache,
                                 Activations& a, std::span<const float> input,
                                 std::span<const std::int64_t> sampled, const ModelWeights* adapters) const {
  check_stage_weights(w);
  check_adapters(w, adapters);
  const std::int64_t n = batch.rows();
  const std::int64_t h = dims_.hidden;
  const std::int64_t num_seqs = batch.num_seqs();
  require(static_cast<std::int64_t>(slots.size()) == num_seqs, "forward_cached: ",
          slots.size(), " cache slots for ", num_seqs, " sequences");
  // Where every row goes in the cache (for each of its distinct capacities in turn: position p
  // at row slot x capacity + p mod capacity), where each sequence's rows start, and the last
  // rows of the sequences sampled from.
  const std::vector<std::int64_t>& capacities = cache.distinct_capacities();
  std::vector<std::int64_t> cache_rows(static_cast<std::size_t>(n) * capacities.size()), first(slots.size()), last;
  for (std::size_t i = 0; i < sampled.size(); ++i) {
    require(sampled[i] >= 0 && sampled[i] < num_seqs && (i == 0 || sampled[i] > sampled[i - 1]),
            "forward_cached: the sequences sampled from must be increasing indices below ", num_seqs);
    last.push_back(batch.cu_seqlens[static_cast<std::size_t>(sampled[i]) + 1] - 1);
  }
  for (std::int64_t s = 0; s < num_seqs; ++s) {
    const auto si = static_cast<std::size_t>(s);
    require(slots[si] >= 0 && slots[si] < cache.slots(), "cache slot ", slots[si],
            " outside a cache of ", cache.slots());
    const auto begin = static_cast<std::size_t>(batch.cu_seqlens[si]);
    const auto end = static_cast<std::size_t>(batch.cu_seqlens[si + 1]);
    first[si] = batch.positions[begin];
    for (std::size_t i = begin; i < end; ++i) {
      require(batch.positions[i] < cache.positions(), "position ", batch.positions[i], " beyond the KV cache's ",
              cache.positions(), " positions");
    }
    // A windowed layer's ring holds the window and a call's rows: the keys this call reads there.
    const auto rows = static_cast<std::int64_t>(end - begin);
    for (std::int64_t l = 0; l < stage_.count(); ++l) {
      const std::int64_t reads = first[si] + rows - config_.attention_scores(stage_.begin + l).first_key(first[si]);
      require(reads <= cache.capacity(l), "a model call feeds sequence ", s, " ", rows, " tokens from position ",
              first[si], ", which read ", reads, " cached positions of layer ", stage_.begin + l, ", which keeps ",
              cache.capacity(l), " (the KV cache was sized for fewer tokens a call)");
    }
    for (std::size_t c = 0; c < capacities.size(); ++c) {
      for (std::size_t i = begin; i < end; ++i) {
        cache_rows[c * static_cast<std::size_t>(n) + i] =
            slots[si] * capacities[c] + batch.positions[i] % capacities[c];
      }
    }
  }
  start(batch, a, {cache_rows, last});
  a.sequence_parallel = false;  // generation's rows are few: not worth splitting
  a.dropout = {};
  a.adapters = adapters;
  const BatchGeometry b = geometry(a);
  a.for_backward = false;
  a.recomputed = 0;
  a.layers.resize(1);
  a.layers[0].allocate(dims_, b, 0, device(), w.has_bf16(), config_, true, adapters ? adapters->lora() : LoraConfig{},
                       true);
  a.stage_output = a.output_storage.carve(device(), {{n, h}})[0];
  stage_input(w, a, input, a.layers[0].x_in.f32());
  // The layer's keys, values, capacity and rows of the cache come in run_layers.
  const KvCacheView where{nullptr, nullptr, cache.bf16(), 0, a.arrays.cache_rows, slots.data(), first.data()};
  run_layers(w, b, a, a.stage_output.f32(), &cache, where);
  if (!stage_.last || last.empty()) return;

  // Only a sampled sequence's last row needs logits: the next token's distribution.
  const auto heads = static_cast<std::int64_t>(last.size());
  const BatchGeometry last_rows{heads, heads, nullptr, nullptr};
  a.head.allocate(dims_, last_rows, device(), w.has_bf16());
  ctx_.k.gather_rows(a.head.x.f32(), a.stage_output.f32(), a.arrays.last_rows, heads, h);
  lm_head_logits(ctx_, head_weights(w), last_rows, a.head);
}

void Transformer::backward(const ModelWeights& w, Activations& a, std::span<const float> grad, ModelWeights& grads,
                           const std::function<void(std::int64_t layer)>& layer_done, float router_loss_weight) const {
  const TokenBatch& batch = a.batch;
  require(a.for_backward, "backward needs the activations of a forward with for_backward");
  BatchGeometry b = geometry(a);
  const float per_layer = router_loss_weight / static_cast<float>(std::max<std::int64_t>(config_.moe_layers(), 1));
  b.router_balance_weight = config_.router_aux_loss_coef * per_layer;
  b.router_z_weight = config_.router_z_loss_coef * per_layer;
  const std::int64_t n = b.rows;
  const std::int64_t h = dims_.hidden;
  a.grad.allocate(dims_, b, device(), w.has_bf16(), config_, a.adapters ? a.adapters->lora() : LoraConfig{});
  float* dx = a.grad.d_residual.f32();
  require((a.adapters != nullptr) == grads.is_adapters(),
          a.adapters ? "a backward through LoRA adapters takes their gradients"
                     : "the LoRA adapters' gradients need a forward with the adapters");

  if (stage_.last) {
    require(static_cast<std::int64_t>(grad.size()) == batch.num_seqs(), "backward got ",
            grad.size(), " sequence gradients for ", batch.num_seqs(), " sequences");
    std::vector<float> dlogprob(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const auto row = static_cast<std::size_t>(i);
      dlogprob[row] = batch.loss_mask[row] * grad[static_cast<std::size_t>(batch.sequence_of[row])];
    }
    copy_bytes(a.head.dlogprob.raw(), device(), dlogprob.data(), Device::Cpu,
               a.head.dlogprob.nbytes());
    // With adapters the final norm and the head are frozen: the norm's weight gradient goes to a
    // scratch nothing reads, the head's is not computed.
    const NormParams norm_grad{grads.norm.defined() ? grads.norm : a.grad.frozen_norm, grads.norm_bias};
    lm_head_backward(ctx_, head_weights(w), b, norm_grad, grads.lm_head, grads.lm_head_bias, a.arrays.targets, a.head,
                     a.grad.d_residual);
  } else {
    require(static_cast<std::int64_t>(grad.size()) == b.residual_rows() * h,
            "pipeline stage output gradient has ", grad.size(), " floats, expected ", b.residual_rows(), " x ", h);
    copy_bytes(dx, device(), grad.data(), device(), grad.size_bytes());
  }
  for (std::int64_t l = stage_.count() - 1; l >= 0; --l) {
    const auto li = static_cast<std::size_t>(l);
    const std::size_t wi = weights_index(l);
    LayerActivations& la = a.layers[activation_slot(l, a.recomputed)];
    // Recomputation: this layer's activations again, from its kept input -- but for the last
    // recomputed layer, whose are still in the shared set from the forward.
    if (l + 1 < a.recomputed) {
      la.x_in = a.layer_inputs[li];
      decoder_layer_forward(ctx_, w.layers[wi], stage_.begin + l, b, la, a.recompute_output.f32(), nullptr,
                            adapters_of(a, l));
    }
    decoder_layer_backward(ctx_, w.layers[wi], grads.layers[wi], stage_.begin + l, b, la, a.grad, dx,
                           adapters_of(a, l));
    if (layer_done) layer_done(static_cast<std::int64_t>(wi));
  }
  if (!stage_.first || !grads.embed_tokens.defined()) return;  // dx is input_grad() for the previous stage
  // The embedding's rows come out of a row-parallel region: each rank scatters the gradient
  // of every row (dx, or under a split the rows all-gathered) into the vocabulary rows it holds.
  ctx_.k.embedding_backward(grads.embed_tokens.f32(), a.arrays.tokens, row_parallel_grad(ctx_, b, dx), n, h,
                            dims_.vocab_start, dims_.vocab_valid, config_.embedding_scale(w.has_bf16()));
}

}  // namespace spin::model

namespace spin::model {

std::span<const float> Transformer::input_grad(const Activations& saved) const {
  require(!stage_.first, "the first pipeline stage has no input gradient");
  const Tensor& d = saved.grad.d_residual;
  return {d.f32(), static_cast<std::size_t>(d.numel())};
}

StageTransformers::StageTransformers(const ModelConfig& config, const TpDims& dims, std::span<const StageLayers> chunks,
                                     parallel::Communicator& tp, const kernels::Kernels& kernels) {
  for (const StageLayers& chunk : chunks) {
    owned_.push_back(std::make_unique<Transformer>(config, dims, chunk, tp, kernels));
    chunks_.push_back(owned_.back().get());
  }
}

void StageTransformers::set_recompute_activations(bool on, std::int64_t layers) {
  for (const auto& t : owned_) t->set_recompute_activations(on, layers);
}
void StageTransformers::set_sequence_parallel(bool on) {
  for (const auto& t : owned_) t->set_sequence_parallel(on);
}
void StageTransformers::set_logits_chunk_rows(std::int64_t rows) {
  for (const auto& t : owned_) t->set_logits_chunk_rows(rows);
}

}  // namespace spin::model
