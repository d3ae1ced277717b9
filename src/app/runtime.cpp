#include "app/runtime.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/watchdog.h"
#include "kernels/cpu/cpu_kernels.h"
#include "parallel/job_errors.h"
#include "parallel/topology.h"

#ifdef SPIN_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"
#include "parallel/nccl_communicator.h"
#endif

namespace spin::app {

MatmulPrecision parse_precision(std::string_view name) {
  if (name == "fp32") return MatmulPrecision::F32;
  if (name == "bf16") return MatmulPrecision::Bf16;
  fail("unknown precision '", name, "' (expected fp32 or bf16)");
}

AttentionBackend parse_attention_backend(std::string_view name) {
  if (name == "auto") return AttentionBackend::Auto;
  if (name == "simt") return AttentionBackend::Simt;
  if (name == "unfused") return AttentionBackend::Unfused;
  fail("unknown attention backend '", name, "' (expected auto, simt or unfused)");
}

void check_frozen_dtype(std::string_view frozen_dtype, std::string_view option) {
  require(frozen_dtype == "auto" || frozen_dtype == "bf16" || frozen_dtype == "fp32", option,
          " must be auto, bf16 or fp32, got '", frozen_dtype, "'");
}

model::WeightStorage frozen_storage(std::string_view frozen_dtype, bool bf16_products, bool takes_merges) {
  check_frozen_dtype(frozen_dtype, "model.frozen_dtype");
  const bool bf16 = frozen_dtype == "bf16" || (frozen_dtype == "auto" && !takes_merges);
  return bf16_products && bf16 ? model::WeightStorage::FrozenBf16 : model::WeightStorage::Float32;
}

void RuntimeOptions::add_to(boost::program_options::options_description& desc) {
  desc.add_options()
      ("device", boost::program_options::value(&device)->default_value(device), kDeviceHelp)
      ("precision", boost::program_options::value(&precision)->default_value(precision), kPrecisionHelp)
      ("attention-backend", boost::program_options::value(&attention_backend)->default_value(attention_backend),
       kAttentionBackendHelp)
      ("distributed-timeout-minutes",
       boost::program_options::value(&distributed_timeout_minutes)->default_value(distributed_timeout_minutes),
       kTimeoutHelp);
}

void RuntimeOptions::check() const {
  parse_device(device);
  parse_precision(precision);
  parse_attention_backend(attention_backend);
  require(distributed_timeout_minutes >= 0.0, timeout_setting, " must be >= 0 (0: no timeout), got ",
          distributed_timeout_minutes);
}

Runtime::Runtime(const RuntimeOptions& options, parallel::Communicator& world)
    : world_(world), precision_(parse_precision(options.precision)) {
  options.check();
  // First: the set-up below (the NCCL world) already waits on the other ranks.
  watchdog::start(options.distributed_timeout_minutes * 60.0, world.rank(),
                  cat(options.timeout_setting, " = ", options.distributed_timeout_minutes).c_str());
  const Device device = parse_device(options.device);
  const AttentionBackend attention = parse_attention_backend(options.attention_backend);
  if (device == Device::Cpu) {
    kernels_ = std::make_unique<kernels::CpuKernels>();
    const std::string slow = kernels::blas_kernel_warning();
    if (!slow.empty() && world.rank() == 0) std::fprintf(stderr, "spin: warning: %s\n", slow.c_str());
    return;
  }
#ifdef SPIN_HAVE_CUDA
  ordinal_ = parallel::node_local_rank(world);
  parallel::run_collectively(world, [&] { cuda::init_device(ordinal_); });
  using Attention = kernels::CudaKernels::Attention;
  kernels_ = std::make_unique<kernels::CudaKernels>(attention == AttentionBackend::Auto   ? Attention::TensorCores
                                                    : attention == AttentionBackend::Simt ? Attention::Fused
                                                                                          : Attention::Cublas);
  nccl_world_ = std::make_unique<parallel::NcclCommunicator>(world.split(0, world.rank()),
                                                             cuda::compute_stream());
#else
  (void)attention;
  parallel::run_collectively(world, [&] {
    fail("--device cuda: this spin was built without CUDA (configure with -DSPIN_CUDA=ON on a "
         "machine with the CUDA toolkit)");
  });
#endif
}

Runtime::~Runtime() = default;

void Runtime::prepare(model::ModelWeights& weights) const {
  if (precision_ == MatmulPrecision::Bf16) weights.enable_bf16(*kernels_);
}

void Runtime::report_memory(const char* when) const {
  const std::optional<MemoryUsage> usage = memory_ops(device()).usage();
  if (!usage) return;  // the same device on every rank: all return here, or none
  std::vector<double> most = {static_cast<double>(usage->peak_in_use), static_cast<double>(usage->reserved)};
  world().all_reduce(most.data(), most.size(), parallel::ReduceOp::Max);
  if (world().rank() == 0) {
    std::printf("device memory %s (largest rank): peak %.2f GiB in use, %.2f GiB reserved by the caching "
                "allocator\n",
                when, most[0] / (1 << 30), most[1] / (1 << 30));
    std::fflush(stdout);
  }
}

std::string Runtime::describe() const {
  return cat(ordinal_ < 0 ? std::string("cpu") : cat("cuda:", ordinal_),
             precision_ == MatmulPrecision::Bf16 ? " bf16" : "");
}

}  // namespace spin::app
