#include "train/pipeline_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <numeric>
#include <span>

#include "core/error.h"
#include "core/profile.h"
#include "parallel/pipeline_schedule.h"

namespace spin::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Adds the lifetime of the object to a total.
class Timer {
 public:
  explicit Timer(double& total) : total_(total), start_(Clock::now()) {}
  ~Timer() { total_ += seconds_between(start_, Clock::now()); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

 private:
  double& total_;
  Clock::time_point start_;
};

// The model as a pipeline stage of one Transformer a model chunk: a micro-batch takes a set of
// activation buffers from a pool at its forward through a chunk and gives it back at the chunk's
// backward; a pool grows to the most micro-batches in flight at once that take from it (1F1B:
// min(pp - stage, m)), and its sets keep their buffers from step to step. Under interleaving the
// model's last chunk (the head's logits) has a pool of its own, the other chunks share one --
// the interleaved schedule's warm-up + 1 sets at most, each a chunk's layers, where a pool a
// chunk would hold more. Each chunk runs its backwards in micro-batch order, so during its last
// one each of its layers' gradients become final one after another: the optimizer starts their
// DP reduction right then.
class ModelStage final : public parallel::PipelineStage {
 public:
  ModelStage(const model::TransformerChunks& chunks, const model::ModelWeights& weights,
             const model::ModelWeights* adapters, model::ModelWeights& grads,
             const std::vector<model::TokenBatch>& micro_batches, SequenceLoss& loss,
             std::vector<std::deque<model::Activations>>& pools, Optimizer& optimizer, float router_loss_weight)
      : chunks_(chunks),
        w_(weights),
        adapters_(adapters),
        g_(grads),
        batches_(micro_batches),
        loss_(loss),
        pools_(pools),
        free_(pools.size()),
        optimizer_(optimizer),
        dsums_(micro_batches.size()),
        router_loss_weight_(router_loss_weight) {
    for (std::size_t c = 0; c < pools.size(); ++c) {
      for (std::size_t i = pools[c].size(); i-- > 0;) free_[c].push_back(i);
    }
  }

  Device device() const override { return chunks_.front()->device(); }
  int chunks() const override { return static_cast<int>(chunks_.size()); }
  std::size_t boundary_size(int mb) const override {
    const model::Transformer& t = *chunks_.front();
    return static_cast<std::size_t>(t.boundary_rows(batch(mb)) * t.dims().hidden);
  }

  std::span<const float> forward(int chunk, int mb, std::span<const float> input) override {
    const Timer timer(compute_seconds_);
    const model::Transformer& t = *chunks_[static_cast<std::size_t>(chunk)];
    model::Activations& acts = take_slot(chunk, mb);
    const model::ForwardResult r = t.forward(w_, batch(mb), acts, true, input, adapters_);
    peak_live_ = std::max(peak_live_, ++live_);
    if (!t.stage().last) return {acts.stage_output.f32(), boundary_size(mb)};
    auto& dsums = dsums_[static_cast<std::size_t>(mb)];
    dsums.assign(r.sequence_logprobs.size(), 0.0f);
    loss_sum_ += loss_.micro_batch_loss(mb, r.sequence_logprobs, dsums);
    return {};
  }

  std::span<const float> backward(int chunk, int mb, std::span<const float> grad_output) override {
    const Timer timer(compute_seconds_);
    const model::Transformer& t = *chunks_[static_cast<std::size_t>(chunk)];
    model::Activations& acts = give_back_slot(chunk, mb);
    const std::span<const float> grad =
        t.stage().last ? std::span<const float>(dsums_[static_cast<std::size_t>(mb)]) : grad_output;
    const bool last = mb + 1 == static_cast<int>(batches_.size());
    t.backward(
        w_, acts, grad, g_,
        last ? [this](std::int64_t l) { optimizer_.reduce_layer_async(l); } : std::function<void(std::int64_t)>(),
        router_loss_weight_);
    --live_;
    // The span lives in acts.grad, which only a backward writes: valid until the next backward,
    // though the next forward may take the set (the interleaved pass sends it during that forward).
    return t.stage().first ? std::span<const float>() : t.input_grad(acts);
  }

  double loss_sum() const { return loss_sum_; }
  int peak_live() const { return peak_live_; }
  double compute_seconds() const { return compute_seconds_; }

