// Helpers shared by the benchmarks: a Llama config from sizes, a median, and the machine's
// sgemm rate with the current thread count.
#pragma once

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_options.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/flops.h"
#include "model/weights.h"
#include "parallel/communicator.h"
#include "parallel/job_errors.h"
#include "parallel/mpi_communicator.h"

namespace spin::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

struct ModelSize {
  int hidden = 512, layers = 8, heads = 8, kv_heads = 8, intermediate = 1024, vocab = 4096;
  int max_positions = 256;
  std::string family = "llama";  // model_type: llama, qwen2, qwen3, gemma, gemma2, olmo, olmo2, ..., gpt_neox
  int sliding_window = 0;        // keys; 0: config.json without the key (the family's default)
};

// The benches' --ep (spin's parallel.ep: model::TpDims).
inline constexpr const char* kExpertParallelHelp = "a mixture's expert-parallel size within the TP group";

inline void add_model_options(boost::program_options::options_description& desc, ModelSize& s) {
  namespace po = boost::program_options;
  desc.add_options()
      ("hidden", po::value(&s.hidden)->default_value(s.hidden), "hidden size")
      ("layers", po::value(&s.layers)->default_value(s.layers), "layers")
      ("heads", po::value(&s.heads)->default_value(s.heads), "attention heads")
      ("kv-heads", po::value(&s.kv_heads)->default_value(s.kv_heads), "key/value heads")
      ("intermediate", po::value(&s.intermediate)->default_value(s.intermediate), "MLP width")
      ("vocab", po::value(&s.vocab)->default_value(s.vocab), "vocabulary size")
      ("family", po::value(&s.family)->default_value(s.family),
       "model_type: llama, qwen2 (q/k/v biases), qwen3 (head norms), gemma (GeGLU, 1 + w norms, scaled embeddings), "
       "gemma2 (besides, output norms, capped scores and logits: Gemma2Config's defaults), olmo (LayerNorms without "
       "parameters), olmo2 (output norms alone, q and k normed across their heads), stablelm (LayerNorms with weight "
       "and bias, RoPE over a quarter of each head: StableLmConfig's defaults), cohere (LayerNorms with a weight, "
       "attention and MLP side by side, interleaved RoPE, logit_scale, tied) or gpt_neox (a plain MLP with the exact "
       "GELU, biases on every projection, a norm per parallel half: GPTNeoXConfig's defaults; kv-heads ignored) or "
       "mixtral (the MLP a mixture of 8 experts of `intermediate`, 2 a token: MixtralConfig's defaults) or qwen3_moe "
       "(Qwen3's head norms, 128 experts of `intermediate`, 8 a token: Qwen3MoeConfig's defaults) or qwen2_moe (q/k/v "
       "biases, 60 experts of `intermediate`, 4 a token, beside a shared expert of 4 x `intermediate`: "
       "Qwen1.5-MoE-A2.7B's proportions)")
      ("sliding-window", po::value(&s.sliding_window)->default_value(s.sliding_window),
       "config.json's sliding_window (keys; every layer's for llama, the even layers' for gemma2); 0: none given");
}

// main() of an MPI benchmark: any error stops every rank with one line.
inline int bench_main(int argc, char** argv, int (*run)(int, char**, parallel::Communicator&)) {
  parallel::MpiRuntime mpi(&argc, &argv);
  try {
    return run(argc, argv, mpi.world());
  } catch (const std::exception& e) {
    parallel::abort_job(e.what());
  }
}

