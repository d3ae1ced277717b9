// Transformer: a Llama-family causal LM on this rank's tensor-parallel shard of one pipeline
// stage, on the device of its kernels (weights, activations, caches and the stage input/output
// spans live there; batches, results and per-sequence gradients are host data). On the last stage forward() returns, per token, log p(next token) and, per sequence,
// the sum over its response tokens; backward() turns d loss / d (sequence sums) into every
// parameter gradient. Other stages take and give hidden states [rows, hidden] instead
// (Activations::stage_output forward, input_grad() backward). Explicit forward and backward
// per layer (decoder_layer.h, lm_head.h); no autograd. Results are identical on all ranks of the
// TP group and, up to float rounding, equal for every TP and PP layout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/context.h"
#include "model/decoder_layer.h"
#include "model/kv_cache.h"
#include "model/lm_head.h"
#include "model/rope.h"
#include "model/stage.h"
#include "model/tp_dims.h"
#include "model/weights.h"
#include "parallel/communicator.h"

namespace spin::model {

struct ForwardResult {
  std::vector<float> token_logprobs;     // per row of the batch; 0 at each sequence's last token
  std::vector<float> sequence_logprobs;  // per sequence: sum of token_logprobs * loss_mask
};

// Everything a backward needs from its forward, and the buffers of both. Keep one Activations
// per role (policy training, reference scoring) and pass it to every call: buffers are reused
// across calls and reallocated only when a batch is larger than any before.
struct Activations {
  TokenBatch batch;
  BatchArrays arrays;  // the batch's per-row arrays on the kernels' device
  // The LoRA adapters the forward ran with (null: none); the backward differentiates the same.
  const ModelWeights* adapters = nullptr;
  bool for_backward = false;
  // How many layers, the stage's first, keep only their input (layer_inputs) and share layers[0],
  // their other activations recomputed in the backward.
  std::int64_t recomputed = 0;
  std::vector<LayerActivations> layers;  // every kept layer's (after the recomputed layers' one shared set)
  // Activation recomputation: the input of every recomputed layer ([rows, hidden] each) and the
  // recomputed forward's throwaway output.
  std::vector<Tensor> layer_inputs;
  Tensor recompute_output;
  Workspace recompute_storage;
  HeadActivations head;                  // last stage only
  Tensor stage_output;  // [rows, hidden]: output for the next stage (not on the last, unless
                        // generating)
  // Sequence parallelism: how this batch's rows are split (its scratch in split_storage and
  // gathered_storage).
  bool sequence_parallel = false;
  SequenceSplit split;
  Workspace split_storage, gathered_storage;
  // LoRA's dropout in a training forward (inactive: row_keys null) and its scratch.
  AdapterDropout dropout;
  Workspace dropout_storage, dropout_storage16;
  LayerGradScratch grad;                 // backward scratch; d_residual ends as input_grad()
  Workspace output_storage;

  // Bytes of every buffer above but the batch's (what spin plan's activation figures count).
  std::size_t bytes() const {
    std::size_t total = head.bytes() + grad.bytes() + output_storage.bytes() + recompute_storage.bytes() +
                        split_storage.bytes() + gathered_storage.bytes() + dropout_storage.bytes() +
                        dropout_storage16.bytes();
    for (const LayerActivations& l : layers) total += l.bytes();
    return total;
  }
};

// How many of a stage's `stage_layers` a training forward recomputes: none without
// recomputation (`on` false), else the first `layers` (0: every one) -- the rule Transformer and
// spin plan (train/memory_plan.h) share.
inline std::int64_t recomputed_layers(bool on, std::int64_t layers, std::int64_t stage_layers) {
  return !on ? 0 : layers > 0 ? std::min(layers, stage_layers) : stage_layers;
}

class Transformer {
 public:
  Transformer(const ModelConfig& config, const TpDims& dims, const StageLayers& stage,
              parallel::Communicator& tp, const kernels::Kernels& kernels);
  // The whole model on one stage.
  Transformer(const ModelConfig& config, const TpDims& dims, parallel::Communicator& tp,
              const kernels::Kernels& kernels)
      : Transformer(config, dims, StageLayers::whole(config.num_layers), tp, kernels) {}
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  const ModelConfig& config() const { return config_; }
  const TpDims& dims() const { return dims_; }
  const kernels::Kernels& kernels() const { return ctx_.k; }
  // Where weights, activations and caches must live: the kernels' device.
  Device device() const { return ctx_.k.device(); }
  const StageLayers& stage() const { return stage_; }
  // Bytes of the RoPE tables, as grown so far (spin plan counts them for its sequence length).
  std::size_t rope_bytes() const { return rope_.bytes() + (local_rope_ ? local_rope_->bytes() : 0); }

