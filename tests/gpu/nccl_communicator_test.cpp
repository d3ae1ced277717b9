// NcclCommunicator on the one GPU a test machine has: a group of one (NCCL supports it), made
// from a SelfCommunicator bootstrap. Checks that device buffers go through NCCL with the
// interface's meaning (in place, reduce-scatter's result at the start, broadcast, a grouped
// send/receive to self, blocking and started on a stream of its own), host buffers through the
// bootstrap, and the call counts.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "kernels/cuda/device_memory.h"
#include "parallel/nccl_communicator.h"

namespace spin::parallel {
namespace {

std::vector<float> iota(std::size_t n, float from) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = from + static_cast<float>(i);
  return v;
}

TEST(NcclCommunicator, AGroupOfOneOnDeviceAndHostBuffers) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  {
    NcclCommunicator comm(std::make_unique<SelfCommunicator>(), stream);
    EXPECT_EQ(comm.size(), 1);
    const auto host = iota(1000, 1.0f);
    PooledBuffer device = cuda::upload(host);
    EXPECT_TRUE(NcclCommunicator::is_device_pointer(device.data()));
    EXPECT_FALSE(NcclCommunicator::is_device_pointer(host.data()));

    comm.all_reduce(device.as<float>(), host.size());
    comm.broadcast(device.as<float>(), host.size(), 0);
    comm.reduce_scatter(device.as<float>(), device.as<float>(), host.size());
    comm.all_gather(device.as<float>(), device.as<float>(), host.size());
    PooledBuffer other(cuda::device_allocator(), host.size() * sizeof(float));
    const std::vector<P2POp> ops = {P2POp::send(device.as<float>(), host.size(), 0),
                                    P2POp::recv(other.as<float>(), host.size(), 0)};
    comm.exchange(ops);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(cuda::download<float>(device, host.size()), host);
    EXPECT_EQ(cuda::download<float>(other, host.size()), host);

    std::vector<double> on_host = {2.5, -1.0};
    comm.all_reduce(on_host.data(), on_host.size(), ReduceOp::Max);  // through the bootstrap
    EXPECT_EQ(on_host, (std::vector<double>{2.5, -1.0}));
    EXPECT_EQ(comm.stats().calls_of(CommOp::AllReduce), 2u);
    EXPECT_EQ(comm.stats().calls_of(CommOp::Send), 1u);
    comm.barrier();
  }
  cudaStreamDestroy(stream);
}

// The nonblocking all-reduce's and reduce's own path: a side communicator (ncclCommSplit) and stream, made
// at the first call and reused, the compute stream made to wait at wait() or destruction; host
// buffers through the bootstrap. (In a group of one the reduction is the identity: what this
// checks is that the path runs and leaves the values and counts right, not the overlap.)
TEST(NcclCommunicator, NonblockingAllReduceAndReduceOnASideStream) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  {
    NcclCommunicator comm(std::make_unique<SelfCommunicator>(), stream);
    const auto host = iota(4096, -7.0f);
    PooledBuffer a = cuda::upload(host), b = cuda::upload(host);
    auto first = comm.iall_reduce(a.as<float>(), host.size());
    auto second = comm.iall_reduce(b.as<float>(), host.size());
    auto third = comm.ireduce(a.as<float>(), host.size(), 0);  // the distributed optimizer's path
    first->wait();
    second.reset();  // the destructor orders the compute stream too
    third->wait();
    std::vector<double> on_host = {1.5};
    comm.iall_reduce(on_host.data(), 1)->wait();
    comm.ireduce(on_host.data(), 1, 0)->wait();
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(cuda::download<float>(a, host.size()), host);
    EXPECT_EQ(cuda::download<float>(b, host.size()), host);
    EXPECT_EQ(on_host, std::vector<double>{1.5});
    EXPECT_EQ(comm.stats().calls_of(CommOp::AllReduce), 3u);
    EXPECT_EQ(comm.stats().calls_of(CommOp::Reduce), 2u);
  }
  cudaStreamDestroy(stream);
}

// start_exchange (the interleaved pipeline's overlapped transfers): a grouped send / receive to
// itself on a third communicator and stream, made at the first call; the compute stream made to
// wait at wait() or destruction. The send's source is written on the compute stream just before,
// so the copy also checks that the transfers stream starts after the work queued there.
TEST(NcclCommunicator, StartedExchangeOnAStreamOfItsOwn) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  {
    NcclCommunicator comm(std::make_unique<SelfCommunicator>(), stream);
    const auto host = iota(1 << 20, 3.0f);
    PooledBuffer source(cuda::device_allocator(), host.size() * sizeof(float));
    PooledBuffer first(cuda::device_allocator(), host.size() * sizeof(float));
    PooledBuffer second(cuda::device_allocator(), host.size() * sizeof(float));
    ASSERT_EQ(cudaMemcpyAsync(source.data(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice, stream),
              cudaSuccess);
    const std::vector<P2POp> ops = {P2POp::send(source.as<float>(), host.size(), 0),
                                    P2POp::recv(first.as<float>(), host.size(), 0)};
    auto pending = comm.start_exchange(ops);
    pending->wait();
    // The received buffer, read on the compute stream after wait(), sent on again.
    const std::vector<P2POp> again = {P2POp::send(first.as<float>(), host.size(), 0),
                                      P2POp::recv(second.as<float>(), host.size(), 0)};
    comm.start_exchange(again).reset();  // the destructor orders the compute stream too
    std::vector<double> on_host = {4.0}, back = {0.0};
    const std::vector<P2POp> host_ops = {P2POp::send(on_host.data(), 1, 0), P2POp::recv(back.data(), 1, 0)};
    EXPECT_THROW(comm.start_exchange(host_ops)->wait(), Error);  // a group of one: the bootstrap has no peers
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(cuda::download<float>(second, host.size()), host);
    EXPECT_EQ(comm.stats().calls_of(CommOp::Send), 3u);
    EXPECT_EQ(comm.stats().calls_of(CommOp::Recv), 3u);
  }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace spin::parallel
