// Training-step throughput under pipeline and data parallelism, and optimizer memory:
//   OPENBLAS_NUM_THREADS=1 mpirun -np 4 train_bench --pp 4 [--vpp V] [--tp T] [--distributed-optimizer]
//   mpirun -np 1 train_bench --device cuda --hidden 2048 --layers 22 ...   (one GPU per rank)
// Prints the step time and tokens/s at a fixed global batch, the model FLOP rate (6 N per token
// plus attention) against the measured float32 matrix-product peak of the device, the measured
// pipeline bubble (CPU: the share of the 1F1B schedule a stage spends waiting, communication
// included) against the 1F1B model (p - 1) / (m + p - 1) -- with --vpp V chunks a stage, the
// interleaved schedule against (p - 1) / (V m + p - 1) --, and the optimizer state per rank.
// --lora-rank R trains LoRA adapters of rank R on every projection of the frozen model instead,
// their inputs masked with --lora-dropout P (the model FLOP rate then still counts 6 N a token:
// the rate of useful work is lower), the frozen model held as --frozen-dtype says (bf16: in bf16
// alone with --precision bf16). --min-seq L draws each sequence's length in [L, seq] (keyed by the
// sample) instead of seq for all, and --micro-batch-tokens T cuts each rank's micro-batches by tokens
// (data::cut_micro_batches, spin.micro_batch_tokens): fixed micro-batches against cuts by tokens.
#include <boost/program_options.hpp>
#include <cstdio>
#include <optional>
#include <vector>

#include "bench/bench_util.h"
#include "core/philox.h"
#include "data/batch_plan.h"
#include "app/runtime.h"
#include "model/flops.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"
#include "train/pipeline_trainer.h"

