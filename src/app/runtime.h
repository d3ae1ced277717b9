// The device a command runs on (--device cpu|cuda) and what follows from it: the kernels every
// model call goes through, and the world communicator the process grid is split from -- on
// GPUs an NcclCommunicator over MPI, so device buffers travel through NCCL and host values
// through MPI. The commands build everything else from these two and never branch on the
// device: weights, activations and caches are allocated on kernels().device(). And the
// precision of the matrix products (--precision fp32|bf16), which prepare() gives a model's
// weights, and on GPUs the attention kernels (--attention-backend).
#pragma once

#include <boost/program_options/options_description.hpp>
#include <memory>
#include <string>

#include "core/device.h"
#include "kernels/kernels.h"
#include "model/weights.h"
#include "parallel/communicator.h"

namespace spin::app {

// fp32: float32 throughout. bf16: mixed precision -- the products' operands in bf16 with
// float32 accumulation (torch.autocast), float32 master weights, optimizer state, norms,
// softmax and log-probabilities.
enum class MatmulPrecision { F32, Bf16 };
MatmulPrecision parse_precision(std::string_view name);  // "fp32" | "bf16"; spin::Error otherwise

// The attention kernels on a GPU (Megatron-LM's --attention-backend): auto -- tensor cores for
// bf16 at head_dim 64 or 128, else the fused SIMT kernels (head_dim 32/64/96/128), else cuBLAS
// products around a softmax kernel; simt -- never tensor cores; unfused -- always cuBLAS. The
// CPU has one attention and ignores the choice.
enum class AttentionBackend { Auto, Simt, Unfused };
AttentionBackend parse_attention_backend(std::string_view name);  // spin::Error for others

// How a frozen model -- SPIN's reference (with LoRA the base), the inference commands' model -- is held,
// by spin train's model.frozen_dtype: bf16 (model::WeightStorage::FrozenBf16), fp32, or auto -- bf16
// unless the model takes LoRA merges (each iteration's adapters, rounded into bf16 values). bf16 only
// under bf16 products: with fp32 products every model is float32. `frozen_dtype` as check_frozen_dtype
// accepts it.
model::WeightStorage frozen_storage(std::string_view frozen_dtype, bool bf16_products, bool takes_merges);
// spin::Error naming `option` (e.g. "spin sft: --frozen-dtype") unless `frozen_dtype` is auto, bf16 or fp32.
void check_frozen_dtype(std::string_view frozen_dtype, std::string_view option);

// What every command that runs a model takes, as typed: --device, --precision, --attention-backend and
// --distributed-timeout-minutes (spin train: parallel.device, model.precision, model.attention_backend,
// parallel.distributed_timeout_minutes).
struct RuntimeOptions {
  std::string device = "cpu", precision = "fp32", attention_backend = "auto";
  // A blocking wait on other ranks (or on the GPU's queued collectives) longer than this ends the rank with an
  // error (core/watchdog.h); 0: never. Megatron-LM's --distributed-timeout-minutes and its default.
  double distributed_timeout_minutes = 10.0;
  // How the timeout is set, for its error line: --distributed-timeout-minutes, or spin train's key.
  std::string timeout_setting = "--distributed-timeout-minutes";
  void add_to(boost::program_options::options_description& desc);
  void check() const;  // one spin::Error naming a value none of the parsers knows, or a negative timeout
};

class Runtime {
 public:
  // Collective over `world`. cuda: this rank takes GPU number <node-local rank>, creates its
  // kernels and the NCCL world; spin::Error when the build has no CUDA, no GPU is visible or
  // the node has fewer GPUs than ranks.
  Runtime(const RuntimeOptions& options, parallel::Communicator& world);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Device device() const { return kernels_->device(); }
  const kernels::Kernels& kernels() const { return *kernels_; }
  parallel::Communicator& world() const { return nccl_world_ ? *nccl_world_ : world_; }
  MatmulPrecision precision() const { return precision_; }
  // Gives weights that the model runs with (policy, reference; not gradients) the precision's
  // form: a bf16 copy for mixed precision, made from their values -- so after loading them.
  void prepare(model::ModelWeights& weights) const;
  // How an inference command (generate, score, eval) holds its model: as its forward reads it --
  // FrozenBf16 under bf16 products, 2 bytes a parameter where a trained model takes 6.
  model::WeightStorage inference_storage() const {
    return precision_ == MatmulPrecision::Bf16 ? model::WeightStorage::FrozenBf16 : model::WeightStorage::Float32;
  }
  // "cpu" or "cuda:<ordinal>", and " bf16" with mixed precision.
  std::string describe() const;
  // On a device with an allocator of its own (a GPU): one line from rank 0, "device memory
  // <when> (largest rank): peak ... in use, ... reserved" -- the figures to set beside spin
  // plan's. Nothing on the CPU. Collective over world().
  void report_memory(const char* when) const;

 private:
  parallel::Communicator& world_;
  MatmulPrecision precision_;
  std::unique_ptr<kernels::Kernels> kernels_;
  std::unique_ptr<parallel::Communicator> nccl_world_;
  int ordinal_ = -1;
};

// The options' help texts.
inline constexpr const char* kDeviceHelp =
    "cpu, or cuda (one GPU per rank, chosen by the rank's order on its node)";
inline constexpr const char* kPrecisionHelp =
    "fp32, or bf16 (matrix products in bf16 with fp32 accumulation; fp32 master weights)";
inline constexpr const char* kTimeoutHelp =
    "minutes a rank may wait on the others (a collective, a transfer between stages, the GPU's queued NCCL work) "
    "before it stops with an error naming the wait -- a rank lost or hung ends the job instead of holding it to "
    "the time limit; 0: wait forever";
inline constexpr const char* kAttentionBackendHelp =
    "GPU attention kernels: auto (tensor cores for bf16 at head_dim 64/128, else fused SIMT "
    "kernels, else cuBLAS), simt (never tensor cores) or unfused (cuBLAS + softmax)";

}  // namespace spin::app
