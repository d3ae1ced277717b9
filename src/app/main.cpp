// spin: Self-Play fINe-tuning of Llama-family models on MPI clusters.
//   mpirun -np N spin <command> [options]      spin <command> --help for its options
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "app/commands.h"
#include "parallel/job_errors.h"
#include "parallel/mpi_communicator.h"

namespace {

constexpr const char* kUsage =
    "usage: spin <command> [options]\n"
    "\n"
    "commands:\n"
    "  train     SPIN self-play fine-tuning (--config FILE.ini)\n"
    "  eval      exact-match accuracy of greedy answers and NLL of the ground truth\n"
    "  score     log-probabilities of token sequences under a model (TP x PP x DP)\n"
    "  sft       supervised fine-tuning (TP x PP x DP, 1F1B, AdamW)\n"
    "  generate  responses to prompts (KV cache, vocab-parallel sampling, TP x PP x DP)\n"
    "  ckpt      inspect, verify, reshard, merge, export-hf, import-hf of HDF5 checkpoints\n"
    "  plan      per-rank memory of a SPIN run for a layout, and the layouts that fit\n"
    "  data      a data set as spin train reads it: lengths, and examples with their special tokens\n"
    "\n"
    "Run under mpirun or srun for tensor/data parallelism; `spin <command> --help` lists a\n"
    "command's options.\n";

int dispatch(int argc, char** argv, spin::parallel::Communicator& world) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "train") return spin::app::run_train(argc - 1, argv + 1, world);
  if (command == "eval") return spin::app::run_eval(argc - 1, argv + 1, world);
  if (command == "score") return spin::app::run_score(argc - 1, argv + 1, world);
  if (command == "sft") return spin::app::run_sft(argc - 1, argv + 1, world);
  if (command == "generate") return spin::app::run_generate(argc - 1, argv + 1, world);
  if (command == "ckpt") return spin::app::run_ckpt(argc - 1, argv + 1, world);
  if (command == "plan") return spin::app::run_plan(argc - 1, argv + 1, world);
  if (command == "data") return spin::app::run_data(argc - 1, argv + 1, world);
  if (command == "--version") {
    if (world.rank() == 0) std::printf("spin %s\n", SPIN_VERSION);
    return 0;
  }
  if (command.empty() || command == "--help" || command == "-h") {
    if (world.rank() == 0) std::fputs(kUsage, command.empty() ? stderr : stdout);
    return command.empty() ? 2 : 0;
  }
  throw spin::parallel::CollectiveError(
      0, "unknown command \"" + command + "\" (spin --help lists the commands)");
}

}  // namespace

int main(int argc, char** argv) {
  spin::parallel::MpiRuntime mpi(&argc, &argv);
  try {
    return dispatch(argc, argv, mpi.world());
  } catch (const spin::parallel::CollectiveError& e) {
    // Every rank holds this error: print it once and let every rank exit non-zero -- once it is
    // printed: a launcher that kills the job at the first non-zero exit (srun --kill-on-bad-exit,
    // mpirun) would otherwise cut rank 0 off before its line.
    if (mpi.world().rank() == 0) spin::parallel::print_error(e.origin_rank(), e.what());
    mpi.world().barrier();
    return 1;
  } catch (const std::exception& e) {
    spin::parallel::abort_job(e.what());
  }
}