inline model::ModelConfig make_config(const ModelSize& s) {
  return model::ModelConfig::from_json(
      cat("{\"model_type\": \"", s.family, "\", \"vocab_size\": ", s.vocab, ", \"hidden_size\": ", s.hidden,
          ", \"intermediate_size\": ", s.intermediate, ", \"num_hidden_layers\": ", s.layers,
          ", \"num_attention_heads\": ", s.heads, ", \"num_key_value_heads\": ", s.kv_heads,
          ", \"max_position_embeddings\": ", s.max_positions, ", \"rms_norm_eps\": 1e-5",
          s.sliding_window > 0 ? cat(", \"sliding_window\": ", s.sliding_window) : std::string(),
          s.family == "qwen3_moe" || s.family == "qwen2_moe" ? cat(", \"moe_intermediate_size\": ", s.intermediate)
                                                              : std::string(),
          s.family == "qwen2_moe" ? cat(", \"shared_expert_intermediate_size\": ", 4 * s.intermediate) : std::string(),
          "}"),
      "benchmark model");
}

// Model FLOPs per token of a forward + backward over sequences of `seq` tokens (model/flops.h:
// 6 N + 12 L d seq, attention counted as if not causal, the PaLM / Megatron convention).
inline double flop_per_token(const model::ModelConfig& c, int seq) {
  const std::int64_t one[] = {seq};
  return model::training_flops(c, one) / seq;
}

// sgemm GFLOP/s of this process on square matrices (the machine's practical peak).
inline double measure_sgemm_peak(const kernels::Kernels& k, int size = 1024) {
  const Shape square{size, size};
  const std::vector<float> half(static_cast<std::size_t>(size) * size, 0.5f);  // not zeros: a GPU
  const Tensor a = Tensor::zeros(square, DType::F32, k.device());               // is faster on those
  copy_bytes(a.raw(), a.device(), half.data(), Device::Cpu, a.nbytes());
  const Tensor b = a.clone(), c = a.clone();
  k.gemm(false, false, size, size, size, 1.0f, a.f32(), size, b.f32(), size, 0.0f, c.f32(), size);
  k.synchronize();
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    k.gemm(false, false, size, size, size, 1.0f, a.f32(), size, b.f32(), size, 0.0f, c.f32(), size);
    k.synchronize();
    best = std::max(best, 2.0 * size * size * static_cast<double>(size) / seconds_since(t0) / 1e9);
  }
  return best;
}

// Benchmark weights: normal(0, std) values from a 1 Mi-value host pattern repeated over the flat
// buffer (on any device), norms included. Timing needs realistic magnitudes, not
// init_random's layout-invariant draw, which takes tens of seconds for a 1B model on one core.
inline void fill_bench_weights(model::ModelWeights& w, float std) {
  std::vector<float> pattern(std::size_t{1} << 20);
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.0f, std);
  for (float& x : pattern) x = normal(gen);
  const Tensor& flat = w.flat();
  const auto total = static_cast<std::size_t>(flat.numel());
  for (std::size_t at = 0; at < total; at += pattern.size()) {
    const std::size_t n = std::min(pattern.size(), total - at);
    copy_bytes(flat.f32() + at, flat.device(), pattern.data(), Device::Cpu, n * sizeof(float));
  }
}

// GFLOP/s of bf16 x bf16 products with float32 accumulation (Kernels::linear_forward_bf16) on
// square matrices: the peak mixed-precision training is measured against (MFU).
inline double measure_bf16_peak(const kernels::Kernels& k, int size = 4096) {
  const Shape square{size, size};
  const std::vector<std::uint16_t> values(static_cast<std::size_t>(size) * size, 0x3f00);  // 0.5
  const Tensor a = Tensor::zeros(square, DType::BF16, k.device());
  copy_bytes(a.raw(), a.device(), values.data(), Device::Cpu, a.nbytes());
  const Tensor b = a.clone(), c = Tensor::zeros(square, DType::F32, k.device());
  k.linear_forward_bf16(c.f32(), a.bf16(), b.bf16(), size, size, size);
  k.synchronize();
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    k.linear_forward_bf16(c.f32(), a.bf16(), b.bf16(), size, size, size);
    k.synchronize();
    best = std::max(best, 2.0 * size * size * static_cast<double>(size) / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace spin::bench
