// Generation throughput: prefill and decode tokens/s at several batch sizes, against the floor
// of a decode step: the longer of reading this rank's weights and KV cache once (at the read
// bandwidth each rank measures while all ranks read) and its matmul FLOPs at the measured sgemm
// rate (a roofline: small batches are memory-bound, large ones compute-bound).
// Then continuous batching against fixed batches: --refill-prompts prompts whose responses
// end at an EOS drawn from --eos-fraction of the vocabulary (lengths of every size up to
// --new-tokens), generated --refill-slots at a time either in fixed batches (a batch runs until
// its longest response ends) or with each finished sequence's slot refilled at once; then the
// continuous batch again with prompts prefilled in chunks under --step-tokens tokens per model
// call (the activation buffers' size against the time).
//   OPENBLAS_NUM_THREADS=2 generate_bench                       # TP 1
//   OPENBLAS_NUM_THREADS=1 mpirun -np 2 generate_bench --tp 2   # TP 2
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

#include "bench/bench_util.h"
#include "bench/timed_kernels.h"
#include "core/philox.h"
#include "generate/generator.h"
#include "app/runtime.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace {

using namespace spin;
using namespace spin::bench;
namespace po = boost::program_options;

struct Options {
  ModelSize size;
  int prompt = 128, new_tokens = 64, tp = 1, ep = 1;
  int refill_prompts = 64, refill_slots = 8;
  double eos_fraction = 1.0 / 32;
  std::string batches = "1,8,32", step_tokens = "256,64";
  bool profile = false;
  generate::SamplingParams sampling;  // --temperature, --top-k, --top-p, --min-p
  app::RuntimeOptions runtime;  // --device, --precision, --attention-backend
};

// Bytes per second of a large memcpy (read + write counted) and of a large read (a sum), the
// best of a few: a decode step streams weights and KV cache, so the read rate is its floor.
struct Bandwidth {
  double copy = 0.0;
  double read = 0.0;
};

Bandwidth measure_bandwidth() {
  const std::size_t n = std::size_t{256} << 20;
  std::vector<float> a(n / sizeof(float), 1.0f), b(n / sizeof(float), 2.0f);
  Bandwidth bw;
  float sink = 0.0f;
  for (int rep = 0; rep < 4; ++rep) {
    auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), n);
    bw.copy = std::max(bw.copy, 2.0 * static_cast<double>(n) / seconds_since(t0));
    t0 = Clock::now();
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::size_t i = 0; i < a.size(); ++i) sum += a[i];
    bw.read = std::max(bw.read, static_cast<double>(n) / seconds_since(t0));
    sink += sum + b[static_cast<std::size_t>(rep)];
  }
  if (sink == 42.0f) std::printf(" ");  // keeps the loops from being optimised away
  return bw;
}

// On a GPU: device-to-device copies of 256 MiB (far beyond L2), read + write counted; a decode
// step's floor is its bytes over this rate (HBM serves reads and writes from one budget).
Bandwidth measure_device_bandwidth(const kernels::Kernels& k) {
  const std::int64_t n = std::int64_t{64} << 20;  // floats
  const Tensor a = Tensor::zeros({n}, DType::F32, k.device()), b = a.clone();
  Bandwidth bw;
  for (int rep = 0; rep < 5; ++rep) {
    k.synchronize();
    const auto t0 = Clock::now();
    b.copy_from(a);
    k.synchronize();
    bw.copy = std::max(bw.copy, 2.0 * static_cast<double>(a.nbytes()) / seconds_since(t0));
  }
  bw.read = bw.copy;
  return bw;
}

// "1,8,32" -> {1, 8, 32}; "" -> {}.
std::vector<std::int64_t> parse_list(const std::string& text) {
  std::vector<std::int64_t> out;
  std::stringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) out.push_back(std::stoll(item));
  return out;
}

