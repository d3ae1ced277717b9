// Checkpoint save and load bandwidth:
//   mpirun -np N ckpt_bench --dir /path/on/the/disk [--tp T] [--pp P] [--repeats R]
// Saves the policy weights of a model split over TP x PP (x DP) ranks with
// train::save_checkpoint (every shard file fsynced, the index written, the directory renamed)
// and loads them back with train::load_weights (every dataset's checksum verified), R times
// each; prints the median GB/s of the model's bytes. With --drop-caches (root) the page cache
// is dropped before each load, so that loads read the disk.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "bench/bench_util.h"
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
};

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
      ("drop-caches", po::bool_switch(&o.drop_caches), "drop the page cache before each load (root)");
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
    fs::remove_all(o.dir);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return spin::bench::bench_main(argc, argv, run); }
