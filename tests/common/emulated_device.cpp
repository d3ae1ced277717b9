#include "common/emulated_device.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/mass_histogram.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::testing {

namespace {
std::uintptr_t bits(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
bool tagged(const void* p) { return (bits(p) & EmulatedDeviceMemory::kTag) != 0; }
}  // namespace

EmulatedDeviceMemory::EmulatedDeviceMemory() { register_memory_ops(Device::Cuda, this); }

EmulatedDeviceMemory::~EmulatedDeviceMemory() {
  register_memory_ops(Device::Cuda, nullptr);
  for (const auto& [base, bytes] : live_) std::free(reinterpret_cast<void*>(base));
}

void* EmulatedDeviceMemory::allocate(std::size_t bytes) {
  const std::size_t rounded = std::max<std::size_t>((bytes + 255) / 256 * 256, 256);
  void* p = std::aligned_alloc(256, rounded);
  require(p != nullptr, "emulated device: out of memory for ", bytes, " bytes");
  std::memset(p, 0, rounded);
  live_[bits(p)] = bytes;
  ++traffic_.allocations;
  return reinterpret_cast<void*>(bits(p) | kTag);
}

void EmulatedDeviceMemory::release(void* p) {
  if (p == nullptr) return;
  require(tagged(p), "emulated device: release of a host pointer");
  const std::uintptr_t base = bits(p) & ~kTag;
  const auto it = live_.find(base);
  require(it != live_.end(), "emulated device: release of an address it did not allocate");
  live_.erase(it);
  std::free(reinterpret_cast<void*>(base));
}

void* EmulatedDeviceMemory::untag(const void* p, std::size_t bytes, const char* what) const {
  require(tagged(p), what, ": a host pointer where device memory is required");
  const std::uintptr_t address = bits(p) & ~kTag;
  auto it = live_.upper_bound(address);
  require(it != live_.begin(), what, ": not inside any device allocation");
  --it;
  require(address + bytes <= it->first + it->second, what, ": ", bytes,
          " bytes run past the end of its device allocation");
  return reinterpret_cast<void*>(address);
}

void* EmulatedDeviceMemory::host_address(const void* p, std::size_t bytes) const {
  return tagged(p) ? untag(p, bytes, "communication buffer") : const_cast<void*>(p);
}

std::size_t EmulatedDeviceMemory::live_bytes() const {
  std::size_t total = 0;
  for (const auto& entry : live_) total += entry.second;
  return total;
}

void EmulatedDeviceMemory::fill_zero(void* p, std::size_t bytes) {
  std::memset(untag(p, bytes, "fill_zero"), 0, bytes);
}
void EmulatedDeviceMemory::copy(void* dst, const void* src, std::size_t bytes) {
  std::memmove(untag(dst, bytes, "copy (destination)"), untag(src, bytes, "copy (source)"), bytes);
}
void EmulatedDeviceMemory::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  require(!tagged(host_dst), "copy_to_host: the destination is device memory");
  ++traffic_.to_host;
  std::memcpy(host_dst, untag(src, bytes, "copy_to_host (source)"), bytes);
}
void EmulatedDeviceMemory::copy_from_host(void* dst, const void* host_src, std::size_t bytes) {
  require(!tagged(host_src), "copy_from_host: the source is device memory");
  ++traffic_.from_host;
  std::memcpy(untag(dst, bytes, "copy_from_host (destination)"), host_src, bytes);
}

namespace {
// Calls fn(pointer of the element type of `t`): the typed Communicator API from a DType.
template <class Fn>
void typed(DType t, void* p, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(static_cast<float*>(p));
    case DType::F64: return fn(static_cast<double*>(p));
    case DType::I32: return fn(static_cast<std::int32_t*>(p));
    case DType::I64: return fn(static_cast<std::int64_t*>(p));
    case DType::U64: return fn(static_cast<std::uint64_t*>(p));
    case DType::U8: return fn(static_cast<std::uint8_t*>(p));
    default: fail("emulated communicator: no ", dtype_name(t), " messages");
  }
}
}  // namespace

DeviceAwareCommunicator::DeviceAwareCommunicator(const EmulatedDeviceMemory& memory, parallel::Communicator& inner)
    : memory_(memory), inner_(&inner) {}
DeviceAwareCommunicator::DeviceAwareCommunicator(const EmulatedDeviceMemory& memory,
                                                 std::unique_ptr<parallel::Communicator> inner)
    : memory_(memory), owned_(std::move(inner)), inner_(owned_.get()) {}