// --prompt random token ids, keyed by `key`.
std::vector<std::int32_t> random_prompt(const Options& o, int key) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(o.prompt));
  for (int t = 0; t < o.prompt; ++t) {
    p[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(
        philox_bits(9, static_cast<std::uint64_t>(key), static_cast<std::uint64_t>(t))[0] %
        static_cast<std::uint32_t>(o.size.vocab));
  }
  return p;
}

// Time, tokens/s and model calls of --refill-prompts prompts, --refill-slots at a time, in
// fixed batches and with continuous batching (the same responses either way).
void compare_refill(const Options& o, parallel::Communicator& world, generate::Generator& generator) {
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::uint64_t> ids;
  for (int b = 0; b < o.refill_prompts; ++b) {
    prompts.push_back(random_prompt(o, 1000 + b));
    ids.push_back(static_cast<std::uint64_t>(b));
  }
  generate::GenerationParams params;
  params.sampling = o.sampling;
  params.max_new_tokens = o.new_tokens;
  const auto eos_count = std::max(1, static_cast<int>(o.eos_fraction * o.size.vocab));
  for (int e = 0; e < eos_count; ++e) params.eos_ids.push_back(e * (o.size.vocab / eos_count));
  struct Run {
    double seconds = 0.0;
    std::int64_t steps = 0, tokens = 0;
    std::size_t buffers = 0;  // the activation buffers of the largest model call
    std::size_t cache = 0;    // the KV cache (a ring in windowed layers: model/kv_cache.h)
  };
  const auto time_run = [&](bool continuous, std::int64_t step_tokens = 0) {
    Run r;
    world.barrier();
    const auto t0 = Clock::now();
    const auto slots = static_cast<std::size_t>(o.refill_slots);
    for (std::size_t b = 0; b < prompts.size(); b += continuous ? prompts.size() : slots) {
      const std::size_t e = continuous ? prompts.size() : std::min(prompts.size(), b + slots);
      const std::vector<std::vector<std::int32_t>> part(prompts.begin() + static_cast<std::ptrdiff_t>(b),
                                                        prompts.begin() + static_cast<std::ptrdiff_t>(e));
      const std::vector<std::uint64_t> part_ids(ids.begin() + static_cast<std::ptrdiff_t>(b),
                                                 ids.begin() + static_cast<std::ptrdiff_t>(e));
      for (const auto& g : generator.generate(part, part_ids, params, {o.refill_slots, step_tokens, {}})) {
        r.tokens += static_cast<std::int64_t>(g.tokens.size());
      }
      r.steps += static_cast<std::int64_t>(generator.stats().rows_per_step.size());
      r.buffers = std::max(r.buffers, generator.stats().buffer_bytes);
      r.cache = std::max(r.cache, generator.stats().kv_cache_bytes);
    }
    r.seconds = seconds_since(t0);
    world.all_reduce(&r.seconds, 1, parallel::ReduceOp::Max);
    return r;
  };
  time_run(true);  // warm-up
  std::vector<std::pair<std::string, Run>> runs = {{"fixed batches", time_run(false)},
                                                   {"continuous", time_run(true)}};
  for (const std::int64_t budget : parse_list(o.step_tokens)) {
    runs.emplace_back(spin::cat("  chunked ", budget), time_run(true, budget));
  }
  if (world.rank() == 0) {
    std::printf("continuous batching: %d prompts of %d tokens, %d in flight, responses of 1..%d tokens "
                "(mean %.1f; EOS = %d ids); chunked N: prefill under N tokens per model call\n",
                o.refill_prompts, o.prompt, o.refill_slots, o.new_tokens,
                static_cast<double>(runs[1].second.tokens) / o.refill_prompts, eos_count);
    for (const auto& [name, r] : runs) {
      std::printf(
          "  %-14s %7.2f s %8.0f tok/s %6lld model calls %6.1f sequences per call %8.1f MB buffers %8.1f MB KV "
          "cache\n",
          name.c_str(), r.seconds, static_cast<double>(r.tokens) / r.seconds, static_cast<long long>(r.steps),
          static_cast<double>(r.tokens) / static_cast<double>(r.steps), static_cast<double>(r.buffers) / 1e6,
          static_cast<double>(r.cache) / 1e6);
    }
  }
}

