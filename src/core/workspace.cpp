#include "core/workspace.h"

namespace spin {

namespace {
constexpr std::int64_t kAlign = 16;  // elements: 64-byte boundaries for float32, 32 for bf16
std::int64_t aligned(std::int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

std::vector<Tensor> Workspace::carve(Device device, const std::vector<Shape>& shapes,
                                     std::int64_t pad_multiple, DType dtype) {
  std::int64_t total = 0;
  for (const Shape& s : shapes) total += aligned(shape_numel(s));
  total = (total + pad_multiple - 1) / pad_multiple * pad_multiple;
  if (!buffer_.defined() || buffer_.device() != device || buffer_.dtype() != dtype ||
      buffer_.numel() < total) {
    buffer_ = Tensor::zeros({total}, dtype, device);
  }
  std::vector<Tensor> views;
  std::int64_t offset = 0;
  for (const Shape& s : shapes) {
    views.push_back(buffer_.view(offset, s));
    offset += aligned(shape_numel(s));
  }
  return views;
}

}  // namespace spin
