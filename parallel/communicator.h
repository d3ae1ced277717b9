// Communicator: the one interface through which spin talks between ranks (collectives and
// point-to-point on host buffers today; NCCL on device buffers later). Every call is counted
// per operation type -- calls and payload bytes handed in by this rank -- so that tests and
// benchmarks can assert communication volumes exactly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace spin::parallel {

enum class ReduceOp { Sum, Max, Min };

enum class CommOp { AllReduce, AllGather, ReduceScatter, Broadcast, Send, Recv, Barrier, Reduce };
inline constexpr std::size_t kNumCommOps = 8;
std::string_view comm_op_name(CommOp op);

// Payload bytes are what this rank hands to the call: all_reduce and broadcast count the
// buffer, all_gather its send block, reduce_scatter its whole send buffer, send/recv the message.
struct CommStats {
  std::array<std::uint64_t, kNumCommOps> calls{};
  std::array<std::uint64_t, kNumCommOps> bytes{};

  std::uint64_t calls_of(CommOp op) const { return calls[static_cast<std::size_t>(op)]; }
  std::uint64_t bytes_of(CommOp op) const { return bytes[static_cast<std::size_t>(op)]; }
};

// One half of a point-to-point exchange (see Communicator::exchange).
struct P2POp {
  bool is_send = true;
  void* buffer = nullptr;
  std::size_t count = 0;
  DType type = DType::F32;
  int peer = 0;
  int tag = 0;

  template <class T>
  static P2POp send(const T* buffer, std::size_t count, int peer, int tag = 0) {
    return {true, const_cast<T*>(buffer), count, dtype_of<T>(), peer, tag};
  }
  template <class T>
  static P2POp recv(T* buffer, std::size_t count, int peer, int tag = 0) {
    return {false, buffer, count, dtype_of<T>(), peer, tag};
  }
};

