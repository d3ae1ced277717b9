// A tiny SPIN setup for tests: a random model, random pre-tokenized examples (prompts of 2..6
// tokens, responses of 1..5 ending in EOS = 2), and the trainer's parts on a given grid.
#pragma once

#include <memory>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "kernels/cpu/cpu_kernels.h"
#include "parallel/process_grid.h"
#include "train/spin_trainer.h"

namespace spin::testing {

inline std::vector<data::Example> spin_examples(int n, std::uint32_t seed = 50) {
  std::vector<data::Example> out;
  for (int i = 0; i < n; ++i) {
    data::Example e;
    e.prompt = random_ids(static_cast<std::size_t>(2 + i % 5), 37, seed + 2 * static_cast<std::uint32_t>(i));
    e.response = random_ids(static_cast<std::size_t>(1 + (i * 3) % 5), 37, seed + 2 * static_cast<std::uint32_t>(i) + 1);
    e.response.push_back(2);
    out.push_back(e);
  }
  return out;
}

// The small SPIN run of the single-rank tests: 2 iterations (lambda 0.5, 0.25) of global
// batch 4 in micro-batches of 2, rollouts of 3 prompts, up to 5 new tokens, EOS 2.
inline train::SpinConfig small_spin_config() {
  train::SpinConfig config;
  config.kl_penalty = {0.5, 0.25};
  config.iterations = 2;
  config.global_batch = 4;
  config.micro_batch = 2;
  config.rollout_batch = 3;
  config.generation.max_new_tokens = 5;
  config.generation.eos_ids = {2};
  return config;
}

// The short SPIN run of the layout tests: 2 iterations (lambda 0.5, 0.3) of global batch 4 in
// micro-batches of 1, rollouts of 2 prompts, up to 4 new tokens, EOS 2.
inline train::SpinConfig short_spin_config() {
  train::SpinConfig config;
  config.kl_penalty = {0.5, 0.3};
  config.iterations = 2;
  config.global_batch = 4;
  config.micro_batch = 1;
  config.rollout_batch = 2;
  config.generation.max_new_tokens = 4;
  config.generation.eos_ids = {2};
  return config;
}

struct SpinSetup {
  parallel::ProcessGrid grid;
  model::ModelConfig config;
  std::vector<model::StageLayers> stage;  // one range, or with `chunks` > 1 a model chunk each (interleaving)
  model::TpDims dims;
  kernels::CpuKernels cpu;
  const kernels::Kernels& k;  // cpu, or the kernels of another device
  model::ModelWeights policy, grads, reference;
  model::StageTransformers transformers;  // a chunk each
  model::Transformer& transformer;         // the first chunk's
  train::Optimizer optimizer;
  std::vector<data::Example> examples;
  train::SpinTrainer trainer;

  SpinSetup(parallel::Communicator& world, parallel::Layout layout, const train::SpinConfig& spin,
            int layers = 2, bool distributed = false, int examples_count = 16)
      : SpinSetup(world, layout, spin, shape_with_layers(layers), distributed, spin_examples(examples_count)) {}

  // With `device_kernels`, the model, its gradients, the reference and the optimizer state live on
  // their device -- the reference in host memory with spin.ref_offload, as spin train places it --,
  // the reference held as `reference_storage` says.
  SpinSetup(parallel::Communicator& world, parallel::Layout layout, const train::SpinConfig& spin,
            const TinyShape& shape, bool distributed, std::vector<data::Example> data,
            const kernels::Kernels* device_kernels = nullptr,
            train::OptimizerAlgorithm algorithm = train::OptimizerAlgorithm::AdamW,
            model::WeightStorage reference_storage = model::WeightStorage::Float32, int chunks = 1)
      : grid(world, layout),
        config(tiny_config(shape)),
        stage(model::stage_chunks(model::split_layers(config.num_layers, grid.pp_size() * chunks), grid.pp_rank(),
                                  grid.pp_size())),
        dims(model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size())),
        k(device_kernels ? *device_kernels : cpu),
        policy(config, dims, stage, distributed ? grid.dp_size() : 1, k.device()),
        grads(config, dims, stage, distributed ? grid.dp_size() : 1, k.device()),
        reference(config, dims, stage, distributed ? grid.dp_size() : 1, spin.ref_offload ? Device::Cpu : k.device(),
                  reference_storage),
        transformers(config, dims, stage, grid.tp(), k),
        transformer(transformers.front()),
        optimizer(optimizer_config(distributed, algorithm), grid, policy, grads, k),
        examples(std::move(data)),
        trainer((init(), grid), transformers.chunks(), policy, grads, reference, optimizer, examples, spin) {}

  static TinyShape shape_with_layers(int layers) {
    TinyShape s;
    s.layers = layers;
    return s;
  }
  static train::OptimizerConfig optimizer_config(
      bool distributed, train::OptimizerAlgorithm algorithm = train::OptimizerAlgorithm::AdamW) {
    train::OptimizerConfig c;
    c.algorithm = algorithm;
    c.eps = 1e-4f;  // see tests/mpi/train/layout_invariance_test.cpp
    c.weight_decay = 0.01f;
    c.distributed = distributed;
    return c;
  }
  void init() {
    init_tiny_weights(policy, 17, 0.3f);
    reference.copy_from(policy);
  }
  model::ModelWeights& trained() { return policy; }
};

// SpinSetup's run with LoRA adapters (lora.rank): one model, the frozen reference, which is also
// the policy's base; the adapters (fresh) are trained.
struct LoraSpinSetup {
  parallel::ProcessGrid grid;
  model::ModelConfig config;
  model::StageLayers stage;
  model::TpDims dims;
  kernels::CpuKernels cpu;
  const kernels::Kernels& k;
  model::ModelWeights reference, adapters, grads;
  model::Transformer transformer;
  train::Optimizer optimizer;
  std::vector<data::Example> examples;
  train::SpinTrainer trainer;

  LoraSpinSetup(parallel::Communicator& world, parallel::Layout layout, const train::SpinConfig& spin,
                const TinyShape& shape, bool distributed, std::vector<data::Example> data,
                const model::LoraConfig& lora, model::WeightStorage reference_storage = model::WeightStorage::Float32)
      : grid(world, layout),
        config(tiny_config(shape)),
        stage(model::stage_layers(model::split_layers(config.num_layers, grid.pp_size()), grid.pp_rank())),
        dims(model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size())),
        k(cpu),
        reference(config, dims, stage, distributed ? grid.dp_size() : 1, Device::Cpu, reference_storage),
        adapters(model::ModelWeights::adapters(config, lora, dims, stage, distributed ? grid.dp_size() : 1)),
        grads(model::ModelWeights::adapters(config, lora, dims, stage, distributed ? grid.dp_size() : 1)),
        transformer(config, dims, stage, grid.tp(), k),
        optimizer(SpinSetup::optimizer_config(distributed), grid, adapters, grads, k),
        examples(std::move(data)),
        trainer((init(), grid), transformer, reference, grads, reference, optimizer, examples, spin, &adapters) {}

  void init() {
    init_tiny_weights(reference, 17, 0.3f);
    adapters.init_random(5, 0.0f);
  }
  model::ModelWeights& trained() { return adapters; }
};

}  // namespace spin::testing
