// Workspace: tensors carved out of one reusable allocation. carve() returns views of the
// requested shapes; the buffer is reallocated only when a request does not fit, so a model
// running batches of similar size allocates (and page-faults) once, not every step.
// Views from an earlier carve() alias the new ones: a carve() invalidates the previous set.
// UploadBuffer does the same for arrays filled from the host, PackedUpload for several at once (a
// batch's token ids, positions, targets).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
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

// Host arrays of several element types copied to a device in one copy, each at an 8-byte-aligned
// offset of a buffer kept from one call to the next (as UploadBuffer, doubling when it grows): a
// step's small per-row arrays in one upload, not one each. upload() returns their device pointers, in order, and
// invalidates those the previous call returned.
class PackedUpload {
 public:
  template <class... R>
  std::tuple<const std::remove_cv_t<typename R::value_type>*...> upload(Device device, const R&... arrays) {
    return upload(device, std::index_sequence_for<R...>{},
                  std::span<const std::remove_cv_t<typename R::value_type>>(arrays)...);
  }
  // The buffer the pointers point into (undefined before the first upload).
  const Tensor& buffer() const { return buffer_; }

 private:
  template <std::size_t... I, class... T>
  std::tuple<const T*...> upload(Device device, std::index_sequence<I...>, std::span<const T>... arrays) {
    static_assert(sizeof...(T) > 0 && ((alignof(T) <= 8) && ...));
    const std::array<std::size_t, sizeof...(T)> bytes = {(arrays.size_bytes() + 7) / 8 * 8 ...};
    std::array<std::size_t, sizeof...(T)> at{};
    for (std::size_t i = 1; i < at.size(); ++i) at[i] = at[i - 1] + bytes[i - 1];
    const auto total = static_cast<std::int64_t>(at.back() + bytes.back());
    std::vector<std::uint8_t> host(static_cast<std::size_t>(total));
    ((arrays.empty() ? void() : void(std::memcpy(host.data() + at[I], arrays.data(), arrays.size_bytes()))), ...);
    if (!buffer_.defined() || buffer_.device() != device || buffer_.numel() < total) {
      // Twice what it held when it grows: arrays that grow a little a step (a sampler's token
      // history) reallocate a logarithmic number of times, not every step.
      const std::int64_t held = buffer_.defined() && buffer_.device() == device ? buffer_.numel() : 0;
      buffer_ = Tensor::zeros({std::max<std::int64_t>({total, 2 * held, 1})}, DType::U8, device);
    }
    copy_bytes(buffer_.raw(), device, host.data(), Device::Cpu, host.size());
    const auto* base = static_cast<const std::uint8_t*>(buffer_.raw());
    return {reinterpret_cast<const T*>(base + at[I])...};
  }

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
