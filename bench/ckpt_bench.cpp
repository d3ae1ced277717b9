// Checkpoint save and load bandwidth:
//   mpirun -np N ckpt_bench --dir /path/on/the/disk [--tp T] [--pp P] [--repeats R]
// Saves the policy weights of a model split over TP x PP (x DP) ranks with
// train::save_checkpoint (every shard file fsynced, the index written, the directory renamed)
// and loads them back with train::load_weights (every dataset's checksum verified), R times
// each; prints the median GB/s of the model's bytes. With --drop-caches (root) the page cache
// is dropped before each load, so that loads read the disk. With --hf-shard-size BYTES it then
// writes the model as a Hugging Face directory in files of at most that size, as spin train does
// each iteration (ckpt::save_hf_model, the replicas' model-parallel rank 0s sharing the files),
// and prints its time and each rank's peak memory above what it held before (the most of any rank,
// and rank 0's), beside those of the way spin saved before: the whole model gathered on rank 0
// (ckpt::gather_model), which then writes every file.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "checkpoint/hf_writer.h"
#include "checkpoint/model_gather.h"
#include "checkpoint/sharded_checkpoint.h"
#include "model/weights.h"
#include "parallel/process_grid.h"
#include "train/checkpointing.h"

namespace {

using namespace spin;
using namespace spin::bench;
namespace po = boost::program_options;
namespace fs = std::filesystem;

struct Options {
  ModelSize size{768, 6, 12, 12, 2048, 8000, 256};  // 55 M parameters: 219 MB in float32
  std::string dir;
  int tp = 1, pp = 1, repeats = 5;
  bool drop_caches = false;
  std::uint64_t hf_shard_bytes = 0;  // 0: no Hugging Face save
};

// This process's resident set (VmRSS) and its peak (VmHWM) in bytes.
std::pair<double, double> resident_bytes() {
  std::ifstream status("/proc/self/status");
  double rss = 0, hwm = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) rss = std::stod(line.substr(6)) * 1024;
    if (line.starts_with("VmHWM:")) hwm = std::stod(line.substr(6)) * 1024;
  }
  return {rss, hwm};
}

// The peak resident memory `work` adds on each rank: {the most of any rank, rank 0's}, in bytes.
std::pair<double, double> peak_added(parallel::Communicator& world, const std::function<void()>& work) {
  std::ofstream("/proc/self/clear_refs") << "5\n";  // the peak back to what is resident now
  const double before = resident_bytes().first;
  work();
  double added[2] = {resident_bytes().second - before, 0};
  added[1] = world.rank() == 0 ? added[0] : 0;
  world.all_reduce(added, 2, parallel::ReduceOp::Max);
  return {added[0], added[1]};
}

void drop_page_cache() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

