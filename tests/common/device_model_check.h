// The whole model on a device against the CPU reference: the tiny model's weights are copied to
// the device of `kernels`, and the same batches run through Transformer on both -- scoring
// (token log-probabilities and per-sequence sums), backward (every parameter gradient) and
// generation (a prefill, one of them in two chunks, and decode steps through a KV cache, the
// next-token logits). Returns
// the relative L2 error of each output against the CPU's, both in float32 or both in mixed
// precision (bf16 products). Used by the emulated-device unit test (exactly 0: the same CPU
// kernels behind device pointers) and by gpu_test (CUDA).
#pragma once

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/workspace.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "parallel/communicator.h"

namespace spin::testing {

// The families the device checks run beside their first model (Qwen2's biases; gpu_test's Llama):
// each family's own parts, on the emulated device and on a GPU alike.
inline constexpr TinyFamily kDeviceCheckFamilies[] = {
    TinyFamily::Mistral,    TinyFamily::Qwen3,        TinyFamily::Gemma,          TinyFamily::Gemma2,
    TinyFamily::Gemma3,     TinyFamily::Phi4Mini,     TinyFamily::SmolLM3,        TinyFamily::Granite,
    TinyFamily::Olmo,       TinyFamily::Olmo2,        TinyFamily::StableLm,       TinyFamily::StableLmParallel,
    TinyFamily::Cohere,     TinyFamily::Cohere2,      TinyFamily::GptNeox,        TinyFamily::GptNeoxSequential,
    TinyFamily::Phi,        TinyFamily::Mixtral,      TinyFamily::Qwen3Moe,       TinyFamily::Olmoe,
    TinyFamily::Qwen2Moe,   TinyFamily::CohereQkNorm, TinyFamily::StableLmQkNorm, TinyFamily::LlamaBiases,
    TinyFamily::GraniteMoe, TinyFamily::Glm4,         TinyFamily::Exaone4,      TinyFamily::Glm4Moe,
    TinyFamily::DeepseekV3, TinyFamily::DeepseekV2};

struct DeviceModelErrors {
  std::vector<std::pair<std::string, double>> relative;  // output name -> relative L2 error
  double max() const {
    double m = 0.0;
    for (const auto& e : relative) m = std::max(m, e.second);
    return m;
  }
};

namespace device_model_check {

struct Run {
  std::vector<float> token_logprobs, sequence_logprobs;
  std::vector<std::vector<float>> gradients;  // per parameter, host copies
  std::vector<std::vector<float>> logits;     // per generation step: [num_seqs, vocab_rows]
};

// `host_adapters`: LoRA adapters the model runs with (their gradients are then the gradients).
// `storage`: how the device holds the model (FrozenBf16: in bf16 alone, mixed only).
inline Run run(const kernels::Kernels& k, const model::ModelConfig& config, const model::ModelWeights& host_weights,
               bool mixed, bool recompute = false, const model::ModelWeights* host_adapters = nullptr,
               std::int64_t recompute_layers = 0, model::WeightStorage storage = model::WeightStorage::Float32) {
  parallel::SelfCommunicator tp;
  const model::TpDims dims = model::tp_dims(config, 0, 1);
  const model::StageLayers whole = model::StageLayers::whole(config.num_layers);
  model::ModelWeights weights(config, dims, whole, 1, k.device(), storage);
  weights.copy_from(host_weights);
  if (mixed) weights.enable_bf16(k);
  std::optional<model::ModelWeights> adapters;
  if (host_adapters) {
    adapters.emplace(model::ModelWeights::adapters(config, host_adapters->lora(), dims, whole, 1, k.device()));
    adapters->copy_from(*host_adapters);
    if (mixed) adapters->enable_bf16(k);
  }
  const model::ModelWeights* lora = adapters ? &*adapters : nullptr;
  model::Transformer t(config, dims, tp, k);
  t.set_recompute_activations(recompute, recompute_layers);
  Run r;

  // Scoring and backward: three sequences of different lengths, packed, keyed for LoRA's dropout;
  // with LongRoPE the second longer than its switch (its rows read the long factors' table rows).
  const std::int64_t second_length = config.long_rope_context() > 0 ? config.long_rope_context() + 8 : 9;
  model::TokenBatch batch = model::TokenBatch::pack({{random_ids(5, config.vocab_size, 11), 2, 0, 0},
                                                     {random_ids(static_cast<std::size_t>(second_length), config.vocab_size, 12), 4, 0, 1},
                                                     {random_ids(3, config.vocab_size, 13), 1, 0, 2}});
  batch.dropout_seed = 5;
  model::Activations acts;
  const model::ForwardResult f = t.forward(weights, batch, acts, true, {}, lora);
  r.token_logprobs = f.token_logprobs;
  r.sequence_logprobs = f.sequence_logprobs;
  model::ModelWeights grads = lora ? model::ModelWeights::adapters(config, lora->lora(), dims, whole, 1, k.device())
                                   : model::ModelWeights(config, dims, whole, 1, k.device());
  const std::vector<float> dsums = {0.7f, -1.3f, 0.4f};
  t.backward(weights, acts, dsums, grads);
  for (const ShardedTensor& g : grads.sharded_state_dict()) r.gradients.push_back(to_host<float>(g.local));

  // Generation: two prompts into slots 1 and 0 -- the first prefilled at once, the second in
  // two chunks of 3 (sampled after the second, which continues at position 3 beside the first
  // prompt's first decoded token) --, then two single-token steps. Windowed layers keep a ring
  // of their window and the 4 tokens a call feeds a sequence at most (model/kv_cache.h), which
  // the sequences outgrow under a small window (Mistral's 3 keys: 6 rows).
  model::KvCache cache(dims, 16, model::kv_capacities(config, whole, 16, 4), 2, k.device(),
                       mixed ? DType::BF16 : DType::F32);
  model::Activations gen;
  std::vector<std::int64_t> slots = {1, 0};
  const std::vector<std::int32_t> second = random_ids(6, config.vocab_size, 22);
  std::vector<model::Sequence> step = {{random_ids(4, config.vocab_size, 21), 1},
                                       {{second.begin(), second.begin() + 3}, 1}};
  t.forward_cached(weights, model::TokenBatch::pack(step), slots, cache, gen, {}, std::vector<std::int64_t>{0}, lora);
  r.logits.push_back(to_host<float>(gen.head.logits));
  step = {{{static_cast<std::int32_t>(5 % config.vocab_size)}, 1, 4}, {{second.begin() + 3, second.end()}, 1, 3}};
  std::vector<std::int64_t> lengths = {5, 6};
  const std::vector<std::int64_t> both = {0, 1};
  for (int s = 0; s < 3; ++s) {
    t.forward_cached(weights, model::TokenBatch::pack(step), slots, cache, gen, {}, both, lora);
    r.logits.push_back(to_host<float>(gen.head.logits));
    for (std::size_t i = 0; i < step.size(); ++i) {
      step[i] = {{static_cast<std::int32_t>((7 * s + 3 * static_cast<int>(i) + 1) % config.vocab_size)},
                 1, lengths[i]};
      lengths[i] += 1;
    }
  }
  return r;
}

}  // namespace device_model_check

// The tiny model `got_kernels` runs (in bf16 products when got_mixed, recomputing activations
// in the backward when got_recompute) against the one `want_kernels` runs (when want_mixed):
// the relative L2 error of every output. Hidden size 128 in heads of `head_dim` (32: the fused
// CUDA attention's smallest; 64: the tensor-core kernels'), two query heads per kv head. With
// `lora`, LoRA adapters of that configuration (random, B too) on every run, the gradients theirs.
// With `recompute_layers` > 0 the model has one layer more than that, and the recomputation
// (got_recompute) takes only those first layers. `got_storage`: how the got run holds the model.
inline DeviceModelErrors compare_model(const kernels::Kernels& got_kernels, bool got_mixed,
                                       const kernels::Kernels& want_kernels, bool want_mixed,
                                       bool got_recompute = false, int head_dim = 32,
                                       TinyFamily family = TinyFamily::Qwen2, const model::LoraConfig& lora = {},
                                       std::int64_t recompute_layers = 0,
                                       model::WeightStorage got_storage = model::WeightStorage::Float32) {
  TinyShape shape;
  shape.vocab = 61;  // not a multiple of anything the kernels block by
  shape.hidden = 128;
  shape.intermediate = 96;
  shape.heads = shape.hidden / head_dim;
  shape.kv_heads = shape.heads / 2;
  if (recompute_layers > 0) shape.layers = recompute_layers + 1;
  // Qwen2's biases (gate/up keep the bias-free bf16 output), Qwen3's head norms or Gemma's parts.
  shape.family = family;
  const model::ModelConfig config = tiny_config(shape);
  model::ModelWeights weights(config, model::tp_dims(config, 0, 1));
  init_tiny_weights(weights, 5, 0.3f, config.norm_weight_offset);
  std::optional<model::ModelWeights> adapters;
  if (lora.enabled()) {
    adapters.emplace(model::ModelWeights::adapters(config, lora, model::tp_dims(config, 0, 1),
                                                   model::StageLayers::whole(config.num_layers)));
    randomize_matrices(*adapters, 9, 0.1f);
  }
  const model::ModelWeights* host_adapters = adapters ? &*adapters : nullptr;
  const device_model_check::Run want =
      device_model_check::run(want_kernels, config, weights, want_mixed, false, host_adapters);
  const device_model_check::Run got = device_model_check::run(got_kernels, config, weights, got_mixed, got_recompute,
                                                              host_adapters, recompute_layers, got_storage);

  DeviceModelErrors e;
  const auto add = [&](std::string name, const std::vector<float>& a, const std::vector<float>& b) {
    e.relative.emplace_back(std::move(name), a.size() == b.size() && !b.empty()
                                                 ? relative_error(a, b)
                                                 : std::numeric_limits<double>::infinity());
  };
  add("token log-probabilities", got.token_logprobs, want.token_logprobs);
  add("sequence sums", got.sequence_logprobs, want.sequence_logprobs);
  const auto& names = adapters ? adapters->sharded_state_dict() : weights.sharded_state_dict();
  for (std::size_t p = 0; p < names.size(); ++p) {
    add("gradient of " + names[p].name, got.gradients[p], want.gradients[p]);
  }
  for (std::size_t s = 0; s < want.logits.size(); ++s) {
    add("generation logits, step " + std::to_string(s), got.logits[s], want.logits[s]);
  }
  return e;
}

// The model on `device_kernels` against the CPU kernels, both in float32 or both mixed; with
// `recompute`, the device's backward recomputes the activations (the CPU's keeps them).
inline DeviceModelErrors compare_model_on_device(const kernels::Kernels& device_kernels, bool mixed = false,
                                                 bool recompute = false, int head_dim = 32,
                                                 TinyFamily family = TinyFamily::Qwen2,
                                                 const model::LoraConfig& lora = {}, std::int64_t recompute_layers = 0) {
  const kernels::CpuKernels cpu;
  return compare_model(device_kernels, mixed, cpu, mixed, recompute, head_dim, family, lora, recompute_layers);
}

}  // namespace spin::testing
