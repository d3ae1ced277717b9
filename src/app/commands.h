// The subcommands of the `spin` program. Each takes its own arguments (argv[0] is the command
// name) and the world communicator, returns the process exit status, and throws spin::Error
// (or parallel::CollectiveError for errors every rank agreed on) for main() to report.
#pragma once

#include "parallel/communicator.h"

namespace spin::app {

int run_score(int argc, char** argv, parallel::Communicator& world);
int run_sft(int argc, char** argv, parallel::Communicator& world);
int run_generate(int argc, char** argv, parallel::Communicator& world);
int run_train(int argc, char** argv, parallel::Communicator& world);
int run_eval(int argc, char** argv, parallel::Communicator& world);
int run_ckpt(int argc, char** argv, parallel::Communicator& world);
int run_plan(int argc, char** argv, parallel::Communicator& world);
int run_data(int argc, char** argv, parallel::Communicator& world);

}  // namespace spin::app