std::unique_ptr<parallel::Communicator> DeviceAwareCommunicator::split(int color, int key) {
  return std::make_unique<DeviceAwareCommunicator>(memory_, inner_->split(color, key));
}
void DeviceAwareCommunicator::all_reduce_impl(void* buffer, std::size_t count, DType type, parallel::ReduceOp op) {
  typed(type, host(buffer, count, type), [&](auto* p) { inner_->all_reduce(p, count, op); });
}
void DeviceAwareCommunicator::all_gather_impl(const void* send, void* recv, std::size_t count, DType type) {
  void* r = host(recv, count * static_cast<std::size_t>(size()), type);
  void* s = host(send, count, type);  // in place: inside recv, untagged alike
  if (type == DType::BF16) {
    inner_->all_gather_bf16(static_cast<const std::uint16_t*>(s), static_cast<std::uint16_t*>(r), count);
    return;
  }
  typed(type, r, [&](auto* p) { inner_->all_gather(static_cast<decltype(p)>(s), p, count); });
}
void DeviceAwareCommunicator::reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type,
                                                  parallel::ReduceOp op) {
  void* s = host(send, count * static_cast<std::size_t>(size()), type);
  void* r = host(recv, count, type);  // in place: recv == send, untagged alike
  typed(type, r, [&](auto* p) { inner_->reduce_scatter(static_cast<decltype(p)>(s), p, count, op); });
}
void DeviceAwareCommunicator::broadcast_impl(void* buffer, std::size_t count, DType type, int root) {
  typed(type, host(buffer, count, type), [&](auto* p) { inner_->broadcast(p, count, root); });
}
void DeviceAwareCommunicator::send_impl(const void* buffer, std::size_t count, DType type, int dest, int tag) {
  typed(type, host(buffer, count, type), [&](auto* p) { inner_->send(p, count, dest, tag); });
}
void DeviceAwareCommunicator::recv_impl(void* buffer, std::size_t count, DType type, int source, int tag) {
  typed(type, host(buffer, count, type), [&](auto* p) { inner_->recv(p, count, source, tag); });
}
std::unique_ptr<parallel::PendingSend> DeviceAwareCommunicator::isend_impl(const void* buffer, std::size_t count,
                                                                           DType type, int dest, int tag) {
  std::unique_ptr<parallel::PendingSend> pending;
  typed(type, host(buffer, count, type), [&](auto* p) { pending = inner_->isend(p, count, dest, tag); });
  return pending;
}
std::vector<parallel::P2POp> DeviceAwareCommunicator::on_host(std::span<const parallel::P2POp> ops) const {
  std::vector<parallel::P2POp> host_ops(ops.begin(), ops.end());
  for (parallel::P2POp& op : host_ops) op.buffer = host(op.buffer, op.count, op.type);
  return host_ops;
}
void DeviceAwareCommunicator::exchange_impl(std::span<const parallel::P2POp> ops) { inner_->exchange(on_host(ops)); }
std::unique_ptr<parallel::PendingOp> DeviceAwareCommunicator::start_exchange_impl(
    std::span<const parallel::P2POp> ops) {
  return inner_->start_exchange(on_host(ops));
}

EmulatedKernels::EmulatedKernels(const EmulatedDeviceMemory& memory)
    : memory_(memory), cpu_(std::make_unique<kernels::CpuKernels>()) {}
EmulatedKernels::~EmulatedKernels() = default;

template <class T>
T* EmulatedKernels::dev(T* p, Index count, const char* what) const {
  if (p == nullptr) return nullptr;
  using Plain = std::remove_const_t<T>;
  return static_cast<T*>(memory_.untag(p, static_cast<std::size_t>(count) * sizeof(Plain), what));
}

template <class T>
const T* EmulatedKernels::host(const T* p, const char* what) const {
  require(p == nullptr || !tagged(p), what, ": device memory where the Kernels convention has a host array");
  return p;
}

using kernels::Activation;
using kernels::Index;

// Checks a cached attention call's host-convention arrays; returns the cache elements it may
// read (through the largest slot used).
Index EmulatedKernels::cached_extent(const Index* row_begin, const Index* slots, const Index* first, Index runs,
                                     Index capacity, Index kv_heads, Index head_dim) const {
  host(row_begin, "cached attention row_begin");
  host(slots, "cached attention slots");
  host(first, "cached attention first_position");
  Index max_slot = 0;
  for (Index r = 0; r < runs; ++r) max_slot = std::max(max_slot, slots[r]);
  return (max_slot + 1) * capacity * kv_heads * head_dim;
}

