// Tensor: a shape, an element type and a reference-counted buffer, row-major, 64-byte aligned
// (host) or as the device's allocator aligns it (256 bytes on CUDA). Views (Tensor::view) share
// the buffer, which is how parameters live in one flat allocation and are still addressed one by
// one. A Tensor is a handle, like std::span: `const` protects the handle (shape, which buffer),
// not the elements. data() of a device tensor is a device pointer: only kernels and the
// device's MemoryOps (core/device.h) may dereference it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace spin {

using Shape = std::vector<std::int64_t>;

std::int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"

// A shape as shape_str writes it, formatted only when streamed: as an argument of require() (whose
// arguments are all evaluated before the check) it costs nothing unless the check fails.
struct ShapeText {
  const Shape& shape;
};
inline ShapeText shape_text(const Shape& shape) { return {shape}; }
std::ostream& operator<<(std::ostream& out, ShapeText text);

// An owned, aligned, zero-initialised allocation on a device.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<std::uint64_t>() { return DType::U64; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::U8; }

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: no storage

  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::Cpu);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  std::int64_t size(int dim) const;  // negative dims count from the end
  std::int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::Cpu; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }

  // Typed access; throws if T does not match dtype().
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw());
  }
  float* f32() const { return data<float>(); }
  // bf16 elements as their 16 bits.
  std::uint16_t* bf16() const {
    check_dtype(DType::BF16);
    return static_cast<std::uint16_t*>(raw());
  }
  void* raw() const;

  // A tensor sharing this one's storage, starting `offset` elements in, with `shape`.
  Tensor view(std::int64_t offset, const Shape& shape) const;
  // Same elements, another shape (numel must match).
  Tensor reshape(const Shape& shape) const { return view(0, shape); }
  // An independent copy, on this tensor's device or on `device`.
  Tensor clone() const { return to(device()); }
  Tensor to(Device device) const;
  void zero_() const;
  // Shapes and dtypes must match; the devices may differ (a host <-> device transfer).
  void copy_from(const Tensor& src) const;

 private:
  void check_dtype(DType want) const;

  std::shared_ptr<Storage> storage_;
  std::int64_t offset_ = 0;  // in elements
  Shape shape_;
  DType dtype_ = DType::F32;
};

// `t` itself when it is in host memory, otherwise a host copy of it: for the code that must
// touch elements on the host (checkpoint readers and writers). After filling a copy, write it
// back with t.copy_from(copy) -- a no-op when the copy is t.
Tensor host_readable(const Tensor& t);
// `t`'s values as float32 in host memory: host_readable(t) when it holds float32, else a host copy
// widened exactly (bf16: a frozen model's matrices, model::WeightStorage::FrozenBf16).
Tensor float32_on_host(const Tensor& t);
// `t` (float32 or bf16, any device) set from `host`, float32 values of t's shape in host memory:
// copied, or rounded to bf16 (f32_to_bf16) on the way.
void assign_from_float32(const Tensor& t, const Tensor& host);

}  // namespace spin
