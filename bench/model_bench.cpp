// Forward + backward throughput of a Llama-style model on the CPU path, at any TP size:
//   OPENBLAS_NUM_THREADS=2 model_bench                       # TP = 1, one rank, two threads
//   OPENBLAS_NUM_THREADS=1 mpirun -np 2 model_bench --tp 2   # TP = 2, two ranks
// Prints tokens/s, model FLOP/s, the fraction of this machine's measured sgemm peak, memory,
// and (--profile) where the time goes. Model FLOPs per token: 6 N_matmul + 12 L H T, the usual
// (PaLM / Megatron) count with attention counted as if not causal.
#include <sys/resource.h>

#include <boost/program_options.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench/bench_util.h"
#include "bench/timed_kernels.h"
#include "core/philox.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace {

using namespace spin;
using namespace spin::bench;
namespace po = boost::program_options;

struct Options {
  ModelSize size;
  int seq = 256, batch = 4, steps = 9, warmup = 1, tp = 1, ep = 1;
  bool profile = false;
};

// Every buffer the activations hold -- each layer's (a mixture of experts' grouped rows and
// routing too), the head's and the backward's scratch: Activations::bytes(), what spin plan counts.
double activation_bytes(const model::Activations& a) { return static_cast<double>(a.bytes()); }

int run(int argc, char** argv, parallel::Communicator& world) {
  Options o;
  po::options_description desc("model_bench options");
  desc.add_options()("help", "print this help");
  add_model_options(desc, o.size);
  desc.add_options()
      ("seq", po::value(&o.seq)->default_value(o.seq), "tokens per sequence")
      ("batch", po::value(&o.batch)->default_value(o.batch), "sequences per step")
      ("steps", po::value(&o.steps)->default_value(o.steps), "timed steps")
      ("warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed steps first")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("profile", po::bool_switch(&o.profile), "print time per kernel (rank 0)");
  if (!parse_or_help(desc, argc, argv, world.rank() == 0)) return 0;
  const bool root = world.rank() == 0;

  parallel::ProcessGrid grid(world, {o.tp, 1, 0, o.ep});
  o.size.max_positions = o.seq;
  const model::ModelConfig config = make_config(o.size);
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size());
  const kernels::CpuKernels cpu;
  bench::TimedKernels timed(cpu);
  const kernels::Kernels& k = o.profile ? static_cast<const kernels::Kernels&>(timed) : cpu;
  model::ModelWeights weights(config, dims);
  weights.init_random(1, 0.02f);
  model::ModelWeights grads(config, dims);
  const model::Transformer transformer(config, dims, grid.tp(), k);

  std::vector<model::Sequence> seqs;
  for (int s = 0; s < o.batch; ++s) {
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(o.seq));
    for (int t = 0; t < o.seq; ++t) {
      tokens[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(
          philox_bits(7, static_cast<std::uint64_t>(s), static_cast<std::uint64_t>(t))[0] %
          static_cast<std::uint32_t>(o.size.vocab));
    }
    seqs.push_back({tokens, 1});
  }
  const model::TokenBatch batch = model::TokenBatch::pack(seqs);
  const std::vector<float> dseq(static_cast<std::size_t>(o.batch), -1.0f / static_cast<float>(o.batch));

  const double peak = measure_sgemm_peak(cpu);
  model::Activations acts;
  std::vector<double> fwd_times, bwd_times;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    if (step == o.warmup) timed.reset();
    grads.zero();
    world.barrier();
    const auto t0 = Clock::now();
    transformer.forward(weights, batch, acts, true);
    const auto t1 = Clock::now();
    transformer.backward(weights, acts, dseq, grads);
    world.barrier();
    if (step < o.warmup) continue;
    fwd_times.push_back(std::chrono::duration<double>(t1 - t0).count());
    bwd_times.push_back(seconds_since(t1));
  }
  // Medians: robust to the odd slow step on a shared machine.
  const double fwd_s = median(fwd_times), bwd_s = median(bwd_times);
  const double step_s = fwd_s + bwd_s;
  const double tokens = static_cast<double>(o.batch) * o.seq;
  const double gflops = flop_per_token(config, o.seq) * tokens / step_s / 1e9;  // all ranks
  // A mixture's grouped rows each rank ran in each layer of the last forward: under expert parallelism the
  // routing decides each rank's share, and at every layer the TP group waits for its busiest rank -- the
  // mean over the layers of the busiest rank's rows over the group's mean.
  std::vector<double> busiest, total;
  for (const model::LayerActivations& l : acts.layers) busiest.push_back(static_cast<double>(l.moe.routing.rows));
  total = busiest;
  grid.tp().all_reduce(busiest.data(), busiest.size(), parallel::ReduceOp::Max);
  grid.tp().all_reduce(total.data(), total.size());
  double excess = 0.0;
  for (std::size_t l = 0; l < busiest.size(); ++l) {
    excess += total[l] > 0 ? busiest[l] / (total[l] / grid.tp_size()) - 1.0 : 0.0;
  }
  excess /= std::max<std::size_t>(busiest.size(), 1);
  struct rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  if (root) {
    std::printf("model: hidden %d, layers %d, heads %d/%d kv, mlp %d, vocab %d: %.1f M parameters\n",
                o.size.hidden, o.size.layers, o.size.heads, o.size.kv_heads, o.size.intermediate,
                o.size.vocab,
                static_cast<double>(config.num_parameters()) / 1e6);
    std::printf("batch: %d sequences x %d tokens; layout: tp %d on %d rank(s)\n", o.batch, o.seq,
                grid.tp_size(), world.size());
    std::printf("step (forward + backward), median of %d: %.1f ms  (forward %.1f, backward %.1f)\n",
                o.steps, step_s * 1e3, fwd_s * 1e3, bwd_s * 1e3);
    std::printf("throughput: %.0f tokens/s\n", tokens / step_s);
    std::printf("model FLOP/s: %.1f GFLOP/s in all; %.1f GFLOP/s per rank\n", gflops,
                gflops / world.size());
    std::printf("sgemm peak per rank (1024^3, this thread count): %.1f GFLOP/s -> %.0f%% of peak\n",
                peak, 100.0 * gflops / world.size() / peak);
    std::printf("memory per rank: weights %.1f MB, gradients %.1f MB, activations %.1f MB, "
                "peak RSS %.1f MB\n",
                static_cast<double>(weights.flat().nbytes()) / 1e6,
                static_cast<double>(grads.flat().nbytes()) / 1e6, activation_bytes(acts) / 1e6,
                static_cast<double>(usage.ru_maxrss) / 1e3);
    if (config.moe()) {
      std::printf("experts' grouped rows: the busiest rank of a layer %.1f%% over the mean, on average over the "
                  "layers (%d experts a rank, each split over %d)\n",
                  100.0 * excess, static_cast<int>(dims.experts), dims.expert_tp);
    }
    if (o.profile) {
      std::printf("time per step by kernel (rank 0):\n");
      for (const auto& [name, s] : timed.seconds()) {
        std::printf("  %-20s %8.1f ms  %5.1f%%\n", name.c_str(), s / o.steps * 1e3,
                    100.0 * s / o.steps / step_s);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return spin::bench::bench_main(argc, argv, run); }
