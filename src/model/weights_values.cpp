// ModelWeights' values across representations (model/weights.h): the bf16 copy of a Float32 model,
// FrozenBf16's bf16 matrices, and the moves between them and the host.
#include "core/dtype.h"
#include "core/error.h"
#include "core/workspace.h"
#include "model/weights.h"

namespace spin::model {

namespace {
// The first n elements of t: two layouts of one model differ only in the padding after the last
// parameter (ModelWeights' pad_multiple).
Tensor prefix(const Tensor& t, std::int64_t n) { return t.view(0, {n}); }
}  // namespace

std::int64_t ModelWeights::values_end() const {
  return params_.empty() ? 0 : layout_offsets_.back() + params_.back().local.numel();
}

Tensor ModelWeights::bf16_view(const Tensor& param) const {
  if (param.dtype() == DType::BF16) return param;                    // FrozenBf16's matrices live there
  if (!frozen_) return bf16_.view(offset_of(param), param.shape());  // same offset, other buffer
  for (std::size_t i = 0; i < params_.size(); ++i) {                 // a float32-read tensor (a tied LM head's)
    if (params_[i].local.raw() == param.raw()) return bf16_.view(layout_offsets_[i], param.shape());
  }
  fail("ModelWeights::bf16_view: a tensor of another model");
}

void ModelWeights::wire_bf16_views() {
  const auto view = [&](const Tensor& t) { return t.defined() ? bf16_view(t) : Tensor(); };
  for (LayerWeights& l : layers) {
    LayerWeights::Bf16& b = l.bf16;
    b.q_proj = view(l.q_proj), b.k_proj = view(l.k_proj), b.v_proj = view(l.v_proj), b.o_proj = view(l.o_proj);
    b.gate_proj = view(l.gate_proj), b.up_proj = view(l.up_proj), b.down_proj = view(l.down_proj);
    b.q_a_proj = view(l.q_a_proj), b.kv_a_proj = view(l.kv_a_proj), b.kv_b_proj = view(l.kv_b_proj);
    for (std::size_t t = 0; t < l.lora.size(); ++t) b.lora[t] = {view(l.lora[t].a), view(l.lora[t].b)};
    b.router = view(l.router);
    const auto expert_view = [&](const LayerWeights::Expert& e) {
      LayerWeights::Expert v{view(e.gate_proj), view(e.up_proj), view(e.down_proj)};
      for (std::size_t t = 0; t < e.lora.size(); ++t) v.lora[t] = {view(e.lora[t].a), view(e.lora[t].b)};
      return v;
    };
    b.experts.clear();
    for (const LayerWeights::Expert& e : l.experts) b.experts.push_back(expert_view(e));
    b.shared_expert = expert_view(l.shared_expert);
    b.shared_expert_gate = view(l.shared_expert_gate);
  }
  if (lm_head.defined()) lm_head_bf16 = bf16_view(lm_head);
}

void ModelWeights::enable_bf16(const kernels::Kernels& k) {
  if (has_bf16()) return;
  bf16_ = Tensor::zeros(flat().shape(), DType::BF16, device());
  wire_bf16_views();
  refresh_bf16(k);
}

void ModelWeights::refresh_bf16_on_host() {
  if (!has_bf16()) return;
  if (!frozen_) {
    assign_from_float32(bf16_, float32_on_host(flat()));
    return;
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {  // the float32-read tensors' rounding (a tied head's)
    const Tensor& t = params_[i].local;
    if (t.dtype() == DType::F32) assign_from_float32(bf16_.view(layout_offsets_[i], t.shape()), float32_on_host(t));
  }
}

void ModelWeights::refresh_bf16(const kernels::Kernels& k) {
  if (!has_bf16()) return;
  if (!frozen_) {
    k.to_bf16(bf16_.bf16(), flat().f32(), flat().numel());
    return;
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {  // FrozenBf16: the float32-read tensors' rounding
    const Tensor& t = params_[i].local;
    if (t.dtype() == DType::F32) k.to_bf16(bf16_.bf16() + layout_offsets_[i], t.f32(), t.numel());
  }
}

Tensor ModelWeights::values_on_host() const {
  if (!frozen_) return host_readable(flat());
  const Tensor host = float32_on_host(bf16_);  // the matrices widened; then the float32-read tensors as held
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& t = params_[i].local;
    if (t.dtype() == DType::F32) host.view(layout_offsets_[i], t.shape()).copy_from(t);
  }
  return host;
}

void ModelWeights::assign_values(const Tensor& host) {
  const std::int64_t n = values_end();
  require(host.device() == Device::Cpu && host.dtype() == DType::F32 && host.numel() >= n,
          "ModelWeights::assign_values: ", host.numel(), " float32 values on the host for a layout of ", n);
  if (!frozen_) {
    prefix(flat(), n).copy_from(prefix(host, n));  // the padding after stays zero
    refresh_bf16_on_host();
    return;
  }
  assign_from_float32(prefix(bf16_, n), prefix(host, n));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& t = params_[i].local;
    if (t.dtype() == DType::F32) t.copy_from(host.view(layout_offsets_[i], t.shape()));
  }
}

void ModelWeights::copy_from(const ModelWeights& other) {
  require(layout_offsets_ == other.layout_offsets_ && values_end() == other.values_end(),
          "copying weights of another layout");
  const std::int64_t n = values_end();
  if (frozen_ == other.frozen_) {
    if (frozen_) {
      flat().copy_from(other.flat());
    } else {
      prefix(flat(), n).copy_from(prefix(other.flat(), n));
    }
    if (has_bf16() && other.has_bf16()) {
      prefix(bf16_, n).copy_from(prefix(other.bf16_, n));
    } else {
      refresh_bf16_on_host();  // no kernels at hand: a one-off cost (loading), not a step's
    }
    return;
  }
  if (frozen_ && other.has_bf16()) {  // the SPIN reference sync: the policy's bf16 copy is the rounding
    copy_forward_values(other);
    return;
  }
  assign_values(other.values_on_host());
}

void ModelWeights::copy_forward_values(const ModelWeights& from) {
  prefix(bf16_, values_end()).copy_from(prefix(from.bf16_, values_end()));
  const ModelWeights& frozen = frozen_ ? *this : from;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (frozen.params_[i].local.dtype() == DType::F32) params_[i].local.copy_from(from.params_[i].local);
  }
}

void ModelWeights::borrow_forward_values(const ModelWeights& frozen) {
  require(!frozen_ && has_bf16() && frozen.frozen_ && layout_offsets_ == frozen.layout_offsets_ &&
              values_end() == frozen.values_end(),
          "borrow_forward_values: a FrozenBf16 model's values into a Float32 one with a bf16 copy, of one layout");
  copy_forward_values(frozen);
}

}  // namespace spin::model
