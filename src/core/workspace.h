// Workspace: tensors carved out of one reusable allocation. carve() returns views of the
// requested shapes; the buffer is reallocated only when a request does not fit, so a model
// running batches of similar size allocates (and page-faults) once, not every step.
// Views from an earlier carve() alias the new ones: a carve() invalidates the previous set.
// UploadBuffer does the same for arrays filled from the host (a batch's token ids, positions).
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace spin {

class Workspace {
 public:
  // Views of `dtype` (float32 unless said) on `device`. The buffer holds at least a multiple of
  // `pad_multiple` elements (zeros after the views).
  std::vector<Tensor> carve(Device device, const std::vector<Shape>& shapes,
                            std::int64_t pad_multiple = 1, DType dtype = DType::F32);
  // The whole allocation (undefined before the first carve).
  const Tensor& buffer() const { return buffer_; }
  // Bytes allocated (0 before the first carve).
  std::size_t bytes() const { return buffer_.defined() ? buffer_.nbytes() : 0; }

 private:
  Tensor buffer_;
};

// Host values copied to a device, into a buffer kept from one call to the next (reallocated
// only when the values outgrow it). upload() invalidates the view the previous call returned.
class UploadBuffer {
 public:
  template <class T>
  Tensor upload(std::span<const T> values, Device device) {
    const auto n = static_cast<std::int64_t>(values.size());
    if (!buffer_.defined() || buffer_.device() != device || buffer_.dtype() != dtype_of<T>() ||
        buffer_.numel() < n) {
      buffer_ = Tensor::zeros({std::max<std::int64_t>(n, 1)}, dtype_of<T>(), device);
    }
    Tensor view = buffer_.view(0, {n});
    copy_bytes(view.raw(), device, values.data(), Device::Cpu, view.nbytes());
    return view;
  }
  std::size_t bytes() const { return buffer_.defined() ? buffer_.nbytes() : 0; }

 private:
  Tensor buffer_;
};

// Every element of `t` (any device) in host memory.
template <class T>
std::vector<T> to_host(const Tensor& t) {
  std::vector<T> out(static_cast<std::size_t>(t.numel()));
  copy_bytes(out.data(), Device::Cpu, t.data<T>(), t.device(), t.nbytes());
  return out;
}

}  // namespace spin
