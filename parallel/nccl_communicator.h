// NcclCommunicator: the Communicator of one TP, PP or DP group on GPUs (one rank per GPU).
// Device buffers go through NCCL on the group's CUDA stream; host buffers (loss sums, metrics,
// shapes) through the bootstrap communicator the group was made from (MPI), so the model code
// calls one communicator for both and never branches on the device. The NCCL communicator is
// created from a unique id that group rank 0 makes and broadcasts over the bootstrap group.
//
// Semantics on device buffers: calls are stream-ordered on `stream` and return once queued
// (compute queued on the same stream after them sees their results; host code reading a
// result synchronises first). In-place all_gather and reduce_scatter keep the interface's
// meaning (reduce_scatter in place leaves the result at the start of the buffer, as on MPI).
// NCCL has no tags: messages between a pair of ranks match in the order they are posted, which
// is how spin posts them. exchange() is one NCCL group, so neighbours never deadlock. A buffer
// is "device" when cudaPointerGetAttributes says so (device or managed memory).
//
// Overlap: iall_reduce and ireduce on device memory run beside the compute stream, on a side stream of
// its own with its own NCCL communicator (ncclCommSplit of the group's, made at the first such
// call): it starts once the work queued so far on `stream` is done (the gradients it reduces
// are written), and PendingOp::wait() makes `stream` wait for it -- on the GPU, the host does
// not block. So the DP all-reduce of finished layers proceeds while the backward continues.
// Two communicators then run kernels at once on one GPU; every rank issues them in the same
// order, and NCCL_LAUNCH_ORDER_IMPLICIT=1 (set by the job scripts) makes NCCL launch them in
// that order too, so that neither can wait on a peer whose GPU runs the other first.
// start_exchange (the interleaved pipeline's overlapped transfers) is the same on a second side
// stream with a third communicator: a stage's sends and receives run while it computes.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>

#include "parallel/communicator.h"

namespace spin::parallel {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap`'s group; uses the current CUDA device. Throws spin::Error naming
  // the NCCL call on failure.
  NcclCommunicator(std::unique_ptr<Communicator> bootstrap, cudaStream_t stream);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return bootstrap_->rank(); }
  int size() const override { return bootstrap_->size(); }
  std::unique_ptr<Communicator> split(int color, int key) override;

  cudaStream_t stream() const { return stream_; }
  static bool is_device_pointer(const void* p);

 protected:
  void all_reduce_impl(void* buffer, std::size_t count, DType type, ReduceOp op) override;
  void all_gather_impl(const void* send, void* recv, std::size_t count, DType type) override;
  void reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type, ReduceOp op) override;
  void broadcast_impl(void* buffer, std::size_t count, DType type, int root) override;
  void send_impl(const void* buffer, std::size_t count, DType type, int dest, int tag) override;
  void recv_impl(void* buffer, std::size_t count, DType type, int source, int tag) override;
  std::unique_ptr<PendingSend> isend_impl(const void* buffer, std::size_t count, DType type, int dest,
                                          int tag) override;
  std::unique_ptr<PendingOp> iall_reduce_impl(void* buffer, std::size_t count, DType type,
                                              ReduceOp op) override;
  std::unique_ptr<PendingOp> ireduce_impl(void* buffer, std::size_t count, DType type, int root,
                                          ReduceOp op) override;
  void barrier_impl() override;
  void exchange_impl(std::span<const P2POp> ops) override;
  std::unique_ptr<PendingOp> start_exchange_impl(std::span<const P2POp> ops) override;

 private:
  // A communicator and stream beside the compute stream (see Overlap above), made on demand.
  struct Side {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
  };
  // Makes `side` at its first use (collective over the group) and orders its stream after the
  // work queued so far on the compute stream.
  void start_on(Side& side);
  // True when every buffer of `ops` is on the device, false when every one is on the host.
  static bool on_device(std::span<const P2POp> ops);
  // One NCCL group of the sends and receives.
  static void post(std::span<const P2POp> ops, ncclComm_t comm, cudaStream_t stream);

  std::unique_ptr<Communicator> bootstrap_;  // host buffers, and the id at construction
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
  Side collectives_;  // iall_reduce, ireduce
  Side transfers_;    // start_exchange
};

}  // namespace spin::parallel