  // Full activation recomputation (Megatron's --recompute-granularity full, every layer): a
  // forward for a backward keeps only each layer's input; backward() runs each layer's forward
  // again, into one shared set of buffers, right before its backward (not the last layer's,
  // whose activations that set still holds from the forward). The same gradients
  // bitwise (the forward is deterministic), for one more forward's compute and its TP
  // all-reduces; per micro-batch a layer keeps [rows, hidden] floats instead of all its
  // activations. With `layers` > 0 only the stage's first `layers` layers are recomputed
  // (Megatron's --recompute-method block --recompute-num-layers); the others keep all their
  // activations: memory and compute between none and all.
  void set_recompute_activations(bool on, std::int64_t layers = 0) {
    recompute_ = on;
    recompute_layers_ = layers;
  }
  bool recompute_activations() const { return recompute_; }
  // How many of the stage's layers a training forward recomputes (0 without recomputation).
  std::int64_t recomputed_layers() const {
    return model::recomputed_layers(recompute_, recompute_layers_, stage_.count());
  }

  // Sequence parallelism (Megatron's --sequence-parallel) for forward() and backward(): outside
  // the tensor-parallel regions each TP rank holds 1/tp of the batch's rows (SequenceSplit), so
  // the residual stream, the norms and their statistics, what a stage passes to the next and
  // recomputation's kept inputs shrink by tp; each TP all-reduce becomes a reduce-scatter plus
  // an all-gather (the same bytes), and the norms' weight gradients are all-reduced. The same
  // results up to float rounding. Generation (forward_cached) does not split its rows. No
  // effect at tp 1.
  void set_sequence_parallel(bool on) { sequence_parallel_ = on; }
  bool sequence_parallel() const { return sequence_parallel_ && ctx_.tp.size() > 1; }
  // Logits in chunks of `rows` rows (0: all at once) on the last stage, each chunk's again in the
  // backward (model/lm_head.h): for a large vocabulary, [rows, vocab / tp] floats become
  // [chunk, vocab / tp] for one more head product. The same results up to float rounding.
  void set_logits_chunk_rows(std::int64_t rows) { logits_chunk_rows_ = rows; }

  // Rows of the hidden states this stage takes from the previous stage and gives to the next
  // for `batch` (times hidden floats): all of them, or under sequence parallelism this rank's.
  std::int64_t boundary_rows(const TokenBatch& batch) const;

  // Runs this stage on `batch`. The first stage embeds the tokens; any other reads `input`, the
  // previous stage's output (boundary_rows(batch) x hidden floats). The last stage returns the log-probabilities;
  // any other leaves its output in acts.stage_output and returns an empty result. With
  // `for_backward` the activations of every layer stay in `acts` for backward(); without, one
  // set of buffers is reused layer after layer (scoring). Throws spin::Error for token ids
  // outside the vocabulary or sequences longer than the model allows. With `adapters`
  // (ModelWeights::adapters of the same shard) the model is weights + LoRA adapters: the
  // backward then computes the adapters' gradients alone, the weights frozen.
  ForwardResult forward(const ModelWeights& weights, const TokenBatch& batch, Activations& acts,
                        bool for_backward, std::span<const float> input = {},
                        const ModelWeights* adapters = nullptr) const;
  // Scoring with buffers of its own.
  ForwardResult forward(const ModelWeights& weights, const TokenBatch& batch) const;

  // Generation. Each sequence of `batch` holds new tokens continuing a prefix already in `cache`
  // at slot slots[s] (Sequence::position = the prefix's length; 0 for a prompt's prefill). Runs
  // this stage, appending the new keys and values to the cache. The first stage embeds, the
  // others read `input`; every stage leaves its output rows in acts.stage_output, and the last
  // stage leaves in acts.head.logits [sampled.size(), vocab_rows] this rank's shard of the
  // logits of the last row of each sequence listed in `sampled` (indices into the batch, in
  // increasing order) -- the next token's distribution; a prompt prefilled in chunks needs none
  // until its last chunk. With `adapters`, as forward()'s.
  void forward_cached(const ModelWeights& weights, const TokenBatch& batch,
                      std::span<const std::int64_t> slots, KvCache& cache, Activations& acts,
                      std::span<const float> input, std::span<const std::int64_t> sampled,
                      const ModelWeights* adapters = nullptr) const;