void EmulatedKernels::gemm(bool ta, bool tb, Index m, Index n, Index k, float alpha,
                           const float* a, Index lda, const float* b, Index ldb, float beta,
                           float* c, Index ldc) const {
  cpu_->gemm(ta, tb, m, n, k, alpha, dev(a, 1, "gemm a"), lda, dev(b, 1, "gemm b"), ldb, beta,
             dev(c, m * ldc, "gemm c"), ldc);
}
void EmulatedKernels::gemm_bf16(bool ta, bool tb, Index m, Index n, Index k, float alpha,
                                const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                                float* c, Index ldc) const {
  cpu_->gemm_bf16(ta, tb, m, n, k, alpha, dev(a, 1, "gemm_bf16 a"), lda, dev(b, 1, "gemm_bf16 b"), ldb, beta,
                  dev(c, m * ldc, "gemm_bf16 c"), ldc);
}
void EmulatedKernels::gemm_bf16(bool ta, bool tb, Index m, Index n, Index k, float alpha,
                                const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                                std::uint16_t* c, Index ldc) const {
  cpu_->gemm_bf16(ta, tb, m, n, k, alpha, dev(a, 1, "gemm_bf16 a"), lda, dev(b, 1, "gemm_bf16 b"), ldb, beta,
                  dev(c, m * ldc, "gemm_bf16 c"), ldc);
}
void EmulatedKernels::linear_forward(float* y, const float* x, const float* w, Index n,
                                     Index in, Index out) const {
  cpu_->linear_forward(dev(y, n * out, "linear_forward y"), dev(x, n * in, "linear_forward x"),
                       dev(w, out * in, "linear_forward w"), n, in, out);
}
void EmulatedKernels::linear_backward(float* dx, float* dw, const float* dy, const float* x,
                                      const float* w, Index n, Index in, Index out,
                                      bool accumulate_dx) const {
  cpu_->linear_backward(dev(dx, n * in, "linear_backward dx"), dev(dw, out * in, "linear_backward dw"),
                        dev(dy, n * out, "linear_backward dy"), dev(x, n * in, "linear_backward x"),
                        dev(w, out * in, "linear_backward w"), n, in, out, accumulate_dx);
}
void EmulatedKernels::to_bf16(std::uint16_t* out, const float* in, Index n) const {
  cpu_->to_bf16(dev(out, n, "to_bf16 out"), dev(in, n, "to_bf16 in"), n);
}

