// An emulated GPU for CPU-only test machines: Device::Cuda tensors whose "device pointers" a
// host dereference cannot follow, and kernels that refuse host pointers. It checks the one rule
// the CUDA path depends on and that a CPU run cannot see -- data the kernels read or write lives
// on the kernels' device, and host code never reads device memory except through a copy --
// without a GPU.
//
// How: EmulatedDeviceMemory (the MemoryOps of Device::Cuda while installed) allocates host
// memory and hands out its address with bit 62 set: a non-canonical x86-64 address, so host code
// that dereferences it faults at once (SIGSEGV), while pointer arithmetic on it works as on a
// device pointer. EmulatedKernels wraps CpuKernels: every array argument must carry the tag and
// lie inside a live emulated allocation (spin::Error naming the kernel and argument otherwise);
// the per-sequence shape arrays, host memory by the Kernels convention, must not carry it. Both
// untag and forward, so results are bitwise those of the CPU path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/device.h"
#include "kernels/kernels.h"
#include "parallel/communicator.h"

namespace spin::testing {

class EmulatedDeviceMemory final : public MemoryOps {
 public:
  static constexpr std::uintptr_t kTag = std::uintptr_t{1} << 62;

  // Registers itself for Device::Cuda; the destructor unregisters it.
  EmulatedDeviceMemory();
  ~EmulatedDeviceMemory() override;

  void* allocate(std::size_t bytes) override;
  void release(void* p) override;
  void fill_zero(void* p, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;

  // The host address behind device pointer p, after checking that [p, p + bytes) lies in one
  // live allocation; spin::Error naming `what` otherwise.
  void* untag(const void* p, std::size_t bytes, const char* what) const;
  std::size_t live_bytes() const;
  // Host <-> device copies and allocations so far (what a GPU step waits on: each copy a host
  // round trip or an upload on the stream, each allocation a memset).
  struct Traffic {
    std::size_t from_host = 0, to_host = 0;
    std::size_t allocations = 0;  // allocate() calls (each a zero-filled block: a memset on a GPU)
  };
  Traffic traffic() const { return traffic_; }
  // For communication: device pointers untagged (checked), host pointers as they are.
  void* host_address(const void* p, std::size_t bytes) const;

 private:
  std::map<std::uintptr_t, std::size_t> live_;  // untagged base -> bytes
  Traffic traffic_;
};

// CUDA-aware MPI (or NCCL), emulated: forwards every call to `inner` with the host addresses
// behind emulated device buffers, host buffers unchanged -- so a multi-rank run with its model
// on the emulated device communicates as a GPU job does, device buffers included.
class DeviceAwareCommunicator final : public parallel::Communicator {
 public:
  DeviceAwareCommunicator(const EmulatedDeviceMemory& memory, parallel::Communicator& inner);
  DeviceAwareCommunicator(const EmulatedDeviceMemory& memory, std::unique_ptr<parallel::Communicator> inner);

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::unique_ptr<parallel::Communicator> split(int color, int key) override;

 protected:
  void all_reduce_impl(void* buffer, std::size_t count, DType type, parallel::ReduceOp op) override;
  void all_gather_impl(const void* send, void* recv, std::size_t count, DType type) override;
  void reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type,
                           parallel::ReduceOp op) override;
  void broadcast_impl(void* buffer, std::size_t count, DType type, int root) override;
  void send_impl(const void* buffer, std::size_t count, DType type, int dest, int tag) override;
  void recv_impl(void* buffer, std::size_t count, DType type, int source, int tag) override;
  std::unique_ptr<parallel::PendingSend> isend_impl(const void* buffer, std::size_t count, DType type,
                                                    int dest, int tag) override;
  void barrier_impl() override { inner_->barrier(); }
  void exchange_impl(std::span<const parallel::P2POp> ops) override;
  std::unique_ptr<parallel::PendingOp> start_exchange_impl(std::span<const parallel::P2POp> ops) override;

 private:
  std::vector<parallel::P2POp> on_host(std::span<const parallel::P2POp> ops) const;

  void* host(const void* p, std::size_t count, DType type) const {
    return memory_.host_address(p, count * dtype_size(type));
  }