 private:
  const model::TokenBatch& batch(int mb) const { return batches_[static_cast<std::size_t>(mb)]; }
  // The pool chunk c's micro-batches take their sets from: 1 for the model's last chunk under
  // interleaving, else 0 (PipelineTrainer::activation_pool).
  std::size_t pool_of(int chunk) const {
    return static_cast<std::size_t>(PipelineTrainer::activation_pool(chunks_[static_cast<std::size_t>(chunk)]->stage(),
                                                                     static_cast<int>(chunks_.size())));
  }
  model::Activations& take_slot(int chunk, int mb) {
    const std::size_t c = pool_of(chunk);
    std::deque<model::Activations>& pool = pools_[c];
    if (free_[c].empty()) {  // more of this chunk's micro-batches in flight than ever before
      pool.emplace_back();
      free_[c].push_back(pool.size() - 1);
    }
    const std::size_t i = free_[c].back();
    free_[c].pop_back();
    taken_[{chunk, mb}] = i;
    return pool[i];
  }
  // The set goes back to its pool now; the backward still reads it, before the chunk's next forward.
  model::Activations& give_back_slot(int chunk, int mb) {
    const auto it = taken_.find({chunk, mb});
    require(it != taken_.end(), "pipeline stage: a backward of chunk ", chunk, ", micro-batch ", mb,
            " without its forward");
    const std::size_t c = pool_of(chunk);
    free_[c].push_back(it->second);
    model::Activations& acts = pools_[c][it->second];
    taken_.erase(it);
    return acts;
  }

  const model::TransformerChunks& chunks_;
  const model::ModelWeights& w_;
  const model::ModelWeights* adapters_;
  model::ModelWeights& g_;
  const std::vector<model::TokenBatch>& batches_;
  SequenceLoss& loss_;
  std::vector<std::deque<model::Activations>>& pools_;  // a deque: sets stay where they are
  std::vector<std::vector<std::size_t>> free_;          // by pool: the sets no micro-batch holds
  std::map<std::pair<int, int>, std::size_t> taken_;    // (chunk, micro-batch) -> its set
  Optimizer& optimizer_;
  std::vector<std::vector<float>> dsums_;
  float router_loss_weight_;  // d loss / d a micro-batch's router losses (Transformer::backward)
  double loss_sum_ = 0.0;
  double compute_seconds_ = 0.0;
  int live_ = 0;
  int peak_live_ = 0;
};

// Each layer of experts' rows an expert took over the step (Transformer::take_expert_counts, [layers,
// experts], this stage's layers), summed over the pipeline's stages and the replicas (a TP group's
// ranks route the same rows): the same on every rank; empty for a dense model.
std::vector<double> global_expert_load(const parallel::ProcessGrid& grid, const model::TransformerChunks& chunks) {
  std::vector<double> sums;
  for (const model::Transformer* t : chunks) {
    const std::vector<std::int64_t> counts = t->take_expert_counts();
    sums.resize(counts.size());
    for (std::size_t i = 0; i < counts.size(); ++i) sums[i] += static_cast<double>(counts[i]);
  }
  if (sums.empty()) return sums;
  grid.pp().all_reduce(sums.data(), sums.size());
  grid.dp().all_reduce(sums.data(), sums.size());
  return sums;
}

// StepMetrics::expert_load_max and _min from the layers' loads.
std::pair<double, double> load_spread(const std::vector<double>& load, std::int64_t experts) {
  double most = 0.0, least = std::numeric_limits<double>::infinity();
  for (std::size_t first = 0; first < load.size(); first += static_cast<std::size_t>(experts)) {
    const auto layer = std::span<const double>(load).subspan(first, static_cast<std::size_t>(experts));
    const double mean = std::accumulate(layer.begin(), layer.end(), 0.0) / static_cast<double>(experts);
    if (mean <= 0.0) continue;  // a dense layer, or none of its rows trained
    most = std::max(most, *std::max_element(layer.begin(), layer.end()) / mean);
    least = std::min(least, *std::min_element(layer.begin(), layer.end()) / mean);
  }
  return {most, std::isfinite(least) ? least : 0.0};
}

}  // namespace

double expert_group_load_max(const std::vector<double>& load, std::int64_t experts, int groups) {
  const auto size = static_cast<std::size_t>(experts / groups);
  std::vector<double> sums(static_cast<std::size_t>(groups));
  double most = 0.0;
  for (std::size_t first = 0; first < load.size(); first += static_cast<std::size_t>(experts)) {
    for (std::size_t g = 0; g < sums.size(); ++g) {
      const auto block = load.begin() + static_cast<std::ptrdiff_t>(first + g * size);
      sums[g] = std::accumulate(block, block + static_cast<std::ptrdiff_t>(size), 0.0);
    }
    const double mean = std::accumulate(sums.begin(), sums.end(), 0.0) / static_cast<double>(groups);
    if (mean > 0.0) most = std::max(most, *std::max_element(sums.begin(), sums.end()) / mean);
  }
  return most;
}

void update_router_biases(model::ModelWeights& weights, const model::StageLayers& stage,
                          const model::ModelConfig& config, const std::vector<double>& load) {
  const auto experts = static_cast<std::size_t>(config.num_experts);
  for (std::int64_t l = stage.begin; l < stage.end; ++l) {
    const Tensor& bias = weights.layers[static_cast<std::size_t>(stage.local + l - stage.begin)].router_bias;
    if (!bias.defined()) continue;
    const auto layer = std::span<const double>(load).subspan(static_cast<std::size_t>(l) * experts, experts);
    const double mean = std::accumulate(layer.begin(), layer.end(), 0.0) / static_cast<double>(experts);
    std::vector<float> b = to_host<float>(bias);
    for (std::size_t e = 0; e < experts; ++e) {
      const double offset = mean - layer[e];
      b[e] += config.router_bias_update_rate * static_cast<float>((offset > 0.0) - (offset < 0.0));
    }
    copy_bytes(bias.raw(), bias.device(), b.data(), Device::Cpu, bias.nbytes());
  }
}

