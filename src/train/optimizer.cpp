#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "checkpoint/shard_rectangles.h"
#include "core/error.h"
#include "core/profile.h"
#include "parallel/job_errors.h"

namespace spin::train {

OptimizerAlgorithm parse_optimizer_algorithm(const std::string& name, const char* setting) {
  if (name == "adamw") return OptimizerAlgorithm::AdamW;
  if (name == "rmsprop") return OptimizerAlgorithm::RmsProp;
  fail(setting, " \"", name, "\" is not adamw or rmsprop");
}

const char* optimizer_algorithm_name(OptimizerAlgorithm algorithm) {
  return algorithm == OptimizerAlgorithm::AdamW ? "adamw" : "rmsprop";
}

void OptimizerConfig::validate(const Names& names) const {
  require(alpha >= 0.0f && alpha < 1.0f, names.alpha, " must be in [0, 1), got ", alpha);
  require(beta1 >= 0.0f && beta1 < 1.0f && beta2 >= 0.0f && beta2 < 1.0f, names.betas, " must be in [0, 1), got ",
          beta1, " and ", beta2);
  require(eps > 0.0f, names.eps, " must be > 0, got ", eps);
  require(weight_decay >= 0.0f, names.weight_decay, " must not be negative, got ", weight_decay);
  require(clip_grad >= 0.0, names.clip_grad, " must not be negative (0: off), got ", clip_grad);
  require(max_nonfinite_in_a_row >= 1, names.max_nonfinite, " must be at least 1, got ", max_nonfinite_in_a_row);
}

Optimizer::Optimizer(const OptimizerConfig& config, const parallel::ProcessGrid& grid,
                     model::ModelWeights& params, model::ModelWeights& grads,
                     const kernels::Kernels& k)
    : config_(config), grid_(grid), params_(params), grads_(grads), k_(k) {
  const std::int64_t total = params.flat().numel();
  require(grads.flat().numel() == total, "optimizer: parameters and gradients differ in layout");
  const std::int64_t dp = grid.dp_size();
  if (config.distributed) {
    require(total % dp == 0, "optimizer: the flat buffer (", total,
            " floats) is not padded to a multiple of the data-parallel size ", dp);
    begin_ = grid.dp_rank() * (total / dp);
    end_ = begin_ + total / dp;
  } else {
    begin_ = 0;
    end_ = total;
  }
  if (config.algorithm == OptimizerAlgorithm::AdamW) m_ = Tensor::zeros({end_ - begin_}, DType::F32, params.device());
  v_ = Tensor::zeros({end_ - begin_}, DType::F32, params.device());

  // The owned region, cut at parameter boundaries. Gaps (alignment padding) hold zeros and are
  // left out.
  const auto& state = params.sharded_state_dict();
  for (std::size_t index = 0; index < state.size(); ++index) {
    const ShardedTensor& p = state[index];
    const std::int64_t offset = params.offset_of(p.local);
    const std::int64_t from = std::max(offset, begin_);
    const std::int64_t to = std::min(offset + p.local.numel(), end_);
    if (from >= to) continue;
    const bool is_norm = p.global_shape.size() == 1;
    const bool is_embedding = p.name == "model.embed_tokens.weight" || p.name == "lm_head.weight";
    const bool decay = !is_norm && (config.decay_embeddings || !is_embedding);
    segments_.push_back({from, to - from, p.primary, index, offset});
    // The kernels index the owned region from begin_ (its gradients, moments and parameters).
    update_ranges_.push_back({from - begin_, to - from, decay});
    if (p.primary) norm_ranges_.push_back({from - begin_, to - from});
  }
}

void Optimizer::reduce_layer_async(std::int64_t layer) {
  if (!config_.overlap_grad_reduce || grid_.dp_size() == 1) return;
  const auto [begin, end] = grads_.layer_span(layer);
  if (config_.distributed) {
    reduce_to_owners(begin, end);
    return;
  }
  float* grads = grads_.flat().f32();
  in_flight_.push_back({begin, end, grid_.dp().iall_reduce(grads + begin, static_cast<std::size_t>(end - begin))});
}

void Optimizer::reduce_to_owners(std::int64_t begin, std::int64_t end) {
  float* grads = grads_.flat().f32();
  const std::int64_t part = end_ - begin_;  // every rank owns a part of this length
  for (std::int64_t at = begin; at < end;) {
    const auto owner = static_cast<int>(at / part);
    const std::int64_t to = std::min({end, (owner + 1) * part, at + config_.bucket_floats});
    in_flight_.push_back({at, to, grid_.dp().ireduce(grads + at, static_cast<std::size_t>(to - at), owner)});
    at = to;
  }
}

void Optimizer::reduce_the_rest() {
  // What reduce_layer_async started is finished first (no other collective of the group is
  // issued while one is in flight); the rest goes in buckets now.
  for (InFlight& f : in_flight_) f.op->wait();
  std::vector<InFlight> done = std::move(in_flight_);
  in_flight_.clear();
  std::sort(done.begin(), done.end(), [](const InFlight& a, const InFlight& b) { return a.begin < b.begin; });
  float* grads = grads_.flat().f32();
  const std::int64_t total = grads_.flat().numel();
  std::int64_t from = 0;
  const auto reduce_until = [&](std::int64_t to) {
    if (config_.distributed) {
      reduce_to_owners(from, to);
      return;
    }
    for (std::int64_t at = from; at < to; at += config_.bucket_floats) {
      const std::int64_t n = std::min(config_.bucket_floats, to - at);
      grid_.dp().all_reduce(grads + at, static_cast<std::size_t>(n));
    }
  };
  for (const InFlight& f : done) {
    reduce_until(f.begin);
    from = f.end;
  }
  reduce_until(total);
  for (InFlight& f : in_flight_) f.op->wait();
  in_flight_.clear();
}

std::size_t Optimizer::state_bytes() const {
  return (m_.defined() ? m_.nbytes() : 0) + v_.nbytes();
}

OptimizerStep Optimizer::step(double lr, bool loss_is_finite) {
  const profile::Range range("optimizer");
  float* grads = grads_.flat().f32();
  // 1. Sum the gradients over data-parallel replicas (the loss is already a global mean).
  float* owned_grad = grads + begin_;
  {
    const profile::Range reduce("gradient reduction");
    if (config_.distributed && !config_.overlap_grad_reduce) {
      grid_.dp().reduce_scatter(grads, grads, static_cast<std::size_t>(end_ - begin_));
      owned_grad = grads;  // the owned region's sums, now at the start of the buffer
    } else {
      reduce_the_rest();  // distributed: the owned region's sums at their own offsets
    }
  }

  // 2. Global norm: primary copies only (one pass over all of them), summed over the
  //    model-parallel group, and over DP when each DP rank holds a different part.
  double sum_squares = k_.sum_squares(owned_grad, norm_ranges_.data(), std::ssize(norm_ranges_));
  grid_.mp().all_reduce(&sum_squares, 1);
  if (config_.distributed) grid_.dp().all_reduce(&sum_squares, 1);
  OptimizerStep result;
  result.grad_norm = std::sqrt(sum_squares);

  // 3. Skip non-finite steps; every rank sees the same loss flag and norm, so all agree.
  if (!loss_is_finite || !std::isfinite(result.grad_norm)) {
    ++skipped_;
    result.skipped_total = skipped_;
    if (++nonfinite_in_a_row_ >= config_.max_nonfinite_in_a_row) {
      throw parallel::CollectiveError(
          0, cat("non-finite ", loss_is_finite ? "gradient norm" : "loss", " in ",
                 nonfinite_in_a_row_, " consecutive steps (", skipped_,
                 " skipped in all); lower the learning rate or check the data"));
    }
    return result;
  }
  nonfinite_in_a_row_ = 0;

  // 4. Clip and update the owned region.
  const double clip = config_.clip_grad;
  const double scale = clip > 0.0 && result.grad_norm > clip ? clip / (result.grad_norm + 1e-6) : 1.0;
  ++steps_;
  float* params = params_.flat().f32();
  // Mixed precision: the products' bf16 copy of the new values, written by the same pass --
  // unless the distributed optimizer updates only this rank's part, when the whole copy is
  // refreshed after the all-gather.
  const bool fused_bf16 = params_.has_bf16() && !config_.distributed;
  std::uint16_t* params_bf16 = fused_bf16 ? params_.flat_bf16().bf16() + begin_ : nullptr;
  if (config_.algorithm == OptimizerAlgorithm::AdamW) {
    const kernels::Kernels::AdamW h{static_cast<float>(lr), config_.beta1, config_.beta2, config_.eps,
                                    config_.weight_decay, static_cast<float>(scale), steps_};
    k_.adamw_update(params + begin_, params_bf16, owned_grad, m_.f32(), v_.f32(), update_ranges_.data(),
                    std::ssize(update_ranges_), h);
  } else {
    const kernels::Kernels::RmsProp h{static_cast<float>(lr), config_.alpha, config_.eps, config_.weight_decay,
                                      static_cast<float>(scale)};
    k_.rmsprop_update(params + begin_, params_bf16, owned_grad, v_.f32(), update_ranges_.data(),
                      std::ssize(update_ranges_), h);
  }
  // 5. Every DP rank gets the parameters the others updated.
  if (config_.distributed) {
    grid_.dp().all_gather(params + begin_, params, static_cast<std::size_t>(end_ - begin_));
    params_.refresh_bf16(k_);
  }
  result.applied = true;
  result.skipped_total = skipped_;
  return result;
}

namespace {
// The checkpoint groups of an algorithm's state buffers (m, v), PyTorch's names; "" for none.
std::pair<const char*, const char*> state_groups(OptimizerAlgorithm algorithm) {
  if (algorithm == OptimizerAlgorithm::AdamW) return {"optimizer/exp_avg", "optimizer/exp_avg_sq"};
  return {"", "optimizer/square_avg"};
}
}  // namespace

std::vector<ckpt::PieceWrite> Optimizer::state_pieces() const {
  if (m_.defined()) host_m_ = host_readable(m_);
  host_v_ = host_readable(v_);
  const auto [m_group, v_group] = state_groups(config_.algorithm);
  std::vector<ckpt::PieceWrite> pieces;
  const auto& state = params_.sharded_state_dict();
  for (const Segment& s : segments_) {
    if (!s.primary) continue;
    const ShardedTensor& p = state[s.param];
    const std::int64_t local_begin = s.offset - s.param_offset;
    for (const ckpt::ShardRectangle& r : ckpt::shard_rectangles(p, local_begin, local_begin + s.length)) {
      const std::int64_t at = s.param_offset + r.local_offset;  // flat offset of the rectangle
      if (m_.defined()) pieces.push_back({m_group, p.name, p.global_shape, r.start, r.count, moment(host_m_, at)});
      pieces.push_back({v_group, p.name, p.global_shape, r.start, r.count, moment(host_v_, at)});
    }
  }
  return pieces;
}

void Optimizer::reset_state() {
  if (m_.defined()) m_.zero_();
  v_.zero_();
  steps_ = 0;
  skipped_ = 0;
  nonfinite_in_a_row_ = 0;
}

void Optimizer::load_state(const ckpt::CheckpointReader& reader, std::int64_t steps,
                           std::int64_t skipped) {
  const Tensor m = m_.defined() ? host_readable(m_) : Tensor(), v = host_readable(v_);
  const auto [m_group, v_group] = state_groups(config_.algorithm);
  const auto groups = reader.groups();
  const auto holds_state_of = [&](OptimizerAlgorithm a) {
    return std::find(groups.begin(), groups.end(), state_groups(a).second) != groups.end();
  };
  if (!holds_state_of(config_.algorithm)) {
    for (OptimizerAlgorithm other : {OptimizerAlgorithm::AdamW, OptimizerAlgorithm::RmsProp}) {
      require(!holds_state_of(other), reader.dir(), " holds the state of optimizer ", optimizer_algorithm_name(other),
              ", not of this run's ", optimizer_algorithm_name(config_.algorithm),
              ": resume with that optimizer, or start from its weights alone (spin ckpt export-hf)");
    }
    fail(reader.dir(), " holds no optimizer state (", v_group, ")");
  }
  const auto& state = params_.sharded_state_dict();
  for (const Segment& s : segments_) {
    const ShardedTensor& p = state[s.param];
    const std::int64_t local_begin = s.offset - s.param_offset;
    for (const ckpt::ShardRectangle& r : ckpt::shard_rectangles(p, local_begin, local_begin + s.length)) {
      const std::int64_t at = s.param_offset + r.local_offset;
      if (m.defined()) reader.read(m_group, p.name, r.start, r.count, moment(m, at));
      reader.read(v_group, p.name, r.start, r.count, moment(v, at));
    }
  }
  if (m.defined()) m_.copy_from(m);
  v_.copy_from(v);
  steps_ = steps;
  skipped_ = skipped;
  nonfinite_in_a_row_ = 0;
}

}  // namespace spin::train
