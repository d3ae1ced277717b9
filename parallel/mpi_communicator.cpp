#include "parallel/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/watchdog.h"

namespace spin::parallel {

namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::U64: return MPI_UINT64_T;
    case DType::U8: return MPI_UINT8_T;
    case DType::BF16: return MPI_UINT16_T;  // moved, never reduced (reduction_type)
    default: fail("MPI communicator: no MPI type for ", dtype_name(t));
  }
}

// The MPI type of a reduction's elements: bf16 has none (MPI would add the bit patterns).
MPI_Datatype reduction_type(DType t) {
  require(t != DType::BF16, "MPI communicator: no reduction of bf16 values");
  return mpi_type(t);
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

constexpr std::size_t kMaxChunk = INT_MAX / 8;  // elements per MPI call

// Calls fn(offset, count) over chunks that fit MPI's int counts; at least once, so that a
// zero-length collective is still matched on every rank.
template <class Fn>
void chunked(std::size_t count, Fn fn) {
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(kMaxChunk, count - offset);
    fn(offset, static_cast<int>(n));
    offset += n;
  } while (offset < count);
}

int checked_int(std::size_t count, const char* what) {
  require(count <= kMaxChunk, "MPI ", what, " of ", count, " elements per rank exceeds ",
          kMaxChunk);
  return static_cast<int>(count);
}

// Posts each operation as an MPI_Isend / MPI_Irecv into `requests`.
void post(MPI_Comm comm, std::span<const P2POp> ops, std::span<MPI_Request> requests) {
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const P2POp& op = ops[i];
    const int n = checked_int(op.count, op.is_send ? "send" : "recv");
    if (op.is_send) {
      MPI_Isend(op.buffer, n, mpi_type(op.type), op.peer, op.tag, comm, &requests[i]);
    } else {
      MPI_Irecv(op.buffer, n, mpi_type(op.type), op.peer, op.tag, comm, &requests[i]);
    }
  }
}

class MpiPendingExchange final : public PendingOp {
 public:
  MpiPendingExchange(MPI_Comm comm, std::span<const P2POp> ops) : requests_(ops.size(), MPI_REQUEST_NULL) {
    post(comm, ops, requests_);
  }
  // Waits, unless an exception is unwinding the stack: the job is stopping (abort_job), and a
  // peer stopped as well would never match the transfers.
  ~MpiPendingExchange() override {
    if (std::uncaught_exceptions() == 0) wait();
  }
  void wait() override {
    if (!requests_.empty() && mpi_active()) {
      const watchdog::Wait waiting("MPI_Waitall (a started exchange between stages)");
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    }
    requests_.clear();
  }

 private:
  std::vector<MPI_Request> requests_;
};

class MpiPending final : public PendingOp {
 public:
  MpiPending() = default;
  ~MpiPending() override { wait(); }
  void wait() override {
    if (request_ != MPI_REQUEST_NULL && mpi_active()) {
      const watchdog::Wait waiting("MPI_Wait (a started reduction or send)");
      MPI_Wait(&request_, MPI_STATUS_IGNORE);
    }
  }
  MPI_Request* request() { return &request_; }