int run(int argc, char** argv, parallel::Communicator& world) {
  Options o;
  po::options_description desc("generate_bench options");
  desc.add_options()("help", "print this help");
  add_model_options(desc, o.size);
  desc.add_options()
      ("prompt", po::value(&o.prompt)->default_value(o.prompt), "prompt tokens")
      ("new-tokens", po::value(&o.new_tokens)->default_value(o.new_tokens), "tokens generated per prompt")
      ("batches", po::value(&o.batches)->default_value(o.batches), "comma-separated batch sizes")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("refill-prompts", po::value(&o.refill_prompts)->default_value(o.refill_prompts),
       "prompts of the continuous-batching comparison (0: skip it)")
      ("refill-slots", po::value(&o.refill_slots)->default_value(o.refill_slots),
       "sequences in flight in the continuous-batching comparison")
      ("eos-fraction", po::value(&o.eos_fraction)->default_value(o.eos_fraction),
       "share of the vocabulary that ends a response in that comparison")
      ("step-tokens", po::value(&o.step_tokens)->default_value(o.step_tokens),
       "comma-separated tokens per model call for the chunked-prefill runs of that comparison (empty: none)")
      ("temperature", po::value(&o.sampling.temperature)->default_value(o.sampling.temperature),
       "sampling temperature")
      ("top-k", po::value(&o.sampling.top_k)->default_value(o.sampling.top_k), "top-k sampling (0: off)")
      ("top-p", po::value(&o.sampling.top_p)->default_value(o.sampling.top_p), "nucleus sampling (1: off)")
      ("min-p", po::value(&o.sampling.min_p)->default_value(o.sampling.min_p), "min-p sampling (0: off)")
      ("profile", po::bool_switch(&o.profile), "print time per kernel over all runs (rank 0)");
  o.runtime.add_to(desc);
  if (!parse_or_help(desc, argc, argv, world.rank() == 0)) return 0;

  const app::Runtime runtime(o.runtime, world);
  const parallel::ProcessGrid grid(runtime.world(), {o.tp, 1, 0, o.ep});
  o.size.max_positions = o.prompt + o.new_tokens;
  const model::ModelConfig config = make_config(o.size);
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size());
  model::ModelWeights weights(config, dims, model::StageLayers::whole(config.num_layers), 1,
                              runtime.device());
  fill_bench_weights(weights, 0.02f);
  runtime.prepare(weights);
  const kernels::Kernels& base = runtime.kernels();
  TimedKernels timed(base);
  const kernels::Kernels& k = o.profile ? static_cast<const kernels::Kernels&>(timed) : base;
  const model::Transformer transformer(config, dims, grid.tp(), k);
  generate::Generator generator(grid, transformer, weights);
  // Ranks share the memory bus: measure it with all of them reading at once.
  world.barrier();
  const Bandwidth bw = runtime.device() == Device::Cpu ? measure_bandwidth() : measure_device_bandwidth(base);
  double bandwidth = bw.read;  // per rank, while the others read too
  world.all_reduce(&bandwidth, 1, parallel::ReduceOp::Min);
  // What a decode step reads: the weights the products use (the bf16 copy in mixed precision;
  // the embedding rows and norms are negligible) and the KV cache, bf16 in mixed precision.
  const bool mixed = weights.has_bf16();
  const double weight_bytes =
      static_cast<double>(mixed ? weights.flat_bf16().nbytes() : weights.flat().nbytes());
  const double kv_element = mixed ? 2.0 : 4.0;
  const int peak_size = runtime.device() == Device::Cpu ? 1024 : 4096;
  const double peak = (mixed ? measure_bf16_peak(base, peak_size) : measure_sgemm_peak(base, peak_size)) * 1e9;
  // Matmul FLOPs per decoded token on this rank: 2 x its share of the projections and LM head.
  const double h = static_cast<double>(config.hidden_size);
  const double rank_matmul =
      static_cast<double>(config.num_layers) *
          (h * static_cast<double>(dims.q_width() * 2 + dims.kv_width() * 2) +
           3.0 * h * static_cast<double>(dims.intermediate)) +
      static_cast<double>(dims.vocab_rows) * h;
  if (world.rank() == 0) {
    std::printf("model: %.1f M parameters (%.1f MB of %s weights per rank); prompt %d tokens, %d new tokens, "
                "layout tp %d; per rank: read %.1f GB/s, memcpy %.1f GB/s (read + write), "
                "%s matrix products %.0f GFLOP/s\n",
                static_cast<double>(config.num_parameters()) / 1e6, weight_bytes / 1e6, mixed ? "bf16" : "float32",
                o.prompt, o.new_tokens, grid.tp_size(), bandwidth / 1e9, bw.copy / 1e9,
                mixed ? "bf16" : "float32", peak / 1e9);
    std::printf("%6s %14s %14s %18s %9s %10s\n", "batch", "prefill tok/s", "decode tok/s",
                "floor tok/s (bound)", "of floor", "sampling");
  }

  for (const std::int64_t batch_size : parse_list(o.batches)) {
    const auto batch = static_cast<int>(batch_size);
    std::vector<std::vector<std::int32_t>> prompts;
    std::vector<std::uint64_t> ids;
    for (int b = 0; b < batch; ++b) {
      prompts.push_back(random_prompt(o, b));
      ids.push_back(static_cast<std::uint64_t>(b));
    }
    const auto time_generation = [&](int new_tokens) {
      generate::GenerationParams params;
      params.sampling = o.sampling;
      params.max_new_tokens = new_tokens;  // no EOS: every sequence runs to the end
      generator.generate(prompts, ids, params);  // warm-up (allocations)
      world.barrier();
      const auto t0 = Clock::now();
      generator.generate(prompts, ids, params);
      double s = seconds_since(t0);
      world.all_reduce(&s, 1, parallel::ReduceOp::Max);
      return s;
    };
    const double prefill_s = time_generation(1);  // the prompt pass and one sampled token
    const double full_s = time_generation(o.new_tokens);
    const auto& st = generator.stats();
    const double sampling_share = st.sampling_seconds / (st.sampling_seconds + st.model_seconds);
    const double decode_s = full_s - prefill_s;
    const double decode_tokens = static_cast<double>(batch) * (o.new_tokens - 1);
    // Floor: per decode step, this rank's weights plus the batch's KV cache at the mean length.
    const double mean_len = o.prompt + o.new_tokens / 2.0;
    const double kv_bytes =
        2.0 * batch * mean_len * static_cast<double>(config.num_layers * dims.kv_width()) * kv_element;
    const double memory_s = (weight_bytes + kv_bytes) / bandwidth;
    const double compute_s = 2.0 * rank_matmul * batch / peak;
    const double floor_rate = batch / std::max(memory_s, compute_s);
    if (world.rank() == 0) {
      std::printf("%6d %14.0f %14.0f %12.0f (%s) %8.0f%% %9.0f%%\n", batch,
                  static_cast<double>(batch) * o.prompt / prefill_s, decode_tokens / decode_s,
                  floor_rate, memory_s > compute_s ? "mem" : "cpu",
                  100.0 * (decode_tokens / decode_s) / floor_rate, 100.0 * sampling_share);
    }
  }
  if (o.refill_prompts > 0) compare_refill(o, world, generator);
  runtime.report_memory("after the runs");  // GPUs: the caching allocator's peak
  if (o.profile && world.rank() == 0) {
    double total = 0;
    for (const auto& [name, sec] : timed.seconds()) total += sec;
    std::printf("kernel time over all runs (rank 0):\n");
    for (const auto& [name, sec] : timed.seconds()) {
      std::printf("  %-20s %8.1f ms  %5.1f%%\n", name.c_str(), sec * 1e3, 100.0 * sec / total);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return spin::bench::bench_main(argc, argv, run); }
