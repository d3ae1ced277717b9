// The whole model on the GPU against the CPU path (tests/common/device_model_check.h): scoring,
// backward and generation of a tiny model with every buffer in device memory, through
// CudaKernels (float32, TF32 off). The two paths differ only in float32 rounding order (cuBLAS
// blocking, warp-tree reductions, expf against the CPU's vectorised exp), which over a
// two-layer model stays far below 1e-4 relative; a wrong index or an unwritten buffer is O(1).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "common/device_model_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/fused_attention.h"

namespace spin::testing {
namespace {

TEST(CudaModel, ScoringBackwardAndGenerationMatchTheCpuPath) {
  for (bool fused : {true, false}) {
    SCOPED_TRACE(fused ? "fused attention" : "cuBLAS attention");
    const kernels::CudaKernels gpu(fused ? kernels::CudaKernels::Attention::Fused
                                         : kernels::CudaKernels::Attention::Cublas);
    const DeviceModelErrors errors = compare_model_on_device(gpu);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) {
      EXPECT_LT(error, 1e-4) << name;
      std::printf("  %s %-45s relative error %.2e\n", fused ? "fused" : "cuBLAS", name.c_str(), error);
    }
  }
}

// Mixed precision: bf16 products (cuBLAS, float32 accumulation) against the CPU's bf16
// reference. The operands round identically on both sides; the sums' order differs, and a
// float32 difference can flip the bf16 rounding of the next layer's input, a 2^-9 relative step
// on that element -- hence 1e-2, the bf16 tolerance (METHOD.md), not float32's.
TEST(CudaModel, MixedPrecisionMatchesTheCpuBf16Reference) {
  const kernels::CudaKernels gpu;
  const DeviceModelErrors errors = compare_model_on_device(gpu, true);
  ASSERT_GT(errors.relative.size(), 20u);
  for (const auto& [name, error] : errors.relative) {
    EXPECT_LT(error, 1e-2) << name;
    std::printf("  bf16 %-40s relative error %.2e\n", name.c_str(), error);
  }
}

// The tensor-core attention kernels (bf16, head_dim 64; and 256, Gemma's, as a Gemma 2) inside
// the model: P, dO and dS are rounded to bf16 for their
// products on the GPU but not on the CPU reference, one more bf16 rounding per attention
// product -- twice the bound above.
TEST(CudaModel, TensorCoreAttentionMatchesTheCpuBf16Reference) {
  const kernels::CudaKernels gpu;
  for (const int head_dim : {64, 256}) {
    ASSERT_TRUE(kernels::cuda_detail::tensor_core_attention_supports(head_dim));
    SCOPED_TRACE(cat("head_dim ", head_dim));
    const DeviceModelErrors errors = compare_model_on_device(gpu, true, false, head_dim,
                                                             head_dim == 256 ? TinyFamily::Gemma2 : TinyFamily::Qwen2);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) {
      EXPECT_LT(error, 2e-2) << name;
      std::printf("  tensor-core bf16 head_dim %d %-40s relative error %.2e\n", head_dim, name.c_str(), error);
    }
  }
}

// Activation recomputation on the GPU (each layer's forward again in the backward; again of only
// the first 2 of 3 layers) against the CPU keeping every activation: within the tolerances above.
TEST(CudaModel, RecomputedActivationsMatchTheCpuPath) {
  const kernels::CudaKernels gpu;
  for (const std::int64_t layers : {0, 2}) {
    for (const bool mixed : {false, true}) {
      const DeviceModelErrors errors = compare_model_on_device(gpu, mixed, true, 32, TinyFamily::Qwen2, {}, layers);
      ASSERT_GT(errors.relative.size(), 20u);
      for (const auto& [name, error] : errors.relative) EXPECT_LT(error, mixed ? 1e-2 : 1e-4) << name;
    }
  }
}