namespace {

using namespace spin;
using namespace spin::bench;
namespace po = boost::program_options;

struct Options {
  ModelSize size;
  int seq = 128, min_seq = 0, global_batch = 16, micro_batch = 2, steps = 5, warmup = 1;
  int tp = 1, pp = 1, ep = 1, vpp = 1;
  std::int64_t logits_chunk_rows = 0, lora_rank = 0, micro_batch_tokens = 0;
  double lora_dropout = 0.0;
  std::string frozen_dtype = "fp32", pp_layers;
  bool distributed = false, overlap = false, recompute = false, sequence_parallel = false;
  app::RuntimeOptions runtime;  // --device, --precision, --attention-backend
};

int run(int argc, char** argv, parallel::Communicator& world) {
  Options o;
  po::options_description desc("train_bench options");
  desc.add_options()("help", "print this help");
  add_model_options(desc, o.size);
  desc.add_options()
      ("seq", po::value(&o.seq)->default_value(o.seq), "tokens per sequence (the most, with --min-seq)")
      ("min-seq", po::value(&o.min_seq)->default_value(o.min_seq),
       "each sequence's length drawn in [min-seq, seq] (0: seq for every sequence)")
      ("micro-batch-tokens", po::value(&o.micro_batch_tokens)->default_value(o.micro_batch_tokens),
       "micro-batches of at most this many tokens too, a longer sequence alone (0: --micro-batch sequences)")
      ("global-batch", po::value(&o.global_batch)->default_value(o.global_batch), "sequences per step")
      ("micro-batch", po::value(&o.micro_batch)->default_value(o.micro_batch), "sequences per micro-batch")
      ("steps", po::value(&o.steps)->default_value(o.steps), "timed steps")
      ("warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed steps first")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("pp", po::value(&o.pp)->default_value(o.pp), "pipeline-parallel size")
      ("vpp", po::value(&o.vpp)->default_value(o.vpp), "model chunks a stage: interleaved 1F1B (1: 1F1B)")
      ("pp-layers", po::value(&o.pp_layers)->default_value(""),
       "balanced: layers per (virtual) stage by FLOPs, the LM head's counted (default: even)")
      ("distributed-optimizer", po::bool_switch(&o.distributed), "ZeRO-1 optimizer")
      ("overlap-grad-reduce", po::bool_switch(&o.overlap), "each layer's DP all-reduce as soon as it is final")
      ("recompute-activations", po::bool_switch(&o.recompute), "keep each layer's input only, recompute in the backward")
      ("sequence-parallel", po::bool_switch(&o.sequence_parallel), "split the residual stream's rows over the TP ranks")
      ("logits-chunk-rows", po::value(&o.logits_chunk_rows)->default_value(o.logits_chunk_rows),
       "the LM head's logits this many rows at a time, again in the backward (0: all)")
      ("lora-rank", po::value(&o.lora_rank)->default_value(o.lora_rank),
       "train LoRA adapters of this rank on every projection, the model frozen (0: full training)")
      ("lora-dropout", po::value(&o.lora_dropout)->default_value(o.lora_dropout),
       "the adapters' input dropout (lora.dropout)")
      ("frozen-dtype", po::value(&o.frozen_dtype)->default_value(o.frozen_dtype),
       "with --lora-rank: the frozen model in bf16 alone (bf16, with --precision bf16) or as float32 values (fp32)");
  o.runtime.add_to(desc);
  if (!parse_or_help(desc, argc, argv, world.rank() == 0)) return 0;

  const app::Runtime runtime(o.runtime, world);
  const kernels::Kernels& k = runtime.kernels();
  const parallel::ProcessGrid grid(runtime.world(), {o.tp, o.pp, 0, o.ep});
  o.size.max_positions = o.seq;
  const model::ModelConfig config = make_config(o.size);
  // The stage's model chunks (one without --vpp).
  require(o.pp_layers.empty() || o.pp_layers == "balanced", "train_bench: --pp-layers is empty or balanced, not ",
          o.pp_layers);
  const std::vector<std::int64_t> counts =
      o.pp_layers == "balanced" ? model::balanced_layers(config, grid.pp_size() * o.vpp, o.seq)
                                : model::split_layers(config.num_layers, grid.pp_size() * o.vpp);
  const std::vector<model::StageLayers> stage = model::stage_chunks(counts, grid.pp_rank(), grid.pp_size());
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size());
  const std::int64_t pad = o.distributed ? grid.dp_size() : 1;
  const bool mixed = runtime.precision() == app::MatmulPrecision::Bf16;
  const model::WeightStorage storage =
      o.lora_rank > 0 ? app::frozen_storage(o.frozen_dtype, mixed, true) : model::WeightStorage::Float32;
  model::ModelWeights weights(config, dims, stage, pad, runtime.device(), storage);
  model::LoraConfig lora;
  lora.rank = o.lora_rank;
  lora.dropout = o.lora_dropout;
  lora.targets.fill(true);
  lora.targets = model::lora_targets_of_model(config, lora.targets, "all-linear", "--lora-targets");  // the model's
  lora.validate("--lora-");
  std::optional<model::ModelWeights> adapters;
  if (lora.enabled()) adapters.emplace(model::ModelWeights::adapters(config, lora, dims, stage, pad, runtime.device()));
  model::ModelWeights grads = adapters ? model::ModelWeights::adapters(config, lora, dims, stage, pad, runtime.device())
                                       : model::ModelWeights(config, dims, stage, pad, runtime.device());
  if (weights.frozen()) {  // filled on the host, held rounded
    model::ModelWeights host(config, dims, stage, pad, Device::Cpu);
    fill_bench_weights(host, 0.02f);
    weights.copy_from(host);
  } else {
    fill_bench_weights(weights, 0.02f);
  }
  runtime.prepare(weights);
  if (adapters) {
    adapters->init_random(1, 0.0f);
    runtime.prepare(*adapters);
  }
  model::ModelWeights& trained = adapters ? *adapters : weights;
  model::StageTransformers transformers(config, dims, stage, grid.tp(), k);
  transformers.set_recompute_activations(o.recompute);
  transformers.set_sequence_parallel(o.sequence_parallel);
  transformers.set_logits_chunk_rows(o.logits_chunk_rows);
  const model::TransformerChunks& chunks = transformers.chunks();
  train::OptimizerConfig oc;
  oc.distributed = o.distributed;
  oc.overlap_grad_reduce = o.overlap;
  train::Optimizer optimizer(oc, grid, trained, grads, k);
  train::PipelineTrainer trainer(grid, chunks, weights, grads, optimizer, adapters ? &*adapters : nullptr);

