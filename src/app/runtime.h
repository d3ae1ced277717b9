// The device a command runs on (--device cpu|cuda) and what follows from it: the kernels every
// model call goes through, and the world communicator the process grid is split from -- on
// GPUs an NcclCommunicator over MPI, so device buffers travel through NCCL and host values
// through MPI. The commands build everything else from these two and never branch on the
// device: weights, activations and caches are allocated on kernels().device().
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "kernels/kernels.h"
#include "parallel/communicator.h"

namespace spin::app {

class Runtime {
 public:
  // Collective over `world`. cuda: this rank takes GPU number <node-local rank>, creates its
  // kernels and the NCCL world; spin::Error when the build has no CUDA, no GPU is visible or
  // the node has fewer GPUs than ranks.
  Runtime(Device device, parallel::Communicator& world);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Device device() const { return kernels_->device(); }
  const kernels::Kernels& kernels() const { return *kernels_; }
  parallel::Communicator& world() const { return nccl_world_ ? *nccl_world_ : world_; }
  // "cpu" or "cuda:<ordinal>".
  std::string describe() const;

 private:
  parallel::Communicator& world_;
  std::unique_ptr<kernels::Kernels> kernels_;
  std::unique_ptr<parallel::Communicator> nccl_world_;
  int ordinal_ = -1;
};

// The --device option's help text.
inline constexpr const char* kDeviceHelp =
    "cpu, or cuda (one GPU per rank, chosen by the rank's order on its node)";

}  // namespace spin::app
