// Workspace: tensors carved out of one reusable allocation. carve() returns views of the
// requested shapes; the buffer is reallocated only when a request does not fit, so a model
// running batches of similar size allocates (and page-faults) once, not every step.
// Views from an earlier carve() alias the new ones: a carve() invalidates the previous set.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace spin {

class Workspace {
 public:
  // The buffer holds at least a multiple of `pad_multiple` floats (zeros after the views).
  std::vector<Tensor> carve(const std::vector<Shape>& shapes, std::int64_t pad_multiple = 1);
  // The whole allocation (undefined before the first carve).
  const Tensor& buffer() const { return buffer_; }
  // Bytes allocated (0 before the first carve).
  std::size_t bytes() const { return buffer_.defined() ? buffer_.nbytes() : 0; }

 private:
  Tensor buffer_;
};

}  // namespace spin
