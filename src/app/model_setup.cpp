#include "app/model_setup.h"

#include <filesystem>
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

std::unique_ptr<data::Tokenizer> load_tokenizer(const std::string& model_dir,
                                                const model::ModelConfig& config) {
  const std::filesystem::path dir(model_dir);
  if (!std::filesystem::exists(dir / "tokenizer.model") &&
      !std::filesystem::exists(dir / "byte_tokenizer.json")) {
    return nullptr;
  }
  auto tokenizer = data::Tokenizer::load(model_dir);
  std::optional<std::int32_t> bos, eos;
  if (config.bos_token_id) bos = static_cast<std::int32_t>(*config.bos_token_id);
  if (!config.eos_token_ids.empty()) eos = static_cast<std::int32_t>(config.eos_token_ids.front());
  tokenizer->set_special_ids(bos, eos);
  return tokenizer;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  for (const char* f : {"tokenizer.model", "byte_tokenizer.json", "tokenizer_config.json"}) {
    const fs::path source = fs::path(from) / f;
    if (fs::exists(source)) fs::copy_file(source, fs::path(to) / f, fs::copy_options::overwrite_existing);
  }
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
