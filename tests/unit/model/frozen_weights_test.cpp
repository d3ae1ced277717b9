// Frozen weights in bf16 alone (model::WeightStorage::FrozenBf16): what they hold, the copies
// between the representations, their forward against the Float32 model's bf16 copy, LoRA merges
// into them and their checkpoints.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "checkpoint/sharded_checkpoint.h"
#include "common/device_model_check.h"
#include "common/emulated_device.h"
#include "common/scratch_dir.h"
#include "common/tiny_model.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/weights.h"
#include "train/checkpointing.h"

namespace spin::testing {
namespace {

using model::ModelWeights;
using model::WeightStorage;

std::vector<std::uint16_t> bf16_values(const ModelWeights& w) {
  std::vector<std::uint16_t> out(static_cast<std::size_t>(w.flat_bf16().numel()));
  copy_bytes(out.data(), Device::Cpu, w.flat_bf16().raw(), w.device(), w.flat_bf16().nbytes());
  return out;
}

model::ModelConfig family_config(TinyFamily family) {
  TinyShape shape;
  shape.family = family;
  return tiny_config(shape);
}

std::vector<float> host_values(const ModelWeights& w) {
  const Tensor t = w.values_on_host();
  return {t.f32(), t.f32() + t.numel()};
}

// Gemma's tied embedding (the LM head a bf16 view of the float32-kept table), Mixtral's router and
// experts, Qwen2-MoE's shared expert and its gate, DeepSeek-V3's latent projections and norms, StableLM's
// norm biases, Phi's LM head bias, Cohere's per-head norms, GLM-4.5's router correction bias.
constexpr TinyFamily kLayoutFamilies[] = {TinyFamily::Llama,    TinyFamily::Gemma,        TinyFamily::Mixtral,
                                          TinyFamily::Qwen2Moe, TinyFamily::DeepseekV3,   TinyFamily::StableLm,
                                          TinyFamily::Phi,      TinyFamily::CohereQkNorm, TinyFamily::Glm4Moe};

// The matrices in bf16 alone (their rounding, bitwise the Float32 model's copy), the embedding and
// every vector in float32 as well; on the host, the values widened; a Float32 model copied from it
// holds those widened values, and a FrozenBf16 one copied from a Float32 model without a bf16 copy
// (rounded on the host) the same bits as from one with it (device to device).
TEST(FrozenWeights, HoldTheMatricesInBf16AloneAndCopyBothWays) {
  const kernels::CpuKernels cpu;
  for (const TinyFamily family : kLayoutFamilies) {
    SCOPED_TRACE(tiny_family_name(family));
    const model::ModelConfig c = family_config(family);
    const model::TpDims dims = model::tp_dims(c, 1, 2);
    const model::StageLayers whole = model::StageLayers::whole(c.num_layers);
    ModelWeights master(c, dims, whole, 4);
    init_tiny_weights(master, 7, 0.3f, c.norm_weight_offset);
    ModelWeights rounded_on_host(c, dims, whole, 4, Device::Cpu, WeightStorage::FrozenBf16);
    rounded_on_host.copy_from(master);  // no bf16 copy yet: through the host
    master.enable_bf16(cpu);
    ModelWeights frozen(c, dims, whole, 4, Device::Cpu, WeightStorage::FrozenBf16);
    frozen.copy_from(master);
    ASSERT_TRUE(frozen.frozen() && frozen.has_bf16());
    EXPECT_EQ(bf16_values(frozen), bf16_values(master));
    EXPECT_EQ(bf16_values(rounded_on_host), bf16_values(master));
    EXPECT_EQ(frozen.layout_offsets(), master.layout_offsets());

    const std::vector<float> masters = host_values(master), held = host_values(frozen);
    std::int64_t kept = 0;
    for (std::size_t i = 0; i < master.sharded_state_dict().size(); ++i) {
      const ShardedTensor &m = master.sharded_state_dict()[i], &f = frozen.sharded_state_dict()[i];
      ASSERT_EQ(f.name, m.name);
      const bool in_float32 = f.global_shape.size() == 1 || f.name == "model.embed_tokens.weight" ||
                              f.name.ends_with("norm.weight");  // (Cohere's per-head norms: [heads, head_dim])
      EXPECT_EQ(model::read_in_float32(f), in_float32) << f.name;
      EXPECT_EQ(f.local.dtype(), in_float32 ? DType::F32 : DType::BF16) << f.name;
      kept += in_float32 ? f.local.numel() : 0;
      for (std::int64_t e = 0; e < m.local.numel(); ++e) {
        const auto at = static_cast<std::size_t>(master.layout_offsets()[i] + e);
        const float want = in_float32 ? masters[at] : bf16_to_f32(f32_to_bf16(masters[at]));
        ASSERT_EQ(held[at], want) << f.name << " " << e;
      }
    }
    // The float32 buffer holds the kept tensors alone (each aligned to 16 floats).
    EXPECT_GE(frozen.flat().numel(), kept);
    EXPECT_LT(frozen.flat().numel(), kept + 16 * static_cast<std::int64_t>(frozen.sharded_state_dict().size()));
    if (c.tie_word_embeddings) {
      EXPECT_EQ(frozen.lm_head.raw(), frozen.embed_tokens.raw());
      EXPECT_EQ(frozen.lm_head_bf16.dtype(), DType::BF16);
    }

    ModelWeights widened(c, dims, whole, 4);
    widened.copy_from(frozen);
    EXPECT_EQ(host_values(widened), held);
    ModelWeights again(c, dims, whole, 4, Device::Cpu, WeightStorage::FrozenBf16);
    again.copy_from(frozen);
    EXPECT_EQ(bf16_values(again), bf16_values(frozen));
    EXPECT_EQ(host_values(again), held);
  }
}

// The forward, the backward's gradients and generation through the KV cache of a FrozenBf16 model
// on the emulated device equal, bitwise, those of the Float32 model's bf16 copy on the CPU -- every
// family, and LoRA adapters over a frozen base (Qwen2's projections, Qwen2-MoE's experts, DeepSeek-V3's
// latent projections). A forward reading a matrix's float32 values would throw (a bf16 tensor read as
// float32); one reading a stale or misplaced bf16 value would differ.
TEST(FrozenWeights, EveryFamilyComputesWhatTheBf16CopyComputes) {
  const kernels::CpuKernels cpu;
  std::vector<TinyFamily> families = {TinyFamily::Qwen2, TinyFamily::Llama};
  families.insert(families.end(), std::begin(kDeviceCheckFamilies), std::end(kDeviceCheckFamilies));
  for (const TinyFamily family : families) {
    SCOPED_TRACE(tiny_family_name(family));
    EmulatedDeviceMemory memory;
    const EmulatedKernels kernels(memory);
    const DeviceModelErrors errors =
        compare_model(kernels, true, cpu, true, false, 32, family, {}, 0, WeightStorage::FrozenBf16);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_EQ(error, 0.0) << name;
  }
  for (const TinyFamily family : {TinyFamily::Qwen2, TinyFamily::Qwen2Moe, TinyFamily::DeepseekV3}) {
    SCOPED_TRACE(cat("LoRA over a frozen ", tiny_family_name(family)));
    model::LoraConfig lora = tiny_lora(family_config(family), 4);
    lora.dropout = 0.2;
    EmulatedDeviceMemory memory;
    const EmulatedKernels kernels(memory);
    const DeviceModelErrors errors =
        compare_model(kernels, true, cpu, true, true, 32, family, lora, 0, WeightStorage::FrozenBf16);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_EQ(error, 0.0) << name;
  }
}

// LoRA's merge into a frozen base (a SPIN iteration's end): W = bf16(widen(W) + scale B A), the sum
// in float32 and rounded once -- bitwise the rounding of the merge into the widened values; the
// unadapted matrices and the float32 tensors untouched.
TEST(FrozenWeights, LoraMergeRoundsTheFloat32SumOnce) {
  const kernels::CpuKernels cpu;
  for (const TinyFamily family : {TinyFamily::Llama, TinyFamily::Mixtral, TinyFamily::DeepseekV3}) {
    SCOPED_TRACE(tiny_family_name(family));
    const model::ModelConfig c = family_config(family);
    const model::TpDims dims = model::tp_dims(c, 0, 1);
    const model::StageLayers whole = model::StageLayers::whole(c.num_layers);
    ModelWeights master(c, dims, whole);
    init_tiny_weights(master, 3, 0.3f, c.norm_weight_offset);
    const model::LoraConfig lora = tiny_lora(c, 2);
    ModelWeights adapters = ModelWeights::adapters(c, lora, dims, whole);
    randomize_matrices(adapters, 11, 0.2f);
    ModelWeights frozen(c, dims, whole, 1, Device::Cpu, WeightStorage::FrozenBf16);
    frozen.copy_from(master);
    const std::vector<float> before = host_values(frozen);
    ModelWeights want(c, dims, whole);
    want.copy_from(frozen);  // the widened values
    adapters.merge_into(want, cpu);
    adapters.merge_into(frozen, cpu);
    const std::vector<float> merged = host_values(want), got = host_values(frozen);
    std::int64_t moved = 0;
    for (std::size_t i = 0; i < frozen.sharded_state_dict().size(); ++i) {
      const ShardedTensor& t = frozen.sharded_state_dict()[i];
      for (std::int64_t e = 0; e < t.local.numel(); ++e) {
        const auto at = static_cast<std::size_t>(frozen.layout_offsets()[i] + e);
        const float expect = model::read_in_float32(t) ? merged[at] : bf16_to_f32(f32_to_bf16(merged[at]));
        ASSERT_EQ(got[at], expect) << t.name << " " << e;
        moved += got[at] != before[at];
        if (model::read_in_float32(t) || t.name.find("router") != std::string::npos ||
            t.name.find(".gate.") != std::string::npos) {
          ASSERT_EQ(got[at], before[at]) << t.name << ": not adapted";
        }
      }
    }
    EXPECT_GT(moved, 100) << "the adapters moved nothing";
  }
}

// A frozen reference's checkpoint: its values as the forward reads them (the matrices' bf16 values
// widened), read back into a FrozenBf16 model bitwise and into a Float32 one as those values.
TEST(FrozenWeights, CheckpointsHoldTheValuesTheForwardReads) {
  parallel::SelfCommunicator world;
  const parallel::ProcessGrid grid(world, {1, 1, 1});
  const model::ModelConfig c = family_config(TinyFamily::Gemma);  // tied: the float32 embedding is the head
  const model::TpDims dims = model::tp_dims(c, 0, 1);
  const model::StageLayers whole = model::StageLayers::whole(c.num_layers);
  ModelWeights policy(c, dims, whole);
  init_tiny_weights(policy, 5, 0.3f, c.norm_weight_offset);
  ModelWeights frozen(c, dims, whole, 1, Device::Cpu, WeightStorage::FrozenBf16);
  frozen.copy_from(policy);
  const ScratchDir scratch("spin_frozen_ckpt");
  const std::string dir = scratch.str();
  train::save_checkpoint(dir, 1, grid, policy, &frozen, nullptr, false, {}, 1, {});
  const ckpt::CheckpointReader reader(ckpt::checkpoint_dir(dir, 1));
  ModelWeights back(c, dims, whole, 1, Device::Cpu, WeightStorage::FrozenBf16);
  train::load_weights(reader, "reference", back);
  EXPECT_EQ(bf16_values(back), bf16_values(frozen));
  EXPECT_EQ(host_values(back), host_values(frozen));
  ModelWeights wide(c, dims, whole);
  train::load_weights(reader, "reference", wide);
  EXPECT_EQ(host_values(wide), host_values(frozen));
  EXPECT_NE(host_values(wide), host_values(policy)) << "the policy's float32 values saved, not the reference's";
}

}  // namespace
}  // namespace spin::testing
