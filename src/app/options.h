// Command-line parsing shared by the subcommands (Boost.Program_options): parses into `desc`'s
// variables, prints the usage and every option with its default for --help, and turns every
// parse error into one spin::Error naming the command.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "parallel/job_errors.h"
#include "parallel/process_grid.h"

namespace spin::app {

// --max-step-tokens's help in the commands that generate (generate::Batching::max_tokens).
inline constexpr const char* kMaxStepTokensHelp =
    "tokens one model call processes at most (0: no limit): prompts are prefilled in chunks of what the decoding "
    "sequences leave, which bounds the activation buffers; at least ceil(batch-size / pp)";

// --ep's help in the commands that take it (spin train's parallel.ep; model::TpDims).
inline constexpr const char* kExpertParallelHelp =
    "a mixture's expert-parallel size within the TP group: each rank holds num_experts / ep experts, each split "
    "over tp / ep ranks (divides tp and num_experts)";

// --logits-chunk-rows's default in the commands that score without a backward (spin score, spin eval):
// there a chunk recomputes nothing, and 4096 rows bound the logits of Llama 3's 128256-entry
// vocabulary to 2 GiB at TP 1 (a micro-batch of 8 x 4096 tokens would hold 16 GiB); on the CPU the
// bounded buffer is also faster for large micro-batches (docs/performance.md).
inline constexpr std::int64_t kScoringLogitsChunkRows = 4096;

// Returns false when --help was given (after printing it if `print`), true when the options
// were parsed and stored. `desc` must include a "help" option.
// `positional`, when given, maps bare arguments to options of `desc`; `given`, when given, receives the
// names of the options the command line set (not those left at their defaults).
bool parse_options_or_help(const boost::program_options::options_description& desc, int argc, char** argv,
                           const char* command, const char* usage, bool print,
                           const boost::program_options::positional_options_description* positional = nullptr,
                           std::set<std::string>* given = nullptr);

// Runs a command's option parser, parse(print_help) -> optional<Options>, on every rank with
// errors agreed on (one line), and resolves the layout from the options' tp, pp and ep members.
// nullopt after --help.
template <class Options, class Parse>
std::optional<std::pair<Options, parallel::Layout>> parse_command(parallel::Communicator& world,
                                                                  Parse parse) {
  std::optional<Options> options;
  parallel::Layout layout;
  parallel::run_collectively(world, [&] {
    options = parse(world.rank() == 0);
    if (options) layout = parallel::resolve_layout(world.size(), {options->tp, options->pp, 0, options->ep});
  });
  if (!options) return std::nullopt;
  return std::pair<Options, parallel::Layout>{std::move(*options), layout};
}

}  // namespace spin::app
