#include "app/options.h"

#include <iostream>

#include "core/error.h"

namespace spin::app {

namespace po = boost::program_options;

bool parse_options_or_help(const po::options_description& desc, int argc, char** argv, const char* command,
                           const char* usage, bool print, const po::positional_options_description* positional,
                           std::set<std::string>* given) {
  po::variables_map vm;
  try {
    po::command_line_parser parser(argc, argv);
    parser.options(desc);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      if (print) std::cout << "usage: " << usage << "\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
    if (given) {
      for (const auto& [name, value] : vm) {
        if (!value.defaulted()) given->insert(name);
      }
    }
  } catch (const po::error& e) {
    fail(command, ": ", e.what(), " (", command, " --help lists the options)");
  }
  return true;
}

}  // namespace spin::app
