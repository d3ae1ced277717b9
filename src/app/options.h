// Command-line parsing shared by the subcommands (Boost.Program_options): parses into `desc`'s
// variables, prints the usage and every option with its default for --help, and turns every
// parse error into one spin::Error naming the command.
#pragma once

#include <boost/program_options.hpp>

namespace spin::app {

// Returns false when --help was given (after printing it if `print`), true when the options
// were parsed and stored. `desc` must include a "help" option.
bool parse_options_or_help(const boost::program_options::options_description& desc, int argc,
                           char** argv, const char* command, const char* usage, bool print);

}  // namespace spin::app