// Mistral's sliding window (every attention kernel's mask), Qwen3's head norms (the RMSNorm
// kernels over rows of head_dim), Gemma's GeGLU, 1 + w norms and
// scaled tied embeddings with activations recomputed, and Gemma 2's sandwich norms and capped
// scores (on tensor cores in bf16 at this head size) and logits, Gemma 3's two RoPE tables and
// Phi-4-mini's partial rotation and LongRoPE's long rows, SmolLM3's NoPE layer, Granite's multipliers
// (Kernels::scale; GraniteMoE's over Mixtral's mixture) and
// OLMo 2's norms (q and k normed across their heads: row_dot and the *_from_sums pair), in
// float32 and in bf16 on the
// tensor-core attention's head size: the bounds above.
TEST(CudaModel, Qwen3AndGemmaMatchTheCpuPath) {
  const kernels::CudaKernels gpu;
  for (const TinyFamily family : kDeviceCheckFamilies) {
    for (const bool mixed : {false, true}) {
      SCOPED_TRACE(cat(tiny_family_name(family), mixed ? ", bf16" : ", float32"));
      const DeviceModelErrors errors = compare_model_on_device(gpu, mixed, family != TinyFamily::Qwen3, 64, family);
      ASSERT_GT(errors.relative.size(), 20u);
      for (const auto& [name, error] : errors.relative) EXPECT_LT(error, mixed ? 2e-2 : 1e-4) << name;
    }
  }
}

// LoRA adapters on every projection (Kernels::gemm_bf16 with float32 and bf16 outputs, the
// frozen base's products without weight gradients), their gradients and generation through
// them, in float32 and in bf16 (on the tensor-core attention's head size): the bounds above.
TEST(CudaModel, LoraAdaptersMatchTheCpuPath) {
  const kernels::CudaKernels gpu;
  for (const bool mixed : {false, true}) {
    SCOPED_TRACE(mixed ? "LoRA, bf16" : "LoRA, float32");
    model::LoraConfig lora = tiny_lora(4);
    const DeviceModelErrors errors = compare_model_on_device(gpu, mixed, mixed, 64, TinyFamily::Qwen2, lora);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_LT(error, mixed ? 2e-2 : 1e-4) << name;
    // With dropout: the masks drawn on the GPU (Kernels::dropout) are the CPU's, bit for bit.
    lora.dropout = 0.2;
    const DeviceModelErrors dropped = compare_model_on_device(gpu, mixed, mixed, 64, TinyFamily::Qwen2, lora);
    for (const auto& [name, error] : dropped.relative) EXPECT_LT(error, mixed ? 2e-2 : 1e-4) << "dropout " << name;
    // A mixture's experts' adapters (Qwen2-MoE's, the shared expert's too), with dropout.
    const DeviceModelErrors moe = compare_model_on_device(gpu, mixed, mixed, 64, TinyFamily::Qwen2Moe, lora);
    for (const auto& [name, error] : moe.relative) EXPECT_LT(error, mixed ? 2e-2 : 1e-4) << "mixture " << name;
    // DeepSeek-V3's latent attention's adapters, every projection's, with dropout.
    TinyShape latent;
    latent.family = TinyFamily::DeepseekV3;
    model::LoraConfig every = tiny_lora(tiny_config(latent), 4);
    every.dropout = 0.2;
    const DeviceModelErrors mla = compare_model_on_device(gpu, mixed, mixed, 64, TinyFamily::DeepseekV3, every);
    for (const auto& [name, error] : mla.relative) EXPECT_LT(error, mixed ? 2e-2 : 1e-4) << "latent " << name;
  }
}

// Frozen weights in bf16 alone (model::WeightStorage::FrozenBf16: SPIN's reference, LoRA's base, the
// inference commands' models) on the GPU against the Float32 model's bf16 copy on the GPU: the same
// kernels over the same bf16 values, so equal up to the run-to-run order of the GPU's reductions
// (1e-6; a matrix read from a wrong place or a stale float32-read tensor is O(1)) -- Qwen2's biases,
// Gemma's tied embedding on the tensor cores, Mixtral's router and experts, DeepSeek-V3's latent
// attention, and LoRA over a frozen base.
TEST(CudaModel, FrozenBf16WeightsComputeWhatTheBf16CopyComputes) {
  const kernels::CudaKernels gpu;
  for (const TinyFamily family : {TinyFamily::Qwen2, TinyFamily::Gemma, TinyFamily::Mixtral, TinyFamily::DeepseekV3}) {
    SCOPED_TRACE(tiny_family_name(family));
    const DeviceModelErrors errors =
        compare_model(gpu, true, gpu, true, false, 64, family, {}, 0, model::WeightStorage::FrozenBf16);
    ASSERT_GT(errors.relative.size(), 20u);
    for (const auto& [name, error] : errors.relative) EXPECT_LT(error, 1e-6) << name;
  }
  const DeviceModelErrors lora = compare_model(gpu, true, gpu, true, true, 64, TinyFamily::Qwen2, tiny_lora(4), 0,
                                               model::WeightStorage::FrozenBf16);
  for (const auto& [name, error] : lora.relative) EXPECT_LT(error, 1e-6) << "LoRA " << name;
}

}  // namespace
}  // namespace spin::testing
