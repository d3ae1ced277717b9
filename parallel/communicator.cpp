#include "parallel/communicator.h"

#include <cstring>

#include "core/error.h"

namespace spin::parallel {

std::string_view comm_op_name(CommOp op) {
  switch (op) {
    case CommOp::AllReduce: return "all_reduce";
    case CommOp::AllGather: return "all_gather";
    case CommOp::ReduceScatter: return "reduce_scatter";
    case CommOp::Broadcast: return "broadcast";
    case CommOp::Send: return "send";
    case CommOp::Recv: return "recv";
    case CommOp::Barrier: return "barrier";
    case CommOp::Reduce: return "reduce";
  }
  return "?";
}

namespace {
class DoneOp final : public PendingOp {
 public:
  void wait() override {}
};
}  // namespace

std::unique_ptr<PendingOp> Communicator::iall_reduce_impl(void* buffer, std::size_t count, DType type,
                                                          ReduceOp op) {
  all_reduce_impl(buffer, count, type, op);
  return std::make_unique<DoneOp>();
}

std::unique_ptr<PendingOp> Communicator::start_exchange_impl(std::span<const P2POp> ops) {
  exchange_impl(ops);
  return std::make_unique<DoneOp>();
}

std::unique_ptr<PendingOp> Communicator::ireduce_impl(void* buffer, std::size_t count, DType type, int,
                                                      ReduceOp op) {
  return iall_reduce_impl(buffer, count, type, op);
}

std::unique_ptr<Communicator> SelfCommunicator::split(int, int) {
  return std::make_unique<SelfCommunicator>();
}

void SelfCommunicator::all_gather_impl(const void* send, void* recv, std::size_t count,
                                       DType type) {
  if (send != recv) std::memmove(recv, send, count * dtype_size(type));
}

void SelfCommunicator::reduce_scatter_impl(const void* send, void* recv, std::size_t count,
                                           DType type, ReduceOp) {
  if (send != recv) std::memmove(recv, send, count * dtype_size(type));
}

void SelfCommunicator::broadcast_impl(void*, std::size_t, DType, int root) {
  require(root == 0, "broadcast from rank ", root, " in a group of one process");
}

void SelfCommunicator::send_impl(const void*, std::size_t, DType, int dest, int) {
  fail("send to rank ", dest, " in a group of one process");
}

std::unique_ptr<PendingSend> SelfCommunicator::isend_impl(const void*, std::size_t, DType,
                                                          int dest, int) {
  fail("send to rank ", dest, " in a group of one process");
}

void SelfCommunicator::exchange_impl(std::span<const P2POp> ops) {
  require(ops.empty(), "point-to-point exchange in a group of one process");
}

void SelfCommunicator::recv_impl(void*, std::size_t, DType, int source, int) {
  fail("recv from rank ", source, " in a group of one process");
}

std::vector<std::string> gather_strings(Communicator& comm, const std::string& mine) {
  if (comm.rank() != 0) {
    const std::int64_t size = static_cast<std::int64_t>(mine.size());
    comm.send(&size, 1, 0);
    comm.send(reinterpret_cast<const std::uint8_t*>(mine.data()), mine.size(), 0);
    return {};
  }
  std::vector<std::string> all = {mine};
  for (int r = 1; r < comm.size(); ++r) {
    std::int64_t size = 0;
    comm.recv(&size, 1, r);
    std::string text(static_cast<std::size_t>(size), '\0');
    comm.recv(reinterpret_cast<std::uint8_t*>(text.data()), text.size(), r);
    all.push_back(std::move(text));
  }
  return all;
}

std::vector<std::vector<double>> all_gather_varying(Communicator& comm, std::vector<double> mine) {
  double longest = static_cast<double>(mine.size());
  comm.all_reduce(&longest, 1, ReduceOp::Max);
  const auto block = static_cast<std::size_t>(longest) + 1;  // + the block's own length
  mine.insert(mine.begin(), static_cast<double>(mine.size()));
  mine.resize(block, 0.0);
  std::vector<double> all(block * static_cast<std::size_t>(comm.size()));
  comm.all_gather(mine.data(), all.data(), block);
  std::vector<std::vector<double>> blocks;
  for (std::size_t rank = 0; rank < static_cast<std::size_t>(comm.size()); ++rank) {
    const double* at = all.data() + rank * block;
    blocks.emplace_back(at + 1, at + 1 + static_cast<std::size_t>(at[0]));
  }
  return blocks;
}

}  // namespace spin::parallel
