#include "app/model_setup.h"

#include <sstream>

#include "core/error.h"

namespace spin::app {

std::vector<std::int64_t> parse_int_list(const std::string& text, const char* option) {
  std::vector<std::int64_t> out;
  if (text.empty()) return out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    try {
      out.push_back(std::stoll(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    require(used != 0 && used == item.size(), option, " \"", text,
            "\" is not a comma-separated list of integers");
  }
  return out;
}

ModelShard plan_model_shard(const std::string& model_dir, const parallel::ProcessGrid& grid,
                            const std::string& pp_layers) {
  model::ModelConfig config = model::ModelConfig::load(model_dir);
  const auto counts = model::split_layers(config.num_layers, grid.pp_size(),
                                          parse_int_list(pp_layers, "--pp-layers"));
  const model::StageLayers stage = model::stage_layers(counts, grid.pp_rank());
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size());
  return {std::move(config), stage, dims};
}

}  // namespace spin::app
