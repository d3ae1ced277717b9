#include "parallel/nccl_communicator.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/watchdog.h"

namespace spin::parallel {

namespace {

void check(ncclResult_t status, const char* call) {
  if (status != ncclSuccess) fail("NCCL: ", call, " failed: ", ncclGetErrorString(status));
}
void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) fail("CUDA: ", call, " failed: ", cudaGetErrorString(status));
}
#define SPIN_NCCL(call) check((call), #call)

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::U64: return ncclUint64;
    case DType::U8: return ncclUint8;
  }
  fail("NCCL: unsupported dtype");
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  fail("NCCL: unsupported reduction");
}

// Forwards host-buffer calls to the bootstrap communicator (its protected *_impl are not
// reachable from here, so through the public, counting API; those counts stay on the
// bootstrap's stats, this communicator counts the call once).
template <class Fn>
void on_host(Communicator& c, DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(c, static_cast<float*>(nullptr));
    case DType::F64: return fn(c, static_cast<double*>(nullptr));
    case DType::I32: return fn(c, static_cast<std::int32_t*>(nullptr));
    case DType::I64: return fn(c, static_cast<std::int64_t*>(nullptr));
    case DType::U64: return fn(c, static_cast<std::uint64_t*>(nullptr));
    case DType::U8: return fn(c, static_cast<std::uint8_t*>(nullptr));
    case DType::BF16:
    case DType::F16: fail("NCCL communicator: bf16/f16 host buffers are not supported (only device ones)");
  }
}

class NcclPendingSend final : public PendingSend {
 public:
  explicit NcclPendingSend(cudaStream_t stream) {
    check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventRecord(done_, stream), "cudaEventRecord");
  }
  ~NcclPendingSend() override {
    if (done_ != nullptr) {
      const watchdog::Wait waiting("cudaEventSynchronize (an NCCL send)");
      cudaEventSynchronize(done_);
      cudaEventDestroy(done_);
    }
  }
  void wait() override {
    const watchdog::Wait waiting("cudaEventSynchronize (an NCCL send)");
    check(cudaEventSynchronize(done_), "cudaEventSynchronize");
  }

 private:
  cudaEvent_t done_ = nullptr;
};

// A collective on the side stream: wait() and the destructor make the compute stream wait for
// it (a GPU-side dependency; the host goes on).
class NcclPendingCollective final : public PendingOp {
 public:
  NcclPendingCollective(cudaStream_t side, cudaStream_t compute) : compute_(compute) {
    check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventRecord(done_, side), "cudaEventRecord");
  }
  ~NcclPendingCollective() override {
    if (done_ == nullptr) return;
    cudaStreamWaitEvent(compute_, done_, 0);
    cudaEventDestroy(done_);  // released once the event has completed
  }
  void wait() override { check(cudaStreamWaitEvent(compute_, done_, 0), "cudaStreamWaitEvent"); }

 private:
  cudaStream_t compute_;
  cudaEvent_t done_ = nullptr;
};

}  // namespace

bool NcclCommunicator::is_device_pointer(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> bootstrap, cudaStream_t stream)
    : bootstrap_(std::move(bootstrap)), stream_(stream) {
  ncclUniqueId id{};
  if (bootstrap_->rank() == 0) SPIN_NCCL(ncclGetUniqueId(&id));
  bootstrap_->broadcast(reinterpret_cast<std::uint8_t*>(&id), sizeof id, 0);
  {
    const watchdog::Wait waiting("ncclCommInitRank", bootstrap_->size());
    SPIN_NCCL(ncclCommInitRank(&comm_, bootstrap_->size(), id, bootstrap_->rank()));
  }
}

NcclCommunicator::~NcclCommunicator() {
  for (Side* side : {&collectives_, &transfers_}) {
    if (side->comm != nullptr) ncclCommDestroy(side->comm);
    if (side->stream != nullptr) cudaStreamDestroy(side->stream);
  }
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  return std::make_unique<NcclCommunicator>(bootstrap_->split(color, key), stream_);
}