void EmulatedKernels::from_bf16(float* out, const std::uint16_t* in, Index n) const {
  cpu_->from_bf16(dev(out, n, "from_bf16 out"), dev(in, n, "from_bf16 in"), n);
}
void EmulatedKernels::linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w,
                                          Index n, Index in, Index out) const {
  cpu_->linear_forward_bf16(dev(y, n * out, "linear_forward_bf16 y"), dev(x, n * in, "linear_forward_bf16 x"),
                            dev(w, out * in, "linear_forward_bf16 w"), n, in, out);
}
void EmulatedKernels::linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16,
                                           const std::uint16_t* x, const std::uint16_t* w, Index n,
                                           Index in, Index out, bool accumulate_dx) const {
  cpu_->linear_backward_bf16(dev(dx, n * in, "linear_backward_bf16 dx"), dev(dw, out * in, "linear_backward_bf16 dw"),
                             dev(dy, n * out, "linear_backward_bf16 dy"), dev(dy16, n * out, "linear_backward_bf16 dy16"),
                             dev(x, n * in, "linear_backward_bf16 x"), dev(w, out * in, "linear_backward_bf16 w"), n, in,
                             out, accumulate_dx);
}
void EmulatedKernels::embedding_forward(float* out, const std::int32_t* ids, const float* table,
                                        Index n, Index hidden, Index start, Index rows, float scale) const {
  cpu_->embedding_forward(dev(out, n * hidden, "embedding out"), dev(ids, n, "embedding ids"),
                          dev(table, rows * hidden, "embedding table"), n, hidden, start, rows, scale);
}
void EmulatedKernels::embedding_backward(float* dtable, const std::int32_t* ids, const float* dout,
                                         Index n, Index hidden, Index start, Index rows, float scale) const {
  cpu_->embedding_backward(dev(dtable, rows * hidden, "embedding dtable"), dev(ids, n, "embedding ids"),
                           dev(dout, n * hidden, "embedding dout"), n, hidden, start, rows, scale);
}
void EmulatedKernels::rmsnorm_forward(float* out, float* rstd, const float* x, const float* w,
                                      Index n, Index dim, float eps, float w_offset) const {
  cpu_->rmsnorm_forward(dev(out, n * dim, "rmsnorm out"), dev(rstd, n, "rmsnorm rstd"),
                        dev(x, n * dim, "rmsnorm x"), dev(w, dim, "rmsnorm w"), n, dim, eps, w_offset);
}
void EmulatedKernels::rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x,
                                           const float* w, Index n, Index dim, float eps, float w_offset) const {
  cpu_->rmsnorm_forward_bf16(dev(out, n * dim, "rmsnorm out"), dev(rstd, n, "rmsnorm rstd"),
                             dev(x, n * dim, "rmsnorm x"), dev(w, dim, "rmsnorm w"), n, dim, eps, w_offset);
}
void EmulatedKernels::rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x,
                                              const float* w, Index n, Index dim, float eps, float w_offset) const {
  cpu_->rmsnorm_forward_bf16_in(dev(out, n * dim, "rmsnorm out"), dev(rstd, n, "rmsnorm rstd"),
                                dev(x, n * dim, "rmsnorm x"), dev(w, dim, "rmsnorm w"), n, dim, eps, w_offset);
}
void EmulatedKernels::rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x,
                                               const float* w, const float* rstd, Index n, Index dim, float w_offset) const {
  cpu_->rmsnorm_backward_bf16_in(dev(dx, n * dim, "rmsnorm dx"), dev(dw, dim, "rmsnorm dw"),
                                 dev(dout, n * dim, "rmsnorm dout"), dev(x, n * dim, "rmsnorm x"),
                                 dev(w, dim, "rmsnorm w"), dev(rstd, n, "rmsnorm rstd"), n, dim, w_offset);
}
void EmulatedKernels::glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate,
                                       const std::uint16_t* up, Index n, Activation act) const {
  cpu_->glu_forward_bf16(dev(out, n, "glu out"), dev(gate, n, "glu gate"),
                         dev(up, n, "glu up"), n, act);
}
void EmulatedKernels::glu_backward_bf16(float* dgate, float* dup, const float* dout,
                                        const std::uint16_t* gate, const std::uint16_t* up,
                                        Index n, Activation act) const {
  cpu_->glu_backward_bf16(dev(dgate, n, "glu dgate"), dev(dup, n, "glu dup"),
                          dev(dout, n, "glu dout"), dev(gate, n, "glu gate"),
                          dev(up, n, "glu up"), n, act);
}
void EmulatedKernels::linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x,
                                              const std::uint16_t* w, const float* bias, Index n,
                                              Index in, Index out) const {
  cpu_->linear_forward_bf16_out(dev(y16, n * out, "linear y16"), dev(x, n * in, "linear x16"),
                                dev(w, out * in, "linear w16"), dev(bias, out, "linear bias"), n, in, out);
}
void EmulatedKernels::rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x,
                                       const float* w, const float* rstd, Index n,
                                       Index dim, float w_offset) const {
  cpu_->rmsnorm_backward(dev(dx, n * dim, "rmsnorm dx"), dev(dw, dim, "rmsnorm dw"),
                         dev(dout, n * dim, "rmsnorm dout"), dev(x, n * dim, "rmsnorm x"),
                         dev(w, dim, "rmsnorm w"), dev(rstd, n, "rmsnorm rstd"), n, dim, w_offset);
}
void EmulatedKernels::row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const {
  cpu_->row_dot(dev(out, n, "row_dot out"), dev(a, n * dim, "row_dot a"), dev(b, n * dim, "row_dot b"),
                dev(w, dim, "row_dot w"), n, dim);
}
void EmulatedKernels::rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w,
                                                const float* sums, Index n, Index dim, Index total, float eps) const {
  cpu_->rmsnorm_forward_from_sums(dev(out, n * dim, "rmsnorm out"), dev(rstd, n, "rmsnorm rstd"),
                                  dev(x, n * dim, "rmsnorm x"), dev(w, dim, "rmsnorm w"), dev(sums, n, "rmsnorm sums"),
                                  n, dim, total, eps);
}
void EmulatedKernels::rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                                     const float* sums, Index n, Index dim, Index total,
                                                     float eps) const {
  cpu_->rmsnorm_forward_from_sums_bf16(dev(out, n * dim, "rmsnorm out"), dev(rstd, n, "rmsnorm rstd"),
                                       dev(x, n * dim, "rmsnorm x"), dev(w, dim, "rmsnorm w"),
                                       dev(sums, n, "rmsnorm sums"), n, dim, total, eps);
}
void EmulatedKernels::rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x,
                                                 const float* w, const float* rstd, const float* dots, Index n,
                                                 Index dim, Index total) const {
  cpu_->rmsnorm_backward_from_dots(dev(dx, n * dim, "rmsnorm dx"), dev(dw, dim, "rmsnorm dw"),
                                   dev(dout, n * dim, "rmsnorm dout"), dev(x, n * dim, "rmsnorm x"),
                                   dev(w, dim, "rmsnorm w"), dev(rstd, n, "rmsnorm rstd"), dev(dots, n, "rmsnorm dots"),
                                   n, dim, total);
}
void EmulatedKernels::layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b,
                                        Index n, Index dim, float eps) const {
  cpu_->layernorm_forward(dev(out, n * dim, "layernorm out"), dev(rstd, n, "layernorm rstd"),
                          dev(x, n * dim, "layernorm x"), dev(w, dim, "layernorm w"), dev(b, dim, "layernorm b"), n,
                          dim, eps);
}
void EmulatedKernels::layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                             const float* b, Index n, Index dim, float eps) const {
  cpu_->layernorm_forward_bf16(dev(out, n * dim, "layernorm out"), dev(rstd, n, "layernorm rstd"),
                               dev(x, n * dim, "layernorm x"), dev(w, dim, "layernorm w"), dev(b, dim, "layernorm b"),
                               n, dim, eps);
}
void EmulatedKernels::layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                                         const float* w, const float* rstd, Index n, Index dim) const {
  cpu_->layernorm_backward(dev(dx, n * dim, "layernorm dx"), dev(dw, dim, "layernorm dw"), dev(db, dim, "layernorm db"),
                           dev(dout, n * dim, "layernorm dout"), dev(x, n * dim, "layernorm x"),
                           dev(w, dim, "layernorm w"), dev(rstd, n, "layernorm rstd"), n, dim);
}
void EmulatedKernels::head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n,
                                             Index heads, Index dim, float eps) const {
  const Index values = n * heads * dim;
  cpu_->head_layernorm_forward(dev(out, values, "head layernorm out"), dev(rstd, n * heads, "head layernorm rstd"),
                               dev(x, values, "head layernorm x"), dev(w, heads * dim, "head layernorm w"), n, heads,
                               dim, eps);
}
void EmulatedKernels::head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                                  Index n, Index heads, Index dim, float eps) const {
  const Index values = n * heads * dim;
  cpu_->head_layernorm_forward_bf16(dev(out, values, "head layernorm out"), dev(rstd, n * heads, "head layernorm rstd"),
                                    dev(x, values, "head layernorm x"), dev(w, heads * dim, "head layernorm w"), n,
                                    heads, dim, eps);
}
void EmulatedKernels::head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                              const float* rstd, Index n, Index heads, Index dim) const {
  const Index values = n * heads * dim;
  cpu_->head_layernorm_backward(dev(dx, values, "head layernorm dx"), dev(dw, heads * dim, "head layernorm dw"),
                                dev(dout, values, "head layernorm dout"), dev(x, values, "head layernorm x"),
                                dev(w, heads * dim, "head layernorm w"), dev(rstd, n * heads, "head layernorm rstd"), n,
                                heads, dim);
}
void EmulatedKernels::rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                                   Index heads, Index hd, Index rotary, kernels::RopePairs pairs) const {
  cpu_->rope_forward(dev(x, n * heads * hd, "rope x"), dev(positions, n, "rope positions"),
                     dev(cos, rotary / 2, "rope cos"), dev(sin, rotary / 2, "rope sin"), n, heads, hd, rotary, pairs);
}
void EmulatedKernels::rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin,
                                    Index n, Index heads, Index hd, Index rotary, kernels::RopePairs pairs) const {
  cpu_->rope_backward(dev(dx, n * heads * hd, "rope dx"), dev(positions, n, "rope positions"),
                      dev(cos, rotary / 2, "rope cos"), dev(sin, rotary / 2, "rope sin"), n, heads, hd, rotary, pairs);
}
void EmulatedKernels::attention_forward(float* out, float* probs, const float* q, const float* k,
                                        const float* v, const Index* cu, Index seqs, Index heads,
                                        Index kvh, Index hd, AttentionScores scores) const {
  host(cu, "attention cu_seqlens");
  const Index rows = cu[seqs];
  cpu_->attention_forward(dev(out, rows * heads * hd, "attention out"),
                          dev(probs, kernels::attention_probs_size(cu, seqs, heads), "attention probs"),
                          dev(q, rows * heads * hd, "attention q"), dev(k, rows * kvh * hd, "attention k"),
                          dev(v, rows * kvh * hd, "attention v"), cu, seqs, heads, kvh, hd, scores);
}
void EmulatedKernels::attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                         const float* q, const float* k, const float* v,
                                         const float* probs, const Index* cu, Index seqs,
                                         Index heads, Index kvh, Index hd, AttentionScores scores) const {
  host(cu, "attention cu_seqlens");
  const Index rows = cu[seqs];
  cpu_->attention_backward(dev(dq, rows * heads * hd, "attention dq"), dev(dk, rows * kvh * hd, "attention dk"),
                           dev(dv, rows * kvh * hd, "attention dv"), dev(dout, rows * heads * hd, "attention dout"),
                           dev(q, rows * heads * hd, "attention q"), dev(k, rows * kvh * hd, "attention k"),
                           dev(v, rows * kvh * hd, "attention v"),
                           dev(probs, kernels::attention_probs_size(cu, seqs, heads), "attention probs"), cu,
                           seqs, heads, kvh, hd, scores);
}
void EmulatedKernels::cached_attention_forward(float* out, const float* q, const float* kc,
                                               const float* vc, const Index* row_begin,
                                               const Index* slots, const Index* first, Index runs,
                                               Index capacity, Index heads, Index kvh,
                                               Index hd, AttentionScores scores) const {
  const Index rows = row_begin[runs];
  const Index cache = cached_extent(row_begin, slots, first, runs, capacity, kvh, hd);
  cpu_->cached_attention_forward(dev(out, rows * heads * hd, "cached attention out"),
                                 dev(q, rows * heads * hd, "cached attention q"), dev(kc, cache, "k cache"),
                                 dev(vc, cache, "v cache"), row_begin, slots, first, runs, capacity, heads,
                                 kvh, hd, scores);
}
void EmulatedKernels::scatter_rows(float* dst, const float* src, const Index* rows, Index n,
                                   Index width) const {
  cpu_->scatter_rows(dev(dst, 1, "scatter_rows dst"), dev(src, n * width, "scatter_rows src"),
                     dev(rows, n, "scatter_rows rows"), n, width);
}
void EmulatedKernels::cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                                    const std::uint16_t* kc, const std::uint16_t* vc,
                                                    const Index* row_begin, const Index* slots, const Index* first,
                                                    Index runs, Index capacity, Index heads, Index kvh,
                                                    Index hd, AttentionScores scores) const {
  const Index rows = row_begin[runs];
  const Index cache = cached_extent(row_begin, slots, first, runs, capacity, kvh, hd);
  cpu_->cached_attention_forward_bf16(dev(out, rows * heads * hd, "cached attention out"),
                                      dev(q, rows * heads * hd, "cached attention q"), dev(kc, cache, "k cache"),
                                      dev(vc, cache, "v cache"), row_begin, slots, first, runs, capacity, heads, kvh,
                                      hd, scores);
}
void EmulatedKernels::scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                        Index width) const {
  cpu_->scatter_rows_bf16(dev(dst, 1, "scatter_rows_bf16 dst"), dev(src, n * width, "scatter_rows_bf16 src"),
                          dev(rows, n, "scatter_rows_bf16 rows"), n, width);
}
void EmulatedKernels::rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos,
                                        const float* sin, Index n, Index heads, Index hd, Index rotary,
                                        kernels::RopePairs pairs) const {
  cpu_->rope_forward_bf16(dev(x, n * heads * hd, "rope x"), dev(positions, n, "rope positions"),
                          dev(cos, rotary / 2, "rope cos"), dev(sin, rotary / 2, "rope sin"), n, heads, hd, rotary,
                          pairs);
}
void EmulatedKernels::attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                                             const std::uint16_t* k, const std::uint16_t* v, const Index* cu,
                                             Index seqs, Index heads, Index kvh, Index hd,
                                             AttentionScores scores) const {
  host(cu, "attention cu_seqlens");
  const Index rows = cu[seqs];
  cpu_->attention_forward_bf16(dev(out, rows * heads * hd, "attention out"),
                               dev(saved, kernels::attention_probs_size(cu, seqs, heads), "attention probs"),
                               dev(q, rows * heads * hd, "attention q"), dev(k, rows * kvh * hd, "attention k"),
                               dev(v, rows * kvh * hd, "attention v"), cu, seqs, heads, kvh, hd, scores);
}
void EmulatedKernels::attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout,
                                              const std::uint16_t* q, const std::uint16_t* k,
                                              const std::uint16_t* v, const std::uint16_t* out,
                                              const float* saved, const Index* cu, Index seqs, Index heads,
                                              Index kvh, Index hd, AttentionScores scores) const {
  host(cu, "attention cu_seqlens");
  const Index rows = cu[seqs];
  cpu_->attention_backward_bf16(
      dev(dq, rows * heads * hd, "attention dq"), dev(dk, rows * kvh * hd, "attention dk"),
      dev(dv, rows * kvh * hd, "attention dv"), dev(dout, rows * heads * hd, "attention dout"),
      dev(q, rows * heads * hd, "attention q"), dev(k, rows * kvh * hd, "attention k"),
      dev(v, rows * kvh * hd, "attention v"), dev(out, rows * heads * hd, "attention out"),
      dev(saved, kernels::attention_probs_size(cu, seqs, heads), "attention probs"), cu, seqs, heads, kvh, hd, scores);
}
void EmulatedKernels::gather_rows(float* dst, const float* src, const Index* rows, Index n,
                                  Index width) const {
  cpu_->gather_rows(dev(dst, n * width, "gather_rows dst"), dev(src, 1, "gather_rows src"),
                    dev(rows, n, "gather_rows rows"), n, width);
}
void EmulatedKernels::gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                       Index width) const {
  cpu_->gather_rows_bf16(dev(dst, n * width, "gather_rows_bf16 dst"), dev(src, 1, "gather_rows_bf16 src"),
                         dev(rows, n, "gather_rows_bf16 rows"), n, width);
}
void EmulatedKernels::moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n,
                                  Index k, Index width) const {
  cpu_->moe_combine(dev(out, n * width, "moe_combine out"), dev(y, n * k * width, "moe_combine y"),
                    dev(slots, n * k, "moe_combine slots"), dev(weights, n * k, "moe_combine weights"), n, k, width);
}
void EmulatedKernels::moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y,
                                           const Index* slots, const float* weights, Index n, Index k,
                                           Index width) const {
  cpu_->moe_combine_backward(dev(dy, n * k * width, "moe_combine dy"), dev(dweights, n * k, "moe_combine dweights"),
                             dev(dout, n * width, "moe_combine dout"), dev(y, n * k * width, "moe_combine y"),
                             dev(slots, n * k, "moe_combine slots"), dev(weights, n * k, "moe_combine weights"), n, k,
                             width);
}
void EmulatedKernels::glu_forward(float* out, const float* gate, const float* up,
                                  Index n, Activation act) const {
  cpu_->glu_forward(dev(out, n, "glu out"), dev(gate, n, "glu gate"), dev(up, n, "glu up"), n, act);
}
void EmulatedKernels::glu_backward(float* dgate, float* dup, const float* dout,
                                   const float* gate, const float* up, Index n, Activation act) const {
  cpu_->glu_backward(dev(dgate, n, "glu dgate"), dev(dup, n, "glu dup"), dev(dout, n, "glu dout"),
                     dev(gate, n, "glu gate"), dev(up, n, "glu up"), n, act);
}
void EmulatedKernels::logits_max(float* row_max, const float* logits, Index n, Index ld,
                                 Index valid) const {
  cpu_->logits_max(dev(row_max, n, "logits_max out"), dev(logits, n * ld, "logits_max logits"), n, ld, valid);
}
void EmulatedKernels::logits_sumexp_target(float* sumexp, float* target_logit,
                                           const float* logits, const float* row_max,
                                           const std::int32_t* targets, Index n, Index ld,
                                           Index valid, Index start) const {
  cpu_->logits_sumexp_target(dev(sumexp, n, "sumexp"), dev(target_logit, n, "target logit"),
                             dev(logits, n * ld, "logits"), dev(row_max, n, "row max"),
                             dev(targets, n, "targets"), n, ld, valid, start);
}
void EmulatedKernels::logprob_from_sums(float* logprob, float* lse, const float* sums,
                                        const std::int32_t* targets, Index n) const {
  cpu_->logprob_from_sums(dev(logprob, n, "logprob"), dev(lse, n, "lse"), dev(sums, 2 * n, "sums"),
                          dev(targets, n, "targets"), n);
}
void EmulatedKernels::logprob_backward(float* dlogits, const float* logits, const float* lse,
                                       const std::int32_t* targets, const float* dlogprob,
                                       Index n, Index ld, Index valid, Index start, float softcap) const {
  cpu_->logprob_backward(dev(dlogits, n * ld, "dlogits"), dev(logits, n * ld, "logits"), dev(lse, n, "lse"),
                         dev(targets, n, "targets"), dev(dlogprob, n, "dlogprob"), n, ld, valid, start, softcap);
}
void EmulatedKernels::softcap_forward(float* x, Index n, float cap) const {
  cpu_->softcap_forward(dev(x, n, "softcap x"), n, cap);
}
void EmulatedKernels::add_inplace(float* y, const float* x, Index n) const {
  cpu_->add_inplace(dev(y, n, "add y"), dev(x, n, "add x"), n);
}
void EmulatedKernels::copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width,
                              Index rows) const {
  if (rows == 0) return;
  cpu_->copy_2d(dev(static_cast<char*>(dst), (rows - 1) * dst_pitch + width, "copy_2d dst"), dst_pitch,
                dev(static_cast<const char*>(src), (rows - 1) * src_pitch + width, "copy_2d src"), src_pitch, width,
                rows);
}
void EmulatedKernels::add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const {
  if (rows == 0) return;
  cpu_->add_2d(dev(dst, (rows - 1) * dst_ld + cols, "add_2d dst"), dst_ld,
               dev(src, (rows - 1) * src_ld + cols, "add_2d src"), src_ld, rows, cols);
}
void EmulatedKernels::scale(float* y, const float* x, float alpha, Index n) const {
  cpu_->scale(dev(y, n, "scale y"), dev(x, n, "scale x"), alpha, n);
}
void EmulatedKernels::clamp(float* out, const float* x, Index n, float limit) const {
  cpu_->clamp(dev(out, n, "clamp out"), dev(x, n, "clamp x"), n, limit);
}
void EmulatedKernels::clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const {
  cpu_->clamp_bf16(dev(out, n, "clamp out"), dev(x, n, "clamp x"), n, limit);
}
void EmulatedKernels::clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const {
  cpu_->clamp_backward(dev(dx, n, "clamp dx"), dev(dy, n, "clamp dy"), dev(x, n, "clamp x"), n, limit);
}
void EmulatedKernels::clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n,
                                             float limit) const {
  cpu_->clamp_backward_bf16_in(dev(dx, n, "clamp dx"), dev(dy, n, "clamp dy"), dev(x, n, "clamp x"), n, limit);
}
void EmulatedKernels::dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
                              bool accumulate) const {
  DropoutMask host = mask;
  host.row_keys = dev(mask.row_keys, rows, "dropout row_keys");
  cpu_->dropout(dev(y, rows * cols, "dropout y"), dev(x, rows * cols, "dropout x"), rows, cols, host, accumulate);
}
void EmulatedKernels::dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                                   const DropoutMask& mask) const {
  DropoutMask host = mask;
  host.row_keys = dev(mask.row_keys, rows, "dropout row_keys");
  cpu_->dropout_bf16(dev(y, rows * cols, "dropout y"), dev(x, rows * cols, "dropout x"), rows, cols, host);
}
void EmulatedKernels::add_bias(float* y, const float* bias, Index n, Index width) const {
  cpu_->add_bias(dev(y, n * width, "add_bias y"), dev(bias, width, "add_bias bias"), n, width);
}
void EmulatedKernels::bias_backward(float* dbias, const float* dy, Index n, Index width) const {
  cpu_->bias_backward(dev(dbias, width, "bias_backward dbias"), dev(dy, n * width, "bias_backward dy"), n, width);
}
namespace {
// Elements from the buffer's start to the end of its last range (the extent to check).
template <class R>
Index extent_of(const R* ranges, Index count) {
  Index end = 0;
  for (Index i = 0; i < count; ++i) end = std::max(end, ranges[i].offset + ranges[i].length);
  return end;
}
}  // namespace

