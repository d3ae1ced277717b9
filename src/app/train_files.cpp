#include "app/train_files.h"

#include <fstream>
#include <sstream>

#include "app/model_setup.h"
#include "checkpoint/hf_writer.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "data/jsonl.h"

namespace spin::app {

namespace fs = std::filesystem;

std::vector<double> parse_lambdas(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    double v = 0.0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used != 0 && used == item.size(), "spin.kl_penalty \"", text,
            "\" is not a number or a comma-separated list of numbers");
    out.push_back(v);
  }
  require(!out.empty(), "spin.kl_penalty is empty");
  return out;
}

void save_policy(const std::string& dir, const std::string& model_dir, const model::ModelConfig& config,
                 const model::ModelWeights& policy, const parallel::ProcessGrid& grid, const ckpt::HfFormat& format) {
  // A multimodal model.path (Gemma 3, Mistral Small 3.1, Qwen2.5-VL) is written back whole, its language model trained.
  // The replicas hold the same weights: their model-parallel rank 0s share the files.
  ckpt::save_hf_model(dir, hf_config_json(config, format), policy.sharded_state_dict(), grid.mp(), format,
                      model::hf_layout(config), model_dir, &grid.dp());
  if (grid.world_rank() == 0) copy_tokenizer_files(model_dir, dir);
  grid.world().barrier();
}

void write_generations(const fs::path& path, const std::vector<data::Example>& examples,
                       const std::vector<train::SpinTrainer::IterationResponse>& responses,
                       const data::Tokenizer* tokenizer, data::PromptTemplate prompt_format) {
  fs::create_directories(path.parent_path());
  const fs::path partial = path.string() + ".partial";
  {
    std::ofstream out(partial);
    require(out.good(), partial.string(), ": cannot create");
    for (std::size_t i = 0; i < examples.size(); ++i) {
      const data::Example& e = examples[i];
      out << "{\"prompt\": " << data::jsonl::ids_literal(e.prompt) << ", \"response\": "
          << data::jsonl::ids_literal(e.response) << ", \"generated\": " << data::jsonl::ids_literal(responses[i].tokens)
          << ", \"capped\": " << (responses[i].capped ? "true" : "false");
      if (tokenizer != nullptr) {
        out << ", \"prompt_text\": " << data::jsonl::quoted(tokenizer->decode(e.prompt)) << ", \"response_text\": "
            << data::jsonl::quoted(data::response_text(e.response, prompt_format, *tokenizer))
            << ", \"generated_text\": "
            << data::jsonl::quoted(data::response_text(responses[i].tokens, prompt_format, *tokenizer));
      }
      out << "}\n";
    }
    close_checked(out, partial.string());
  }
  fs::rename(partial, path);
}

std::string checkpoint_to_load(const TrainConfig& c) {
  std::string start;
  if (!c.load.empty()) {
    require(fs::is_directory(c.load), "checkpoint.load ", c.load, ": no such directory");
    start = ckpt::checkpoint_of(c.load);
  } else if (c.resume) {
    start = ckpt::latest_checkpoint(c.save_dir);
  }
  const std::string earlier = ckpt::earlier_run_in(c.save_dir, start);
  require(earlier.empty(), "checkpoint.save_dir ", c.save_dir, " holds an earlier run's checkpoints (latest: ", earlier,
          "), which this run would write over: continue that run (checkpoint.resume = true, no checkpoint.load from "
          "elsewhere), or choose another checkpoint.save_dir");
  return start;
}

}  // namespace spin::app
