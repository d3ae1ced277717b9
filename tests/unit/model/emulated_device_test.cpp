// The model on an emulated GPU (tests/common/emulated_device.h): every buffer a kernel touches
// must be device memory, and host code may read device memory only through a copy. The CPU
// kernels run behind the device pointers, so the results must equal the CPU path's bitwise.
#include "common/emulated_device.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/device_model_check.h"
#include "common/scratch_dir.h"
#include "common/spin_fixture.h"
#include "common/test_util.h"
#include "core/tensor.h"
#include "train/checkpointing.h"

namespace spin::testing {
namespace {

TinyShape shape_with(int layers) {
  TinyShape s;
  s.layers = layers;
  return s;
}

TEST(EmulatedDevice, TheModelOnDeviceMemoryEqualsTheCpuPathBitwise) {
  for (const auto& [mixed, recompute] : {std::pair{false, false}, std::pair{true, false}, std::pair{false, true},
                                         std::pair{true, true}}) {
    SCOPED_TRACE(cat(mixed ? "bf16 products" : "float32", recompute ? ", activations recomputed" : ""));
    EmulatedDeviceMemory memory;
    const EmulatedKernels kernels(memory);
    const DeviceModelErrors errors = compare_model_on_device(kernels, mixed, recompute);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_EQ(error, 0.0) << name;
    EXPECT_EQ(memory.live_bytes(), 0u) << "device memory still allocated after the run";
  }
  // Recomputing only the first 2 of 3 layers (model.recompute_num_layers): the recomputed layers'
  // kept inputs and shared buffers beside the third layer's own, in device memory.
  for (const bool mixed : {false, true}) {
    SCOPED_TRACE(cat(mixed ? "bf16 products" : "float32", ", 2 of 3 layers recomputed"));
    EmulatedDeviceMemory memory;
    const EmulatedKernels kernels(memory);
    const DeviceModelErrors errors = compare_model_on_device(kernels, mixed, true, 32, TinyFamily::Qwen2, {}, 2);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_EQ(error, 0.0) << name;
    EXPECT_EQ(memory.live_bytes(), 0u) << "device memory still allocated after the run";
  }
  // Mistral's sliding window, Qwen3's head norms, Gemma's GeGLU, 1 + w norms and scaled embeddings
  // and Gemma 2's sandwich norms, caps and windows, Gemma 3's local and global RoPE tables,
  // Phi-4-mini's partial rotation and LongRoPE's long factors, SmolLM3's NoPE layer, Granite's multipliers, OLMo 2's norms
  // (the model above has Qwen2's biases), in bf16 with recomputation.
  for (const TinyFamily family : kDeviceCheckFamilies) {
    SCOPED_TRACE(tiny_family_name(family));
    EmulatedDeviceMemory memory;
    const EmulatedKernels kernels(memory);
    const DeviceModelErrors errors = compare_model_on_device(kernels, true, true, 32, family);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_EQ(error, 0.0) << name;
  }
  // LoRA adapters on every projection (the gradients theirs; generation through them too), in
  // float32 and in bf16 with recomputation; with dropout (the rows' keys uploaded, the masks drawn
  // on the device); Qwen2-MoE's experts' adapters and DeepSeek-V3's latent projections' likewise.
  for (const bool mixed : {false, true}) {
    for (const double dropout : {0.0, 0.2}) {
      SCOPED_TRACE(cat(mixed ? "LoRA, bf16" : "LoRA, float32", ", dropout ", dropout));
      EmulatedDeviceMemory memory;
      const EmulatedKernels kernels(memory);
      model::LoraConfig lora = tiny_lora(4);
      lora.dropout = dropout;
      const DeviceModelErrors errors = compare_model_on_device(kernels, mixed, mixed, 32, TinyFamily::Qwen2, lora);
      ASSERT_EQ(errors.relative.size(), 2u + 2 * 2 * 7 + 4);  // sums, 28 adapter gradients, 4 steps' logits
      for (const auto& [name, error] : errors.relative) EXPECT_EQ(error, 0.0) << name;
      // A mixture's experts' adapters (Qwen2-MoE's, its shared expert's too): each expert's block of the
      // grouped rows, their keys uploaded for the masks.
      EmulatedDeviceMemory moe_memory;
      const EmulatedKernels moe_kernels(moe_memory);
      const DeviceModelErrors moe = compare_model_on_device(moe_kernels, mixed, mixed, 32, TinyFamily::Qwen2Moe, lora);
      // sums, 2 layers x (4 attention targets + 5 experts x 3) x 2 factors' gradients, 4 steps' logits
      ASSERT_EQ(moe.relative.size(), 2u + 2 * (4 + 5 * 3) * 2 + 4);
      for (const auto& [name, error] : moe.relative) EXPECT_EQ(error, 0.0) << "mixture: " << name;
      // DeepSeek-V3's latent attention's adapters (every projection: the replicated ones' gradients from every
      // row, generation's absorbed kv_b_proj terms).
      TinyShape latent;
      latent.family = TinyFamily::DeepseekV3;
      model::LoraConfig every = tiny_lora(tiny_config(latent), 4);
      every.dropout = dropout;
      EmulatedDeviceMemory latent_memory;
      const EmulatedKernels latent_kernels(latent_memory);
      const DeviceModelErrors mla =
          compare_model_on_device(latent_kernels, mixed, mixed, 32, TinyFamily::DeepseekV3, every);
      ASSERT_GT(mla.relative.size(), 20u);
      for (const auto& [name, error] : mla.relative) EXPECT_EQ(error, 0.0) << "latent attention: " << name;
    }
  }
}

// Mixed precision against float32 on the CPU. bf16 keeps 8 significant bits (relative rounding
// 2^-9 per operand); this model's products are short (96-128 terms), so little averages out,
// every activation but the residual stream is kept in bf16 (q, k, v, the attention output, the
// MLP's gate and up: the kernels reading them see the rounded values), and the backward rounds
// each layer's output gradient again: measured (the model has Qwen2's q/k/v biases, which
// sharpen the attention), the log-probabilities and logits move by 3.6e-3 to 3.1e-2 and the
// gradients by 1.4e-2 to 1.1e-1 (the q/k side and the first norm most: the softmax's derivative
// is small and sensitive). The bounds leave room for that and fail for a product left in float32
// (error ~0) or a stale or misplaced bf16 copy (error O(1)).
TEST(MixedPrecision, Bf16ProductsStayWithinBf16RoundingOfFloat32) {
  const kernels::CpuKernels cpu;
  const DeviceModelErrors errors = compare_model(cpu, true, cpu, false);
  for (const auto& [name, error] : errors.relative) {
    std::printf("  %-60s %.2e\n", name.c_str(), error);
    const bool gradient = name.rfind("gradient", 0) == 0;
    EXPECT_LT(error, gradient ? 1.5e-1 : 4e-2) << name;
    EXPECT_GT(error, 1e-4) << name << ": no bf16 rounding visible";
  }
}

// Everything a SPIN run does on its device -- reference generation (every sampling mode), the
// reference's log-probabilities (forward or sampler), the 1F1B policy step, AdamW, the
// reference sync and evaluation -- with the weights, activations, caches and optimizer state in
// device memory: metrics and final weights equal the CPU run's bitwise.
// One SPIN setup (2 layers, 16 examples) on the CPU and the same on the emulated device, its
// reference in host memory with `offload` (spin.ref_offload).
struct CpuAndDevice {
  CpuAndDevice(const train::SpinConfig& config, bool offload)
      : device_kernels(memory),
        dev_config(with_offload(config, offload)),
        cpu(world_cpu, {1, 1, 1}, config, shape_with(2), false, spin_examples(16)),
        dev(world_device, {1, 1, 1}, dev_config, shape_with(2), false, spin_examples(16), &device_kernels) {}
  static train::SpinConfig with_offload(train::SpinConfig config, bool offload) {
    config.ref_offload = offload;
    return config;
  }
  EmulatedDeviceMemory memory;
  const EmulatedKernels device_kernels;
  parallel::SelfCommunicator world_cpu, world_device;
  const train::SpinConfig dev_config;
  SpinSetup cpu, dev;
};

TEST(EmulatedDevice, SpinStepsOnDeviceMemoryEqualTheCpuRunBitwise) {
  struct Mode {
    const char* name;
    bool greedy;
    std::int64_t top_k;
    float top_p;
    bool ref_from_sampler;
    bool mixed;
    bool offload = false;  // the device run's reference in host memory (spin.ref_offload), and
                           // its activations recomputed in the backward
  };
  for (const Mode& mode :
       {Mode{"greedy", true, 0, 1.0f, false, false}, Mode{"top-k + top-p", false, 5, 0.8f, true, false},
        Mode{"top-p radix search", false, 0, 0.9f, false, false},
        Mode{"bf16 products, top-p", false, 0, 0.9f, true, true},
        Mode{"reference offloaded, activations recomputed, bf16 products", false, 0, 0.9f, false, true, true}}) {
    SCOPED_TRACE(mode.name);
    train::SpinConfig config = small_spin_config();
    config.ref_logprobs_from_sampler = mode.ref_from_sampler;
    config.generation.sampling.greedy = mode.greedy;
    config.generation.sampling.top_k = mode.top_k;
    config.generation.sampling.top_p = mode.top_p;
    config.generation.sampling.repetition_penalty = 1.2f;
    config.generation.sampling.temperature = 0.9f;

    // The device run's reference offloaded against a CPU run without: the swap changes nothing.
    CpuAndDevice run(config, mode.offload);
    SpinSetup &cpu = run.cpu, &dev = run.dev;
    const train::SpinConfig& dev_config = run.dev_config;
    const EmulatedKernels& device_kernels = run.device_kernels;
    ASSERT_EQ(dev.policy.device(), Device::Cuda);
    ASSERT_EQ(dev.reference.device(), mode.offload ? Device::Cpu : Device::Cuda);
    dev.transformer.set_recompute_activations(mode.offload);
    if (mode.mixed) {
      for (SpinSetup* s : {&cpu, &dev}) {
        s->policy.enable_bf16(s->k);
        if (s->reference.device() == s->policy.device()) s->reference.enable_bf16(s->k);
      }
    }

    const auto same = [](const train::SpinStepMetrics& a, const train::SpinStepMetrics& b) {
      EXPECT_EQ(a.spin.loss, b.spin.loss);
      EXPECT_EQ(a.spin.rewards_actual, b.spin.rewards_actual);
      EXPECT_EQ(a.spin.rewards_generated, b.spin.rewards_generated);
      EXPECT_EQ(a.spin.accuracy, b.spin.accuracy);
      EXPECT_EQ(a.spin.generated_length_mean, b.spin.generated_length_mean);
      EXPECT_EQ(a.grad_norm, b.grad_norm);
      EXPECT_EQ(a.applied, b.applied);
    };
    for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
      for (std::int64_t index = 0; index < 2; ++index) {
        const train::SpinStepMetrics m = dev.trainer.step(iteration, 0, index, 1e-2);
        same(m, cpu.trainer.step(iteration, 0, index, 1e-2));
        // policy == reference at an iteration's start; the policy has moved one step later
        // (with bf16 products: its bf16 copy was refreshed after the update).
        if (index == 0) {
          // (the sampler's log-probabilities come from the KV-cache path: equal up to float32
          // rounding -- measured 1.2e-7, and 3e-8 with bf16, whose cache holds the very bf16
          // keys and values a training forward computes)
          EXPECT_NEAR(m.spin.loss, std::log(2.0), mode.ref_from_sampler ? 1e-5 : 1e-15);
        }
        if (index == 1) {
          EXPECT_NE(m.spin.rewards_actual, 0.0);
        }
      }
      dev.trainer.sync_reference();
      cpu.trainer.sync_reference();
    }
    const train::SpinMetrics e_dev = dev.trainer.evaluate(dev.examples, 1);
    const train::SpinMetrics e_cpu = cpu.trainer.evaluate(cpu.examples, 1);
    EXPECT_EQ(e_dev.loss, e_cpu.loss);
    EXPECT_EQ(e_dev.sft_nll, e_cpu.sft_nll);
    EXPECT_EQ(to_host<float>(dev.policy.flat()), to_host<float>(cpu.policy.flat()));
    EXPECT_EQ(to_host<float>(dev.reference.flat()), to_host<float>(cpu.reference.flat()));

    // A checkpoint of the device run (written through host copies), loaded into a fresh device
    // setup, continues exactly as the CPU run does.
    const ScratchDir scratch("spin_emulated_ckpt");
    const std::string dir = scratch.str();
    train::save_checkpoint(dir, 4, dev.grid, dev.policy, &dev.reference, &dev.optimizer, false, {}, 1, {});
    parallel::SelfCommunicator world_resumed;
    SpinSetup resumed(world_resumed, {1, 1, 1}, dev_config, shape_with(2), false, spin_examples(16), &device_kernels);
    if (mode.mixed) {
      resumed.policy.enable_bf16(resumed.k);
      if (!mode.offload) resumed.reference.enable_bf16(resumed.k);
    }
    const ckpt::CheckpointReader reader(ckpt::checkpoint_dir(dir, 4));
    train::load_weights(reader, "policy", resumed.policy);
    train::load_weights(reader, "reference", resumed.reference);
    resumed.optimizer.load_state(reader, dev.optimizer.steps_taken(), dev.optimizer.steps_skipped());
    same(resumed.trainer.step(1, 0, 2, 1e-2), cpu.trainer.step(1, 0, 2, 1e-2));
    EXPECT_EQ(to_host<float>(resumed.policy.flat()), to_host<float>(cpu.policy.flat()));
  }
}

// Several epochs on the device path with what keeps work between steps: responses generated
// ahead for the iteration (spin.pregenerate), their reference sums kept (host tables over device
// forwards), the reference offloaded (uploaded once for the whole epoch), validation reused --
// the CPU run's steps, bitwise.
TEST(EmulatedDevice, PregeneratedEpochsWithKeptSumsOnDeviceMemoryEqualTheCpuRunBitwise) {
  train::SpinConfig config = small_spin_config();
  config.epochs = 2;
  config.reuse_generations = true;
  config.pregenerate = true;
  config.generation.sampling.top_p = 0.9f;
  CpuAndDevice run(config, true);
  SpinSetup &cpu = run.cpu, &dev = run.dev;
  ASSERT_EQ(dev.reference.device(), Device::Cpu);
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    for (std::int64_t index = 0; index < dev.trainer.steps_per_epoch(); ++index) {
      const train::SpinStepMetrics a = dev.trainer.step(0, epoch, index, 1e-2);
      const train::SpinStepMetrics b = cpu.trainer.step(0, epoch, index, 1e-2);
      EXPECT_EQ(a.spin.loss, b.spin.loss) << epoch << " " << index;
      EXPECT_EQ(a.spin.rewards_generated, b.spin.rewards_generated);
      EXPECT_EQ(a.spin.logps_actual, b.spin.logps_actual);
      EXPECT_EQ(a.grad_norm, b.grad_norm);
    }
    // One upload for the first epoch's whole reference work, one for the first validation, none
    // for the second epoch or the reused validation.
    EXPECT_EQ(dev.trainer.reference_uploads(), epoch == 0 ? 1 : 2) << epoch;
    for (int twice = 0; twice < 2; ++twice) {
      EXPECT_EQ(dev.trainer.evaluate(dev.examples, 0).loss, cpu.trainer.evaluate(cpu.examples, 0).loss);
    }
  }
  EXPECT_EQ(dev.trainer.evaluation_rollouts(), 1);
  EXPECT_EQ(dev.trainer.reference_sequences_scored(), 2 * 16);
  EXPECT_EQ(to_host<float>(dev.policy.flat()), to_host<float>(cpu.policy.flat()));
}