double EmulatedKernels::sum_squares(const float* x, const Range* ranges, Index count) const {
  return cpu_->sum_squares(dev(x, extent_of(ranges, count), "sum_squares x"), ranges, count);
}
void EmulatedKernels::adamw_update(float* param, std::uint16_t* param_bf16, const float* grad,
                                   float* m, float* v, const UpdateRange* ranges, Index count,
                                   const AdamW& h) const {
  const Index n = extent_of(ranges, count);
  cpu_->adamw_update(dev(param, n, "adamw param"), dev(param_bf16, n, "adamw param bf16"),
                     dev(grad, n, "adamw grad"), dev(m, n, "adamw m"), dev(v, n, "adamw v"), ranges,
                     count, h);
}
void EmulatedKernels::rmsprop_update(float* param, std::uint16_t* param_bf16, const float* grad, float* v,
                                     const UpdateRange* ranges, Index count, const RmsProp& h) const {
  const Index n = extent_of(ranges, count);
  cpu_->rmsprop_update(dev(param, n, "rmsprop param"), dev(param_bf16, n, "rmsprop param bf16"),
                       dev(grad, n, "rmsprop grad"), dev(v, n, "rmsprop v"), ranges, count, h);
}
void EmulatedKernels::sampling_logits(float* z, const float* logits, Index n, Index ld,
                                      Index valid, Index start, const std::int32_t* history,
                                      const Index* offsets, float penalty,
                                      const std::uint8_t* ban_eos, const std::int32_t* eos,
                                      Index eos_count, float inv_temperature) const {
  const Index* offsets_host = static_cast<const Index*>(memory_.untag(offsets, static_cast<std::size_t>(n + 1) * sizeof(Index), "sampling offsets"));
  cpu_->sampling_logits(dev(z, n * valid, "sampling z"), dev(logits, n * ld, "sampling logits"), n, ld, valid,
                        start, dev(history, std::max<Index>(offsets_host[n], 1), "sampling history"),
                        offsets_host, penalty, dev(ban_eos, n, "sampling ban_eos"),
                        dev(eos, std::max<Index>(eos_count, 1), "sampling eos ids"), eos_count,
                        inv_temperature);
}
void EmulatedKernels::row_max_f64(double* out, const float* x, Index n, Index ld, Index valid,
                                  bool finite_only) const {
  cpu_->row_max_f64(dev(out, n, "row_max out"), dev(x, n * ld, "row_max x"), n, ld, valid, finite_only);
}
void EmulatedKernels::row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                                     bool finite_only) const {
  cpu_->row_sumexp_f64(dev(out, n, "row_sumexp out"), dev(x, n * ld, "row_sumexp x"), n, ld, valid,
                       dev(shift, n, "row_sumexp shift"), finite_only);
}
void EmulatedKernels::row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid,
                                         const double* shift, const std::uint64_t* prefix, int bits) const {
  cpu_->row_mass_histogram(dev(out, n * kMassBuckets, "mass histogram out"), dev(x, n * ld, "mass histogram x"), n, ld,
                           valid, dev(shift, n, "mass histogram shift"), dev(prefix, n, "mass histogram prefix"), bits);
}
void EmulatedKernels::row_top_k(double* out, const float* z, Index n, Index valid, Index k,
                                Index start) const {
  cpu_->row_top_k(dev(out, n * 2 * k, "top_k out"), dev(z, n * valid, "top_k z"), n, valid, k, start);
}
void EmulatedKernels::gumbel_argmax(double* best_score, double* best_id, const float* z, Index n,
                                    Index valid, const double* threshold, bool noisy,
                                    std::uint64_t seed, const std::uint64_t* sample_ids,
                                    const std::int64_t* positions, Index start) const {
  cpu_->gumbel_argmax(dev(best_score, n, "gumbel best score"), dev(best_id, n, "gumbel best id"),
                      dev(z, n * valid, "gumbel z"), n, valid, dev(threshold, n, "gumbel threshold"), noisy,
                      seed, dev(sample_ids, n, "gumbel sample ids"), dev(positions, n, "gumbel positions"),
                      start);
}
void EmulatedKernels::logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids,
                                    Index count, Index stride, Index start) const {
  cpu_->logits_at_ids(dev(out, n * count, "logits_at_ids out"), dev(x, n * ld, "logits_at_ids x"), n, ld, valid,
                      dev(ids, std::max<Index>((n * count - 1) * stride + 1, 1), "logits_at_ids ids"), count, stride,
                      start);
}

}  // namespace spin::testing