PipelineTrainer::PipelineTrainer(const parallel::ProcessGrid& grid, model::TransformerChunks chunks,
                                 model::ModelWeights& weights, model::ModelWeights& grads, Optimizer& optimizer,
                                 const model::ModelWeights* adapters)
    : grid_(grid),
      chunks_(std::move(chunks)),
      weights_(weights),
      adapters_(adapters),
      grads_(grads),
      optimizer_(optimizer) {
  require(!chunks_.empty(), "a pipeline stage without a model chunk");
  require(chunks_.size() == 1 || grid.pp_size() > 1, "model chunks (interleaving) need a pipeline of 2 stages or more");
}

StepMetrics PipelineTrainer::step(const std::vector<model::TokenBatch>& micro_batches,
                                  SequenceLoss& loss, double lr) {
  const auto start = Clock::now();
  const int m = static_cast<int>(micro_batches.size());
  const int v = static_cast<int>(chunks_.size());
  require(m >= 1, "a training step needs at least one micro-batch");
  pools_.resize(v == 1 ? 1 : 2);

  grads_.zero();
  // A mixture's router losses are means over the step's micro-batches, all replicas (whose
  // gradients the data-parallel reduction sums).
  const model::ModelConfig& config = chunks_.front()->config();
  const double micro_batches_all = static_cast<double>(m) * grid_.dp_size();
  const float router_loss_weight = config.trains_router_losses() ? static_cast<float>(1.0 / micro_batches_all) : 0.0f;
  ModelStage stage(chunks_, weights_, adapters_, grads_, micro_batches, loss, pools_, optimizer_, router_loss_weight);
  const auto pipeline_start = Clock::now();
  {
    const profile::Range range("1F1B", "micro_batches", m);
    if (v == 1) {
      parallel::forward_backward_pipelining_without_interleaving(grid_.pp(), m, stage);
    } else {
      parallel::forward_backward_pipelining_with_interleaving(grid_.pp(), m, stage, overlap_p2p_comm_);
    }
  }
  const auto pipeline_end = Clock::now();
  peak_live_ = stage.peak_live();

  // Tied embeddings: the first stage's lookup table and the last stage's LM head are one
  // parameter; each holds part of its gradient (none when it is frozen: LoRA's base).
  const bool first = chunks_.front()->stage().first, last = chunks_.back()->stage().last;
  if (config.tie_word_embeddings && grid_.pp_size() > 1 && (first || last) && !grads_.is_adapters()) {
    const Tensor& g = first ? grads_.embed_tokens : grads_.lm_head;
    grid_.embedding().all_reduce(g.f32(), static_cast<std::size_t>(g.numel()));
  }

  // The loss lives on the last stage of each replica: sum over DP, then share along the pipe.
  double total = last ? stage.loss_sum() : 0.0;
  grid_.dp().all_reduce(&total, 1);
  grid_.pp().all_reduce(&total, 1);
  // Each stage's layers' router losses: summed over the pipeline and the replicas (a TP group's
  // ranks route the same rows: one counts).
  double router[2] = {0.0, 0.0};
  if (config.moe()) {
    for (const model::Transformer* t : chunks_) {
      const model::RouterLosses mine = t->take_router_losses();
      if (grid_.tp_rank() == 0) router[0] += mine.balance, router[1] += mine.z;
    }
    grid_.world().all_reduce(router, 2);
    for (double& value : router) value /= micro_batches_all * static_cast<double>(config.moe_layers());
  }

  const OptimizerStep o = optimizer_.step(lr, std::isfinite(total));
  StepMetrics r;
  r.loss = total;
  r.grad_norm = o.grad_norm;
  r.lr = lr;
  r.applied = o.applied;
  r.skipped_total = o.skipped_total;
  r.seconds = seconds_between(start, Clock::now());
  r.pipeline_seconds = seconds_between(pipeline_start, pipeline_end);
  r.compute_seconds = stage.compute_seconds();
  r.balance_loss = router[0];
  r.z_loss = router[1];
  const std::vector<double> load = global_expert_load(grid_, chunks_);
  if (!load.empty()) {
    std::tie(r.expert_load_max, r.expert_load_min) = load_spread(load, config.num_experts);
    if (grid_.ep_size() > 1) r.expert_rank_load_max = expert_group_load_max(load, config.num_experts, grid_.ep_size());
    // After the optimizer (which never moves the biases: no gradient reaches them), on every rank
    // alike from the same sums.
    if (config.router_bias_update_rate > 0.0f && o.applied) {
      for (const model::Transformer* t : chunks_) update_router_biases(weights_, t->stage(), config, load);
    }
  }
  return r;
}

}  // namespace spin::train