// The emulator itself: what it must catch.
TEST(EmulatedDevice, KernelsRefuseHostMemoryAndOverruns) {
  EmulatedDeviceMemory memory;
  const EmulatedKernels kernels(memory);
  const Tensor x = Tensor::zeros({8}, DType::F32, Device::Cuda);
  std::vector<float> host(8);
  EXPECT_NE(error_of([&] { kernels.add_inplace(x.f32(), host.data(), 8); }).find("host pointer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { kernels.add_inplace(x.f32(), x.f32(), 9); }).find("past the end"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { kernels.add_inplace(x.f32(), x.f32(), 8); }), "");
}

TEST(EmulatedDeviceDeathTest, HostCodeReadingDeviceMemoryFaults) {
  EXPECT_DEATH(
      {
        EmulatedDeviceMemory memory;
        const Tensor x = Tensor::zeros({8}, DType::F32, Device::Cuda);
        volatile float v = x.f32()[3];
        (void)v;
      },
      "");
}

TEST(EmulatedDevice, CopiesMoveDataBetweenHostAndDevice) {
  EmulatedDeviceMemory memory;
  Tensor host = Tensor::zeros({4});
  for (int i = 0; i < 4; ++i) host.f32()[i] = static_cast<float>(i) + 0.5f;
  const Tensor device = host.to(Device::Cuda);
  EXPECT_EQ(device.device(), Device::Cuda);
  const Tensor twice = device.clone();
  EXPECT_EQ(to_host<float>(twice), (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f}));
  twice.zero_();
  EXPECT_EQ(to_host<float>(twice), std::vector<float>(4, 0.0f));
}

}  // namespace
}  // namespace spin::testing