void NcclCommunicator::all_reduce_impl(void* buffer, std::size_t count, DType type, ReduceOp op) {
  if (!is_device_pointer(buffer)) {
    return on_host(*bootstrap_, type, [&](Communicator& c, auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      c.all_reduce(static_cast<T*>(buffer), count, op);
    });
  }
  SPIN_NCCL(ncclAllReduce(buffer, buffer, count, nccl_type(type), nccl_op(op), comm_, stream_));
}

std::unique_ptr<PendingOp> NcclCommunicator::iall_reduce_impl(void* buffer, std::size_t count, DType type,
                                                              ReduceOp op) {
  if (!is_device_pointer(buffer)) {
    std::unique_ptr<PendingOp> pending;
    on_host(*bootstrap_, type, [&](Communicator& c, auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      pending = c.iall_reduce(static_cast<T*>(buffer), count, op);
    });
    return pending;
  }
  start_on(collectives_);
  SPIN_NCCL(ncclAllReduce(buffer, buffer, count, nccl_type(type), nccl_op(op), collectives_.comm, collectives_.stream));
  return std::make_unique<NcclPendingCollective>(collectives_.stream, stream_);
}

std::unique_ptr<PendingOp> NcclCommunicator::ireduce_impl(void* buffer, std::size_t count, DType type, int root,
                                                          ReduceOp op) {
  if (!is_device_pointer(buffer)) {
    std::unique_ptr<PendingOp> pending;
    on_host(*bootstrap_, type, [&](Communicator& c, auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      pending = c.ireduce(static_cast<T*>(buffer), count, root, op);
    });
    return pending;
  }
  start_on(collectives_);
  SPIN_NCCL(
      ncclReduce(buffer, buffer, count, nccl_type(type), nccl_op(op), root, collectives_.comm, collectives_.stream));
  return std::make_unique<NcclPendingCollective>(collectives_.stream, stream_);
}

void NcclCommunicator::start_on(Side& side) {
  if (side.comm == nullptr) {  // collective: every rank's first call of its kind on device memory
    SPIN_NCCL(ncclCommSplit(comm_, 0, rank(), &side.comm, nullptr));
    int least = 0, greatest = 0;
    check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    check(cudaStreamCreateWithPriority(&side.stream, cudaStreamNonBlocking, greatest), "cudaStreamCreateWithPriority");
  }
  cudaEvent_t ready = nullptr;
  check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(ready, stream_), "cudaEventRecord");
  check(cudaStreamWaitEvent(side.stream, ready, 0), "cudaStreamWaitEvent");
  check(cudaEventDestroy(ready), "cudaEventDestroy");
}

void NcclCommunicator::all_gather_impl(const void* send, void* recv, std::size_t count, DType type) {
  if (!is_device_pointer(recv)) {
    return on_host(*bootstrap_, type, [&](Communicator& c, auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      c.all_gather(static_cast<const T*>(send), static_cast<T*>(recv), count);
    });
  }
  // NCCL's in-place all-gather is send == recv + rank * count: the interface's in place too.
  SPIN_NCCL(ncclAllGather(send, recv, count, nccl_type(type), comm_, stream_));
}