  // Accumulates into `grads` the gradient of the loss -- with the forward's adapters, into the
  // adapters' gradients (`grads` of their layout), else into the weights'. `grad` is, on the last stage, d loss /
  // d sequence_logprobs (one per sequence); on any other, d loss / d stage_output (boundary rows x hidden
  // floats). Consumes `saved` (the logits buffer is reused for their gradient). Afterwards, on
  // every stage but the first, input_grad(saved) holds d loss / d input for the previous stage.
  // `layer_done(l)`, when given, is called as soon as this call has finished accumulating into
  // the gradients of local layer l (the index in grads.layers; last layer first): the hook that lets
  // the data-parallel reduction of a finished layer overlap the backward of the layers below.
  // A mixture of experts training its router losses (ModelConfig::router_aux_loss_coef,
  // router_z_loss_coef): `router_loss_weight` is d loss / d this micro-batch's router losses --
  // each the mean over the model's layers of each layer's (MoeRouting::balance_loss, z_loss), times
  // its coefficient --, the trainer's share of the micro-batch in the step; 0 leaves them out.
  void backward(const ModelWeights& weights, Activations& saved, std::span<const float> grad, ModelWeights& grads,
                const std::function<void(std::int64_t layer)>& layer_done = {}, float router_loss_weight = 0.0f) const;
  std::span<const float> input_grad(const Activations& saved) const;

  // A mixture of experts: how many rows each (layer, expert) took in the forwards for a backward
  // (training's, not scoring's or generation's, nor recomputation's repeats) since the last call --
  // [num_layers, experts] over the whole model, zeros outside this stage's layers -- and resets the
  // count. Empty for a dense model.
  std::vector<std::int64_t> take_expert_counts() const;
  // The same forwards' router losses (MoeRouting::balance_loss, z_loss), summed over this stage's
  // layers and the forwards, without the coefficients; resets the sums. 0 for a dense model.
  RouterLosses take_router_losses() const;

 private:
  // Checks the batch's positions and tokens; returns its longest sequence's end (positions used).
  std::int64_t validate(const TokenBatch& batch) const;
  void check_stage_weights(const ModelWeights& weights) const;
  void check_adapters(const ModelWeights& weights, const ModelWeights* adapters) const;
  // Validates `batch` and makes it acts' batch, its arrays (with generation's) on the device in one copy.
  void start(const TokenBatch& batch, Activations& acts, const BatchArrays::Generation& generation = {}) const;
  // Fills x0 with the stage's input: the embedded tokens (first stage) or `input`.
  void stage_input(const ModelWeights& weights, const Activations& acts,
                   std::span<const float> input, float* x0) const;
  // Runs this stage's layers from a.layers[0].x_in to `out`, through `cache` when given.
  void run_layers(const ModelWeights& weights, const BatchGeometry& b, Activations& a,
                  float* out, KvCache* cache, const KvCacheView& where) const;
  // Where this stage's (chunk's) layer l sits in its ModelWeights::layers (after an earlier chunk's).
  std::size_t weights_index(std::int64_t l) const { return static_cast<std::size_t>(stage_.local + l); }
  // The adapters of this stage's layer l in a's forward (null: none).
  const LayerWeights* adapters_of(const Activations& a, std::int64_t l) const {
    return a.adapters ? &a.adapters->layers[weights_index(l)] : nullptr;
  }
  BatchGeometry geometry(const Activations& acts) const;

  const ModelConfig& config_;
  TpDims dims_;
  StageLayers stage_;
  // Grown by start() to the longest sequence seen (a cache of a function of the position: const
  // calls may fill it).
  mutable RopeTable rope_;
  mutable std::optional<RopeTable> local_rope_;  // Gemma 3's windowed layers'
  ModelContext ctx_;
  mutable std::vector<std::int64_t> expert_counts_;  // take_expert_counts()'s
  mutable RouterLosses router_losses_;               // take_router_losses()'s
  bool recompute_ = false;
  std::int64_t recompute_layers_ = 0;  // 0: every layer of the stage
  bool sequence_parallel_ = false;
  std::int64_t logits_chunk_rows_ = 0;
};

// A pipeline stage's Transformers, one a model chunk, in model order (one without interleaving:
// model::stage_chunks); each runs its chunk's layers of the stage's one ModelWeights.
using TransformerChunks = std::vector<const Transformer*>;

// Owns a stage's Transformers, one a chunk of `chunks`, the settings applied to every one.
class StageTransformers {
 public:
  StageTransformers(const ModelConfig& config, const TpDims& dims, std::span<const StageLayers> chunks,
                    parallel::Communicator& tp, const kernels::Kernels& kernels);
  const TransformerChunks& chunks() const { return chunks_; }
  Transformer& front() { return *owned_.front(); }  // the first chunk's (the only one without interleaving)
  void set_recompute_activations(bool on, std::int64_t layers = 0);
  void set_sequence_parallel(bool on);
  void set_logits_chunk_rows(std::int64_t rows);

 private:
  std::vector<std::unique_ptr<Transformer>> owned_;
  TransformerChunks chunks_;
};

}  // namespace spin::model