int run(int argc, char** argv, parallel::Communicator& world) {
  Options o;
  po::options_description desc("ckpt_bench options");
  desc.add_options()("help", "print this help");
  add_model_options(desc, o.size);
  desc.add_options()
      ("dir", po::value(&o.dir)->required(), "save directory (on the disk to measure)")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("pp", po::value(&o.pp)->default_value(o.pp), "pipeline-parallel size")
      ("repeats", po::value(&o.repeats)->default_value(o.repeats), "saves and loads measured")
      ("drop-caches", po::bool_switch(&o.drop_caches), "drop the page cache before each load (root)")
      ("hf-shard-size", po::value(&o.hf_shard_bytes)->default_value(o.hf_shard_bytes),
       "then save the model as a Hugging Face directory in files of at most this many bytes (0: not)");
  if (!parse_or_help(desc, argc, argv, world.rank() == 0)) return 0;

  const parallel::ProcessGrid grid(world, {o.tp, o.pp, 0});
  const model::ModelConfig config = make_config(o.size);
  const model::StageLayers stage =
      model::stage_layers(model::split_layers(config.num_layers, grid.pp_size()), grid.pp_rank());
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size());
  model::ModelWeights weights(config, dims, stage);
  weights.init_random(1, 0.02f);
  model::ModelWeights loaded(config, dims, stage);
  const double bytes = 4.0 * static_cast<double>(config.num_parameters());

  std::vector<double> save_s, load_s;
  for (int r = 0; r < o.repeats; ++r) {
    world.barrier();
    auto t0 = Clock::now();
    train::save_checkpoint(o.dir, r + 1, grid, weights, nullptr, nullptr, false,
                           {{"model_config", config.json_text}}, 0);
    world.barrier();
    save_s.push_back(seconds_since(t0));
    if (world.rank() == 0 && r > 0) fs::remove_all(ckpt::checkpoint_dir(o.dir, r));  // untimed

    if (o.drop_caches && world.rank() == 0) drop_page_cache();
    world.barrier();
    t0 = Clock::now();
    const ckpt::CheckpointReader reader(ckpt::checkpoint_dir(o.dir, r + 1));
    train::load_weights(reader, "policy", loaded);
    world.barrier();
    load_s.push_back(seconds_since(t0));
  }
  std::int32_t same = loaded.flat().nbytes() == weights.flat().nbytes() &&
                      std::equal(loaded.flat().f32(), loaded.flat().f32() + loaded.flat().numel(), weights.flat().f32());
  world.all_reduce(&same, 1, parallel::ReduceOp::Min);
  if (world.rank() == 0) {
    std::printf("model: %.1f M parameters, %.1f MB of float32; layout tp %d x pp %d x dp %d on %d ranks "
                "(%d shard files)\n",
                static_cast<double>(config.num_parameters()) / 1e6, bytes / 1e6, grid.tp_size(), grid.pp_size(),
                grid.dp_size(), world.size(), grid.tp_size() * grid.pp_size());
    std::printf("save: %.3f s median of %d, %.3f GB/s (fsynced)\n", median(save_s), o.repeats,
                bytes / median(save_s) / 1e9);
    std::printf("load: %.3f s median of %d, %.3f GB/s (checksums verified%s)\n", median(load_s), o.repeats,
                bytes / median(load_s) / 1e9, o.drop_caches ? ", page cache dropped" : ", page cache warm");
    std::printf("loaded weights %s the saved ones\n", same ? "equal" : "DIFFER FROM");
  }
  if (o.hf_shard_bytes > 0) {
    const std::vector<ShardedTensor> shards = weights.sharded_state_dict();
    // Each way R times, alternating, into a directory of its own each time (the last kept).
    std::vector<double> hf_s, gathered_s;
    std::pair<double, double> save_peak, gathered_peak;  // {the most of any rank, rank 0's}
    for (int r = 0; r < o.repeats; ++r) {
      const std::string hf = (fs::path(o.dir) / "hf").string(), gathered = (fs::path(o.dir) / "hf-gathered").string();
      world.barrier();
      auto t0 = Clock::now();
      gathered_peak = peak_added(world, [&] {
        const std::vector<ckpt::FullTensor> model = ckpt::gather_model(shards, grid.mp());
        if (world.rank() != 0) return;
        std::vector<ckpt::HfTensor> tensors;
        for (const ckpt::FullTensor& t : model) tensors.push_back({t.name, t.shape});
        ckpt::write_hf_model(gathered, config.json_text, tensors, [&](std::size_t i) { return model[i].data.data(); },
                             DType::F32, o.hf_shard_bytes);
      });
      world.barrier();
      gathered_s.push_back(seconds_since(t0));
      t0 = Clock::now();
      save_peak = peak_added(world, [&] {
        ckpt::HfFormat format;
        format.max_shard_bytes = o.hf_shard_bytes;
        ckpt::save_hf_model(hf, config.json_text, shards, grid.mp(), format, {}, "", &grid.dp());
      });
      world.barrier();
      hf_s.push_back(seconds_since(t0));
    }
    if (world.rank() == 0) {
      std::size_t files = 0;
      for (const auto& f : fs::directory_iterator(fs::path(o.dir) / "hf")) {
        files += f.path().extension() == ".safetensors";
      }
      std::printf("hf save: %.3f s median of %d, %.3f GB/s into %zu files (not fsynced); peak memory added: %.1f MB "
                  "on rank 0, %.1f MB the most of any rank\n",
                  median(hf_s), o.repeats, bytes / median(hf_s) / 1e9, files, save_peak.second / 1e6,
                  save_peak.first / 1e6);
      std::printf("gathered on rank 0 first (gather_model, then rank 0 writes): %.3f s, %.3f GB/s; peak memory added: "
                  "%.1f MB on rank 0, %.1f MB the most of any rank\n",
                  median(gathered_s), bytes / median(gathered_s) / 1e9, gathered_peak.second / 1e6,
                  gathered_peak.first / 1e6);
    }
  }
  if (world.rank() == 0) fs::remove_all(o.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return spin::bench::bench_main(argc, argv, run); }
