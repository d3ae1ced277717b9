// The pipeline bubble of 1F1B against interleaved 1F1B:
//   mpirun -np P pipeline_bench [--micro-batches M] [--chunks 1,2,4] [--forward-ms F] [--floats N]
// Every rank is one stage of a P-stage pipeline whose work is modelled: a stage's forward of a
// micro-batch takes F ms and its backward 2F (sleeps: the figures are the schedule's, not this
// machine's arithmetic, so oversubscribed ranks measure it too), split evenly over its v chunks;
// N floats cross every boundary. Prints for v = 1 (the 1F1B pass) and each v > 1 (the
// interleaved pass, its exchanges waited for at once and its transfers overlapped) the median step time of R passes, the bubble -- the step's share not spent
// computing -- and the bubble the schedule predicts, (p - 1) / (v m + p - 1) of the step
// (Narayanan et al. 2021: (p - 1) / (v m) of the computing time).
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "parallel/pipeline_schedule.h"
#include "parallel/process_grid.h"

namespace {

using namespace spin;
using namespace spin::bench;
namespace po = boost::program_options;

struct Options {
  int micro_batches = 8, repeats = 5;
  std::string chunks = "1,2,4";
  double forward_ms = 20.0;
  std::size_t floats = 1 << 20;  // 4 MB: 512 tokens of a 2,048-wide model
};

// A stage whose forward of a chunk sleeps F / v and whose backward 2F / v.
class SleepingStage final : public parallel::PipelineStage {
 public:
  SleepingStage(int chunks, double forward_ms, std::size_t floats)
      : chunks_(chunks), forward_(forward_ms / chunks), out_(floats, 1.0f), grad_(floats, -1.0f) {}

  int chunks() const override { return chunks_; }
  std::size_t boundary_size(int) const override { return out_.size(); }
  std::span<const float> forward(int, int, std::span<const float>) override {
    sleep(forward_);
    return out_;
  }
  std::span<const float> backward(int, int, std::span<const float>) override {
    sleep(2.0 * forward_);
    return grad_;
  }

 private:
  static void sleep(double ms) { std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms)); }
  int chunks_;
  double forward_;
  std::vector<float> out_, grad_;
};

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) values.push_back(std::stoi(item));
  return values;
}

int run(int argc, char** argv, parallel::Communicator& world) {
  Options o;
  po::options_description desc("pipeline_bench options");
  desc.add_options()("help", "print this help")
      ("micro-batches", po::value(&o.micro_batches)->default_value(o.micro_batches), "micro-batches a step")
      ("chunks", po::value(&o.chunks)->default_value(o.chunks), "model chunks a stage (1: 1F1B), a list")
      ("forward-ms", po::value(&o.forward_ms)->default_value(o.forward_ms), "a stage's forward of a micro-batch")
      ("floats", po::value(&o.floats)->default_value(o.floats), "floats crossing a boundary")
      ("repeats", po::value(&o.repeats)->default_value(o.repeats), "steps measured");
  if (!parse_or_help(desc, argc, argv, world.rank() == 0)) return 0;

  const parallel::ProcessGrid grid(world, {1, world.size(), 0});
  const int p = grid.pp_size(), m = o.micro_batches;
  const double compute_ms = 3.0 * o.forward_ms * m;
  if (world.rank() == 0) {
    std::printf("%d stages, %d micro-batches, forward %.1f ms + backward %.1f ms a micro-batch and stage, %.1f MB "
                "a boundary: %.0f ms of computing a step\n\n",
                p, m, o.forward_ms, 2 * o.forward_ms, 4e-6 * static_cast<double>(o.floats), compute_ms);
    std::printf("| schedule | step (ms) | bubble | predicted | messages a stage |\n|---|---|---|---|---|\n");
  }
  for (const int v : parse_list(o.chunks)) {
    // Interleaved: each exchange waited for at once, then the transfers overlapped (overlap_p2p_comm).
    for (const bool overlap : v == 1 ? std::vector<bool>{false} : std::vector<bool>{false, true}) {
      SleepingStage stage(v, o.forward_ms, o.floats);
      std::vector<double> steps;
      grid.pp().reset_stats();
      for (int r = 0; r < o.repeats; ++r) {
        grid.pp().barrier();
        const auto t0 = Clock::now();
        if (v == 1) {
          parallel::forward_backward_pipelining_without_interleaving(grid.pp(), m, stage);
        } else {
          parallel::forward_backward_pipelining_with_interleaving(grid.pp(), m, stage, overlap);
        }
        grid.pp().barrier();
        steps.push_back(1e3 * seconds_since(t0));
      }
      const double step = median(steps);
      const auto sends = grid.pp().stats().calls_of(parallel::CommOp::Send) / static_cast<std::uint64_t>(o.repeats);
      if (world.rank() == 0) {
        const double predicted = (p - 1.0) / (v * m + p - 1.0);
        const std::string name =
            v == 1 ? "1F1B" : "interleaved, v = " + std::to_string(v) + (overlap ? ", overlapped" : "");
        std::printf("| %s | %.1f | %.1f%% | %.1f%% | %llu sends |\n", name.c_str(), step,
                    100.0 * (1.0 - compute_ms / step), 100.0 * predicted, static_cast<unsigned long long>(sends));
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return spin::bench::bench_main(argc, argv, run); }