  const data::BatchPlan plan(o.global_batch, o.global_batch, o.micro_batch, grid.dp_size(), 1);
  // Sample id's length: seq, or drawn in [min_seq, seq] keyed by the sample.
  const auto length_of = [&](std::int64_t id) -> int {
    if (o.min_seq <= 0 || o.min_seq >= o.seq) return o.seq;
    return o.min_seq + static_cast<int>(philox_bits(4, static_cast<std::uint64_t>(id), 0)[0] %
                                        static_cast<std::uint32_t>(o.seq - o.min_seq + 1));
  };
  double all_tokens = 0.0;  // the global batch's
  std::vector<std::int64_t> all_lengths;
  for (std::int64_t id = 0; id < o.global_batch; ++id) {
    all_lengths.push_back(length_of(id));
    all_tokens += static_cast<double>(all_lengths.back());
  }
  std::vector<std::int64_t> share, lengths;  // this rank's sequences
  for (const auto& ids : plan.micro_batches(0, 0, grid.dp_rank())) {
    for (std::int64_t id : ids) {
      share.push_back(id);
      lengths.push_back(length_of(id));
    }
  }
  std::vector<model::TokenBatch> micro_batches;
  for (const auto& ids : data::cut_micro_batches(share, lengths, o.micro_batch, o.micro_batch_tokens,
                                                 o.vpp > 1 ? grid.pp_size() : 1)) {
    std::vector<model::Sequence> seqs;
    for (std::int64_t id : ids) {
      const int len = length_of(id);
      std::vector<std::int32_t> tokens(static_cast<std::size_t>(len));
      for (int t = 0; t < len; ++t) {
        tokens[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(
            philox_bits(3, static_cast<std::uint64_t>(id), static_cast<std::uint64_t>(t))[0] %
            static_cast<std::uint32_t>(o.size.vocab));
      }
      seqs.push_back({tokens, 1, 0, id});  // keyed: LoRA's dropout masks
    }
    micro_batches.push_back(model::TokenBatch::pack(seqs));
    micro_batches.back().dropout_seed = 1;
  }
  train::SftLoss loss(static_cast<std::int64_t>(all_tokens) - o.global_batch);

  std::vector<double> step_s, bubble;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    k.synchronize();
    world.barrier();
    const auto t0 = Clock::now();
    const train::StepMetrics m = trainer.step(micro_batches, loss, 1e-5);
    k.synchronize();  // a GPU's step ends when its last kernel does
    const double seconds = seconds_since(t0);
    if (step < o.warmup) continue;
    step_s.push_back(seconds);
    bubble.push_back(1.0 - m.compute_seconds / m.pipeline_seconds);
  }
  const int peak_size = runtime.device() == Device::Cpu ? 1024 : 4096;  // a GPU needs large ones
  const double peak = mixed ? measure_bf16_peak(k, peak_size) : measure_sgemm_peak(k, peak_size);
  // Per stage: the median bubble of this rank; then the mean over stages (rank 0 gathers).
  double my_bubble = median(bubble), sum_bubble = my_bubble;
  world.all_reduce(&sum_bubble, 1);
  double state_mb = static_cast<double>(optimizer.state_bytes()) / 1e6, max_state_mb = state_mb;
  world.all_reduce(&max_state_mb, 1, parallel::ReduceOp::Max);
  const double activation_mb = static_cast<double>(trainer.activation_bytes()) / 1e6;
  runtime.report_memory("after the timed steps");  // GPUs: the caching allocator's peak
  double slowest = median(step_s);
  world.all_reduce(&slowest, 1, parallel::ReduceOp::Max);

