// Command-line parsing shared by every benchmark, with no dependency beyond Boost.Program_options:
// the data benchmarks (no MPI, no model) use it as the model benchmarks do through bench_util.h.
#pragma once

#include <boost/program_options.hpp>
#include <cstdio>
#include <sstream>

namespace spin::bench {

// Parses the options; false after printing --help (where `print`: rank 0), which is looked for
// before the required options are checked.
inline bool parse_or_help(const boost::program_options::options_description& desc, int argc, char** argv,
                          bool print = true) {
  namespace po = boost::program_options;
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  if (vm.count("help")) {
    if (print) std::printf("%s\n", (std::ostringstream() << desc).str().c_str());
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace spin::bench