// An operation in flight (Communicator::isend, iall_reduce). wait(), or the destructor,
// completes it; the buffer must stay alive and untouched until then.
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  virtual void wait() = 0;
};
using PendingSend = PendingOp;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: every rank ends with the element-wise reduction over the group.
  template <class T>
  void all_reduce(T* buffer, std::size_t count, ReduceOp op = ReduceOp::Sum) {
    record(CommOp::AllReduce, count * sizeof(T));
    all_reduce_impl(buffer, count, dtype_of<T>(), op);
  }
  // all_reduce started and returned at once (overlap with compute): the result is in `buffer`
  // after wait(). Every rank must start the group's nonblocking collectives in the same order.
  template <class T>
  std::unique_ptr<PendingOp> iall_reduce(T* buffer, std::size_t count, ReduceOp op = ReduceOp::Sum) {
    record(CommOp::AllReduce, count * sizeof(T));
    return iall_reduce_impl(buffer, count, dtype_of<T>(), op);
  }
  // A reduction into `root` started and returned at once: after wait() root's `buffer` holds
  // the element-wise reduction over the group (in place); the other ranks' buffers are then
  // unspecified. Ordered like iall_reduce.
  template <class T>
  std::unique_ptr<PendingOp> ireduce(T* buffer, std::size_t count, int root, ReduceOp op = ReduceOp::Sum) {
    record(CommOp::Reduce, count * sizeof(T));
    return ireduce_impl(buffer, count, dtype_of<T>(), root, op);
  }
  // recv holds size() blocks of `count` elements, in rank order. `send` may be this rank's
  // block of `recv` itself (in place).
  template <class T>
  void all_gather(const T* send, T* recv, std::size_t count) {
    record(CommOp::AllGather, count * sizeof(T));
    all_gather_impl(send, recv, count, dtype_of<T>());
  }
  // all_gather of bf16 values (their std::uint16_t storage, as Tensor::bf16() gives it): a copy,
  // no arithmetic, so no reduction takes bf16.
  void all_gather_bf16(const std::uint16_t* send, std::uint16_t* recv, std::size_t count) {
    record(CommOp::AllGather, count * sizeof(std::uint16_t));
    all_gather_impl(send, recv, count, DType::BF16);
  }
  // send holds size() blocks of `count`; rank r receives the reduction of everyone's block r.
  // With recv == send (in place) the result lands in the first `count` elements of send.
  template <class T>
  void reduce_scatter(const T* send, T* recv, std::size_t count, ReduceOp op = ReduceOp::Sum) {
    record(CommOp::ReduceScatter, count * sizeof(T) * static_cast<std::size_t>(size()));
    reduce_scatter_impl(send, recv, count, dtype_of<T>(), op);
  }
  template <class T>
  void broadcast(T* buffer, std::size_t count, int root) {
    record(CommOp::Broadcast, count * sizeof(T));
    broadcast_impl(buffer, count, dtype_of<T>(), root);
  }
  template <class T>
  void send(const T* buffer, std::size_t count, int dest, int tag = 0) {
    record(CommOp::Send, count * sizeof(T));
    send_impl(buffer, count, dtype_of<T>(), dest, tag);
  }
  // Starts a send and returns at once: for messages whose receiver may be busy sending to us.
  template <class T>
  std::unique_ptr<PendingSend> isend(const T* buffer, std::size_t count, int dest, int tag = 0) {
    record(CommOp::Send, count * sizeof(T));
    return isend_impl(buffer, count, dtype_of<T>(), dest, tag);
  }
  template <class T>
  void recv(T* buffer, std::size_t count, int source, int tag = 0) {
    record(CommOp::Recv, count * sizeof(T));
    recv_impl(buffer, count, dtype_of<T>(), source, tag);
  }
  void barrier() {
    record(CommOp::Barrier, 0);
    barrier_impl();
  }
  // Posts every send and receive at once and waits for all of them (Megatron's
  // batch_isend_irecv): two neighbours may send to each other in one call without deadlock.
  void exchange(std::span<const P2POp> ops) {
    for (const P2POp& op : ops) {
      record(op.is_send ? CommOp::Send : CommOp::Recv, op.count * dtype_size(op.type));
    }
    exchange_impl(ops);
  }
  // exchange() posted and returned at once (the interleaved pipeline's overlapped transfers):
  // wait(), or the destructor, completes every send and receive (MPI's destructor not while an
  // exception unwinds the stack: the job is stopping). Until then a send's buffer may not be
  // written nor a receive's read. On NCCL the transfers run on a stream of their own, after the
  // work queued so far on the compute stream, and wait() orders the compute stream after them.
  std::unique_ptr<PendingOp> start_exchange(std::span<const P2POp> ops) {
    for (const P2POp& op : ops) {
      record(op.is_send ? CommOp::Send : CommOp::Recv, op.count * dtype_size(op.type));
    }
    return start_exchange_impl(ops);
  }

  // Collective over this group: ranks with equal `color` form a new group, ordered by `key`.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

 protected:
  virtual void all_reduce_impl(void* buffer, std::size_t count, DType type, ReduceOp op) = 0;
  // Default: the blocking all_reduce_impl, done when it returns (a group of one; NCCL, whose
  // all-reduce is already queued on a stream and returns at once).
  virtual std::unique_ptr<PendingOp> iall_reduce_impl(void* buffer, std::size_t count, DType type,
                                                      ReduceOp op);
  // Default: iall_reduce_impl (every rank gets the reduction, root included).
  virtual std::unique_ptr<PendingOp> ireduce_impl(void* buffer, std::size_t count, DType type, int root,
                                                  ReduceOp op);
  virtual void all_gather_impl(const void* send, void* recv, std::size_t count, DType type) = 0;
  virtual void reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type,
                                   ReduceOp op) = 0;
  virtual void broadcast_impl(void* buffer, std::size_t count, DType type, int root) = 0;
  virtual void send_impl(const void* buffer, std::size_t count, DType type, int dest,
                         int tag) = 0;
  virtual void recv_impl(void* buffer, std::size_t count, DType type, int source, int tag) = 0;
  virtual std::unique_ptr<PendingSend> isend_impl(const void* buffer, std::size_t count,
                                                  DType type, int dest, int tag) = 0;
  virtual void barrier_impl() = 0;
  virtual void exchange_impl(std::span<const P2POp> ops) = 0;
  // Default: exchange_impl, done when it returns (a group of one).
  virtual std::unique_ptr<PendingOp> start_exchange_impl(std::span<const P2POp> ops);

 private:
  void record(CommOp op, std::size_t bytes) {
    stats_.calls[static_cast<std::size_t>(op)] += 1;
    stats_.bytes[static_cast<std::size_t>(op)] += bytes;
  }

  CommStats stats_;
};

// A group of one process: collectives are copies, point-to-point is an error. Lets the model,
// the tools and the single-process tests run without MPI.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::unique_ptr<Communicator> split(int color, int key) override;

 protected:
  void all_reduce_impl(void*, std::size_t, DType, ReduceOp) override {}
  void all_gather_impl(const void* send, void* recv, std::size_t count, DType type) override;
  void reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type,
                           ReduceOp op) override;
  void broadcast_impl(void*, std::size_t, DType, int root) override;
  void send_impl(const void*, std::size_t, DType, int dest, int tag) override;
  void recv_impl(void*, std::size_t, DType, int source, int tag) override;
  std::unique_ptr<PendingSend> isend_impl(const void*, std::size_t, DType, int dest,
                                          int tag) override;
  void barrier_impl() override {}
  void exchange_impl(std::span<const P2POp> ops) override;
};

// Every rank's `mine` on rank 0, in rank order; an empty vector on the other ranks.
std::vector<std::string> gather_strings(Communicator& comm, const std::string& mine);

// Every rank's `mine`, whose lengths may differ, on every rank in rank order: one all-reduce of the
// longest length, one all-gather of blocks that long (+ each block's length). Doubles carry sample
// indices, token ids and float32 sums exactly.
std::vector<std::vector<double>> all_gather_varying(Communicator& comm, std::vector<double> mine);

}  // namespace spin::parallel