  const EmulatedDeviceMemory& memory_;
  std::unique_ptr<parallel::Communicator> owned_;
  parallel::Communicator* inner_;
};

// CpuKernels on emulated device memory. `memory` must outlive it.
class EmulatedKernels final : public kernels::Kernels {
 public:
  explicit EmulatedKernels(const EmulatedDeviceMemory& memory);
  ~EmulatedKernels() override;

  Device device() const override { return Device::Cuda; }

  using Index = kernels::Index;
  using Activation = kernels::Activation;
  using AttentionScores = kernels::AttentionScores;
  void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a,
            Index lda, const float* b, Index ldb, float beta, float* c, Index ldc) const override;
  void linear_forward(float* y, const float* x, const float* w, Index n, Index in,
                      Index out) const override;
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                       Index n, Index in, Index out, bool accumulate_dx) const override;
  void to_bf16(std::uint16_t* out, const float* in, Index n) const override;
  void from_bf16(float* out, const std::uint16_t* in, Index n) const override;
  void linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w, Index n,
                           Index in, Index out) const override;
  void linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16,
                            const std::uint16_t* x, const std::uint16_t* w, Index n, Index in,
                            Index out, bool accumulate_dx) const override;
  void gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                 Index lda, const std::uint16_t* b, Index ldb, float beta, float* c, Index ldc) const override;
  void gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                 Index lda, const std::uint16_t* b, Index ldb, float beta, std::uint16_t* c,
                 Index ldc) const override;
  void embedding_forward(float* out, const std::int32_t* ids, const float* table, Index n,
                         Index hidden, Index vocab_start, Index rows, float scale) const override;
  void embedding_backward(float* dtable, const std::int32_t* ids, const float* dout, Index n,
                          Index hidden, Index vocab_start, Index rows, float scale) const override;
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, Index n,
                       Index dim, float eps, float w_offset) const override;
  void rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                            Index n, Index dim, float eps, float w_offset) const override;
  void rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w, Index n,
                               Index dim, float eps, float w_offset) const override;
  void rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x, const float* w,
                                const float* rstd, Index n, Index dim, float w_offset) const override;
  void glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate, const std::uint16_t* up,
                        Index n, Activation act) const override;
  void glu_backward_bf16(float* dgate, float* dup, const float* dout, const std::uint16_t* gate,
                         const std::uint16_t* up, Index n, Activation act) const override;
  void linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x, const std::uint16_t* w,
                               const float* bias, Index n, Index in, Index out) const override;
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                        const float* rstd, Index n, Index dim, float w_offset) const override;
  void row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const override;
  void rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w, const float* sums, Index n,
                                 Index dim, Index total, float eps) const override;
  void rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                      const float* sums, Index n, Index dim, Index total, float eps) const override;
  void rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                  const float* rstd, const float* dots, Index n, Index dim, Index total) const override;
  void layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b, Index n, Index dim,
                         float eps) const override;
  void layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, const float* b, Index n,
                              Index dim, float eps) const override;
  void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                          const float* rstd, Index n, Index dim) const override;
  void head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index heads, Index dim,
                              float eps) const override;
  void head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                   Index heads, Index dim, float eps) const override;
  void head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                               const float* rstd, Index n, Index heads, Index dim) const override;
  void rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n, Index heads,
                    Index head_dim, Index rotary_dim, kernels::RopePairs pairs) const override;
  void rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin, Index n, Index heads,
                     Index head_dim, Index rotary_dim, kernels::RopePairs pairs) const override;
  void attention_forward(float* out, float* probs, const float* q, const float* k,
                         const float* v, const Index* cu_seqlens, Index num_seqs, Index heads,
                         Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                          const float* k, const float* v, const float* probs,
                          const Index* cu_seqlens, Index num_seqs, Index heads, Index kv_heads,
                          Index head_dim, AttentionScores scores) const override;
  void cached_attention_forward(float* out, const float* q, const float* k_cache,
                                const float* v_cache, const Index* row_begin, const Index* slots,
                                const Index* first_position, Index runs, Index capacity,
                                Index heads, Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void scatter_rows(float* dst, const float* src, const Index* rows, Index n,
                    Index width) const override;
  void gather_rows(float* dst, const float* src, const Index* rows, Index n,
                   Index width) const override;
  void gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                        Index width) const override;
  void moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n, Index k,
                   Index width) const override;
  void moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y, const Index* slots,
                            const float* weights, Index n, Index k, Index width) const override;
  void cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                     const std::uint16_t* k_cache, const std::uint16_t* v_cache,
                                     const Index* row_begin, const Index* slots,
                                     const Index* first_position, Index runs, Index capacity,
                                     Index heads, Index kv_heads, Index head_dim,
                                     AttentionScores scores) const override;
  void scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                         Index width) const override;
  void rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                         Index heads, Index head_dim, Index rotary_dim, kernels::RopePairs pairs) const override;
  void attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                              const std::uint16_t* k, const std::uint16_t* v, const Index* cu_seqlens,
                              Index num_seqs, Index heads, Index kv_heads,
                              Index head_dim, AttentionScores scores) const override;
  void attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout,
                               const std::uint16_t* q, const std::uint16_t* k,
                               const std::uint16_t* v, const std::uint16_t* out,
                               const float* saved, const Index* cu_seqlens, Index num_seqs,
                               Index heads, Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void glu_forward(float* out, const float* gate, const float* up, Index n, Activation act) const override;
  void glu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                    const float* up, Index n, Activation act) const override;
  void logits_max(float* row_max, const float* logits, Index n, Index ld,
                  Index valid) const override;
  void logits_sumexp_target(float* sumexp, float* target_logit, const float* logits,
                            const float* row_max, const std::int32_t* targets, Index n, Index ld,
                            Index valid, Index vocab_start) const override;
  void logprob_from_sums(float* logprob, float* lse, const float* sums,
                         const std::int32_t* targets, Index n) const override;
  void logprob_backward(float* dlogits, const float* logits, const float* lse,
                        const std::int32_t* targets, const float* dlogprob, Index n, Index ld,
                        Index valid, Index vocab_start, float softcap) const override;
  void softcap_forward(float* x, Index n, float cap) const override;
  void add_inplace(float* y, const float* x, Index n) const override;
  void copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width, Index rows) const override;
  void add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const override;
  void scale(float* y, const float* x, float alpha, Index n) const override;
  void clamp(float* out, const float* x, Index n, float limit) const override;
  void clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const override;
  void clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const override;
  void clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n, float limit) const override;
  void dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
               bool accumulate) const override;
  void dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                    const DropoutMask& mask) const override;
  void add_bias(float* y, const float* bias, Index n, Index width) const override;
  void bias_backward(float* dbias, const float* dy, Index n, Index width) const override;
  double sum_squares(const float* x, const Range* ranges, Index count) const override;
  void adamw_update(float* param, std::uint16_t* param_bf16, const float* grad, float* m, float* v,
                    const UpdateRange* ranges, Index count, const AdamW& h) const override;
  void rmsprop_update(float* param, std::uint16_t* param_bf16, const float* grad, float* v,
                      const UpdateRange* ranges, Index count, const RmsProp& h) const override;
  void sampling_logits(float* z, const float* logits, Index n, Index ld, Index valid,
                       Index vocab_start, const std::int32_t* history, const Index* offsets,
                       float penalty, const std::uint8_t* ban_eos, const std::int32_t* eos,
                       Index eos_count, float inv_temperature) const override;
  void row_max_f64(double* out, const float* x, Index n, Index ld, Index valid, bool finite_only) const override;
  void row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                      bool finite_only) const override;
  void row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                          const std::uint64_t* prefix, int bits) const override;
  void row_top_k(double* out, const float* z, Index n, Index valid, Index k,
                 Index vocab_start) const override;
  void gumbel_argmax(double* best_score, double* best_id, const float* z, Index n, Index valid,
                     const double* threshold, bool noisy, std::uint64_t seed,
                     const std::uint64_t* sample_ids, const std::int64_t* positions,
                     Index vocab_start) const override;
  void logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids, Index count,
                     Index stride, Index vocab_start) const override;

 private:
  // Device pointer -> host address, checked for `count` elements.
  template <class T>
  T* dev(T* p, Index count, const char* what) const;
  // A host-convention array: must not be a device pointer.
  template <class T>
  const T* host(const T* p, const char* what) const;
  Index cached_extent(const Index* row_begin, const Index* slots, const Index* first, Index runs,
                      Index capacity, Index kv_heads, Index head_dim) const;

  const EmulatedDeviceMemory& memory_;
  std::unique_ptr<kernels::Kernels> cpu_;
};

}  // namespace spin::testing