void NcclCommunicator::reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type,
                                           ReduceOp op) {
  if (!is_device_pointer(recv)) {
    return on_host(*bootstrap_, type, [&](Communicator& c, auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      c.reduce_scatter(static_cast<const T*>(send), static_cast<T*>(recv), count, op);
    });
  }
  const std::size_t block = count * dtype_size(type);
  if (send != recv || rank() == 0) {
    SPIN_NCCL(ncclReduceScatter(send, recv, count, nccl_type(type), nccl_op(op), comm_, stream_));
    return;
  }
  // In place: NCCL's in-place result lands in this rank's own block; move it to the start (the
  // two blocks do not overlap for rank >= 1).
  char* own = static_cast<char*>(recv) + static_cast<std::size_t>(rank()) * block;
  SPIN_NCCL(ncclReduceScatter(send, own, count, nccl_type(type), nccl_op(op), comm_, stream_));
  check(cudaMemcpyAsync(recv, own, block, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
}

void NcclCommunicator::broadcast_impl(void* buffer, std::size_t count, DType type, int root) {
  if (!is_device_pointer(buffer)) {
    return on_host(*bootstrap_, type, [&](Communicator& c, auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      c.broadcast(static_cast<T*>(buffer), count, root);
    });
  }
  SPIN_NCCL(ncclBroadcast(buffer, buffer, count, nccl_type(type), root, comm_, stream_));
}

void NcclCommunicator::send_impl(const void* buffer, std::size_t count, DType type, int dest, int tag) {
  if (!is_device_pointer(buffer)) {
    return on_host(*bootstrap_, type, [&](Communicator& c, auto* t) {
      using T = std::remove_pointer_t<decltype(t)>;
      c.send(static_cast<const T*>(buffer), count, dest, tag);
    });
  }
  SPIN_NCCL(ncclSend(buffer, count, nccl_type(type), dest, comm_, stream_));
}

void NcclCommunicator::recv_impl(void* buffer, std::size_t count, DType type, int source, int tag) {
  if (!is_device_pointer(buffer)) {
    return on_host(*bootstrap_, type, [&](Communicator& c, auto* t) {
      using T = std::remove_pointer_t<decltype(t)>;
      c.recv(static_cast<T*>(buffer), count, source, tag);
    });
  }
  SPIN_NCCL(ncclRecv(buffer, count, nccl_type(type), source, comm_, stream_));
}

std::unique_ptr<PendingSend> NcclCommunicator::isend_impl(const void* buffer, std::size_t count, DType type,
                                                          int dest, int tag) {
  if (!is_device_pointer(buffer)) {
    std::unique_ptr<PendingSend> pending;
    on_host(*bootstrap_, type, [&](Communicator& c, auto* t) {
      using T = std::remove_pointer_t<decltype(t)>;
      pending = c.isend(static_cast<const T*>(buffer), count, dest, tag);
    });
    return pending;
  }
  SPIN_NCCL(ncclSend(buffer, count, nccl_type(type), dest, comm_, stream_));
  return std::make_unique<NcclPendingSend>(stream_);
}

void NcclCommunicator::barrier_impl() {
  {
    const watchdog::Wait waiting("cudaStreamSynchronize (the NCCL collectives queued before a barrier)", size());
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  bootstrap_->barrier();
}

bool NcclCommunicator::on_device(std::span<const P2POp> ops) {
  bool device = false, host = false;
  for (const P2POp& op : ops) (is_device_pointer(op.buffer) ? device : host) = true;
  require(!(device && host), "NCCL: an exchange mixes host and device buffers");
  return device;
}

void NcclCommunicator::post(std::span<const P2POp> ops, ncclComm_t comm, cudaStream_t stream) {
  SPIN_NCCL(ncclGroupStart());
  for (const P2POp& op : ops) {
    if (op.is_send) {
      SPIN_NCCL(ncclSend(op.buffer, op.count, nccl_type(op.type), op.peer, comm, stream));
    } else {
      SPIN_NCCL(ncclRecv(op.buffer, op.count, nccl_type(op.type), op.peer, comm, stream));
    }
  }
  SPIN_NCCL(ncclGroupEnd());
}

void NcclCommunicator::exchange_impl(std::span<const P2POp> ops) {
  if (!on_device(ops)) {
    bootstrap_->exchange(ops);
    return;
  }
  post(ops, comm_, stream_);
}

std::unique_ptr<PendingOp> NcclCommunicator::start_exchange_impl(std::span<const P2POp> ops) {
  if (!on_device(ops)) return bootstrap_->start_exchange(ops);
  start_on(transfers_);
  post(ops, transfers_.comm, transfers_.stream);
  return std::make_unique<NcclPendingCollective>(transfers_.stream, stream_);
}

}  // namespace spin::parallel