  if (world.rank() == 0) {
    const int m = static_cast<int>(micro_batches.size());  // rank 0's
    const double p = grid.pp_size();
    const double tokens = all_tokens;
    std::printf("model: hidden %d, %d layers, vocab %d (%.1f M parameters); global batch %d x %s "
                "tokens (%.0f in all), micro-batch %d%s\n",
                o.size.hidden, o.size.layers, o.size.vocab,
                static_cast<double>(config.num_parameters()) / 1e6, o.global_batch,
                o.min_seq > 0 && o.min_seq < o.seq ? spin::cat(o.min_seq, "-", o.seq).c_str()
                                                   : std::to_string(o.seq).c_str(),
                all_tokens, o.micro_batch,
                o.micro_batch_tokens > 0 ? spin::cat(" and ", o.micro_batch_tokens, " tokens at most").c_str() : "");
    std::string split;
    for (std::int64_t n : counts) split += (split.empty() ? "" : ",") + std::to_string(n);
    std::printf("layout: tp %d x pp %d%s x dp %d on %d ranks (layers %s), %d micro-batches per step%s%s\n",
                grid.tp_size(), grid.pp_size(), o.vpp > 1 ? spin::cat(" (", o.vpp, " chunks a stage)").c_str() : "",
                grid.dp_size(), world.size(), split.c_str(), m,
                o.distributed ? ", distributed optimizer" : "",
                lora.enabled() ? spin::cat(", LoRA rank ", lora.rank, " on every projection (",
                                           static_cast<double>(trained.flat().numel()) / 1e6, " M trained)",
                                           lora.dropout > 0.0 ? spin::cat(", dropout ", lora.dropout) : "")
                                     .c_str()
                               : "");
    const double rate = model::training_flops(config, all_lengths) / slowest / 1e9 / world.size();
    std::printf("step: %.1f ms median (slowest rank) on %s, %.0f tokens/s, %.1f model GFLOP/s per rank "
                "= %.1f%% of the measured %s matrix-product peak (%.0f GFLOP/s at %d^3)\n",
                slowest * 1e3, runtime.describe().c_str(), tokens / slowest, rate, 100.0 * rate / peak,
                mixed ? "bf16" : "float32", peak, peak_size);
    if (runtime.device() == Device::Cpu) {  // on a GPU the host timers see launches, not kernels
      std::printf("pipeline bubble: measured %.1f%% (mean over ranks), %s model (p-1)/(%sm+p-1) = %.1f%%\n",
                  100.0 * sum_bubble / world.size(), o.vpp > 1 ? "interleaved" : "1F1B", o.vpp > 1 ? "v" : "",
                  100.0 * (p - 1) / (o.vpp * m + p - 1));
    }
    const std::size_t held = weights.flat().nbytes() + (weights.has_bf16() ? weights.flat_bf16().nbytes() : 0);
    std::printf("optimizer state per rank: %.1f MB (largest rank); the model per rank: %.1f MB%s, gradients %.1f MB\n",
                max_state_mb, static_cast<double>(held) / 1e6,
                weights.frozen() ? " (bf16 alone)" : weights.has_bf16() ? " (float32 and its bf16 copy)" : "",
                static_cast<double>(grads.flat().nbytes()) / 1e6);
    std::printf("activations (%s, rank 0): %.1f MB%s%s\n", o.vpp > 1 ? "interleaved pools" : "1F1B ring", activation_mb,
                o.recompute ? " (recomputing every layer)" : "",
                chunks.front()->sequence_parallel() ? " (sequence parallel)" : "");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return spin::bench::bench_main(argc, argv, run); }