 private:
  MPI_Request request_ = MPI_REQUEST_NULL;
};

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` unless it is MPI_COMM_WORLD.
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_WORLD && mpi_active()) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm child;
    const watchdog::Wait waiting("MPI_Comm_split", size_);
    MPI_Comm_split(comm_, color, key, &child);
    return std::make_unique<MpiCommunicator>(child);
  }

 protected:
  void all_reduce_impl(void* buffer, std::size_t count, DType type, ReduceOp op) override {
    if (size_ == 1) return;
    char* base = static_cast<char*>(buffer);
    const watchdog::Wait waiting("MPI_Allreduce", size_, static_cast<std::int64_t>(count));
    chunked(count, [&](std::size_t offset, int n) {
      MPI_Allreduce(MPI_IN_PLACE, base + offset * dtype_size(type), n, reduction_type(type), mpi_op(op),
                    comm_);
    });
  }
  std::unique_ptr<PendingOp> iall_reduce_impl(void* buffer, std::size_t count, DType type,
                                              ReduceOp op) override {
    auto pending = std::make_unique<MpiPending>();
    if (size_ > 1) {
      MPI_Iallreduce(MPI_IN_PLACE, buffer, checked_int(count, "iall_reduce"), reduction_type(type), mpi_op(op),
                     comm_, pending->request());
    }
    return pending;
  }
  std::unique_ptr<PendingOp> ireduce_impl(void* buffer, std::size_t count, DType type, int root,
                                          ReduceOp op) override {
    auto pending = std::make_unique<MpiPending>();
    if (size_ > 1) {
      MPI_Ireduce(rank_ == root ? MPI_IN_PLACE : buffer, buffer, checked_int(count, "ireduce"), reduction_type(type),
                  mpi_op(op), root, comm_, pending->request());
    }
    return pending;
  }
  void all_gather_impl(const void* send, void* recv, std::size_t count, DType type) override {
    const int n = checked_int(count, "all_gather");
    const bool in_place =
        send == static_cast<const char*>(recv) + static_cast<std::size_t>(rank_) * count * dtype_size(type);
    const watchdog::Wait waiting("MPI_Allgather", size_, static_cast<std::int64_t>(count));
    MPI_Allgather(in_place ? MPI_IN_PLACE : send, n, mpi_type(type), recv, n, mpi_type(type), comm_);
  }
  void reduce_scatter_impl(const void* send, void* recv, std::size_t count, DType type,
                           ReduceOp op) override {
    const int n = checked_int(count, "reduce_scatter");
    const watchdog::Wait waiting("MPI_Reduce_scatter_block", size_, static_cast<std::int64_t>(count));
    MPI_Reduce_scatter_block(send == recv ? MPI_IN_PLACE : send, recv, n, reduction_type(type),
                             mpi_op(op), comm_);
  }
  void broadcast_impl(void* buffer, std::size_t count, DType type, int root) override {
    char* base = static_cast<char*>(buffer);
    const watchdog::Wait waiting("MPI_Bcast", size_, static_cast<std::int64_t>(count));
    chunked(count, [&](std::size_t offset, int n) {
      MPI_Bcast(base + offset * dtype_size(type), n, mpi_type(type), root, comm_);
    });
  }
  void send_impl(const void* buffer, std::size_t count, DType type, int dest, int tag) override {
    const char* base = static_cast<const char*>(buffer);
    const watchdog::Wait waiting("MPI_Send", size_, static_cast<std::int64_t>(count));
    chunked(count, [&](std::size_t offset, int n) {
      MPI_Send(base + offset * dtype_size(type), n, mpi_type(type), dest, tag, comm_);
    });
  }
  void recv_impl(void* buffer, std::size_t count, DType type, int source, int tag) override {
    char* base = static_cast<char*>(buffer);
    const watchdog::Wait waiting("MPI_Recv", size_, static_cast<std::int64_t>(count));
    chunked(count, [&](std::size_t offset, int n) {
      MPI_Recv(base + offset * dtype_size(type), n, mpi_type(type), source, tag, comm_,
               MPI_STATUS_IGNORE);
    });
  }
  std::unique_ptr<PendingSend> isend_impl(const void* buffer, std::size_t count, DType type,
                                          int dest, int tag) override {
    auto pending = std::make_unique<MpiPending>();
    MPI_Isend(buffer, checked_int(count, "isend"), mpi_type(type), dest, tag, comm_,
              pending->request());
    return pending;
  }
  void barrier_impl() override {
    const watchdog::Wait waiting("MPI_Barrier", size_);
    MPI_Barrier(comm_);
  }
  void exchange_impl(std::span<const P2POp> ops) override {
    std::vector<MPI_Request> requests(ops.size());
    post(comm_, ops, requests);
    const watchdog::Wait waiting("MPI_Waitall (an exchange between stages)", size_);
    MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
  }
  std::unique_ptr<PendingOp> start_exchange_impl(std::span<const P2POp> ops) override {
    return std::make_unique<MpiPendingExchange>(comm_, ops);
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
}

MpiRuntime::~MpiRuntime() {
  world_.reset();
  if (mpi_active()) MPI_Finalize();
}

bool mpi_active() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

int world_rank() {
  if (!mpi_active()) return 0;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

}  // namespace spin::parallel
