#include "core/tensor.h"

#include <sstream>
#include <vector>

#include "core/error.h"

namespace spin {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    require(d >= 0, "negative dimension in shape ", shape_text(shape));
    n *= d;
  }
  return n;
}

std::ostream& operator<<(std::ostream& out, ShapeText text) {
  out << '[';
  for (std::size_t i = 0; i < text.shape.size(); ++i) out << (i ? ", " : "") << text.shape[i];
  return out << ']';
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << shape_text(shape);
  return out.str();
}

Storage::Storage(std::size_t bytes, Device device)
    : data_(memory_ops(device).allocate(bytes)), bytes_(bytes), device_(device) {}

Storage::~Storage() { memory_ops(device_).release(data_); }

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), device);
  return t;
}

std::int64_t Tensor::size(int dim) const {
  const int d = dim < 0 ? dim + ndim() : dim;
  require(d >= 0 && d < ndim(), "dimension ", dim, " out of range for shape ", shape_text(shape_));
  return shape_[static_cast<std::size_t>(d)];
}

void* Tensor::raw() const {
  require(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) +
         static_cast<std::size_t>(offset_) * dtype_size(dtype_);
}

void Tensor::check_dtype(DType want) const {
  require(want == dtype_, "tensor of dtype ", dtype_name(dtype_), " accessed as ",
          dtype_name(want));
}

Tensor Tensor::view(std::int64_t offset, const Shape& shape) const {
  require(defined(), "view of an undefined tensor");
  const std::int64_t n = shape_numel(shape);
  require(offset >= 0 && offset + n <= numel(), "view of ", n, " elements at offset ", offset,
          " exceeds a tensor of shape ", shape_text(shape_));
  Tensor t = *this;
  t.offset_ = offset_ + offset;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = zeros(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor host_readable(const Tensor& t) { return t.device() == Device::Cpu ? t : t.to(Device::Cpu); }

Tensor float32_on_host(const Tensor& t) {
  const Tensor host = host_readable(t);
  if (host.dtype() == DType::F32) return host;
  const Tensor out = Tensor::zeros(t.shape());
  convert_to_f32(host.raw(), host.dtype(), static_cast<std::size_t>(host.numel()), out.f32());
  return out;
}

void assign_from_float32(const Tensor& t, const Tensor& host) {
  require(host.device() == Device::Cpu && host.dtype() == DType::F32 && host.shape() == t.shape(),
          "assign_from_float32: float32 host values of shape ", shape_text(t.shape()), " expected, got ",
          dtype_name(host.dtype()), " ", shape_text(host.shape()));
  if (t.dtype() == DType::F32) {
    t.copy_from(host);
    return;
  }
  require(t.dtype() == DType::BF16, "assign_from_float32: a ", dtype_name(t.dtype()), " tensor");
  std::vector<std::uint16_t> rounded(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < rounded.size(); ++i) rounded[i] = f32_to_bf16(host.f32()[i]);
  copy_bytes(t.raw(), t.device(), rounded.data(), Device::Cpu, t.nbytes());
}

void Tensor::zero_() const { memory_ops(device()).fill_zero(raw(), nbytes()); }

void Tensor::copy_from(const Tensor& src) const {
  require(src.shape_ == shape_ && src.dtype_ == dtype_, "copy from a ", dtype_name(src.dtype_), " tensor of shape ",
          shape_text(src.shape_), " into a ", dtype_name(dtype_), " tensor of shape ", shape_text(shape_));
  if (raw() == src.raw() && device() == src.device()) return;
  copy_bytes(raw(), device(), src.raw(), src.device(), nbytes());
}

}  // namespace spin
