// spin data: what a data set becomes before any GPU hour is spent on it -- the records read as
// spin train reads them (shape, template, length limits), the token lengths' distribution, and
// the first examples rendered with every special token shown, to check a prompt template
// against the model's own chat format.
//   spin data --model DIR --data train.jsonl [--template auto] [--show 2] [--generations]
#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <optional>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "core/error.h"
#include "data/examples.h"
#include "data/prompt_template.h"
#include "model/config.h"
#include "parallel/job_errors.h"

namespace spin::app {

namespace {

namespace po = boost::program_options;

struct DataOptions {
  std::string model, data, prompt_template = "auto", columns;
  std::int64_t show = 2, max_prompt_tokens = 0, max_response_tokens = 0;
  bool generations = false;
  int workers = 0;
};

std::optional<DataOptions> parse_options(int argc, char** argv, bool print) {
  DataOptions o;
  po::options_description desc("spin data options");
  desc.add_options()
      ("help,h", "print this help")
      ("model", po::value(&o.model)->required(),
       "Hugging Face model directory (its config.json and tokenizer), or a spin checkpoint (its copies)")
      ("data", po::value(&o.data)->required(), "JSONL, JSON array or Parquet in any spin train data shape, or a comma-separated list")
      ("template", po::value(&o.prompt_template)->default_value(o.prompt_template),
       spin::cat("prompt template: ", data::kPromptTemplateChoices).c_str())
      ("columns", po::value(&o.columns), data::kColumnsHelp)
      ("show", po::value(&o.show)->default_value(o.show), "examples to print rendered")
      ("max-prompt-tokens", po::value(&o.max_prompt_tokens)->default_value(0),
       "longest prompt kept, as data.max_prompt_tokens (0: the model's context)")
      ("max-response-tokens", po::value(&o.max_response_tokens)->default_value(0),
       "longest response kept, as data.max_response_tokens (0: no limit)")
      ("generations", po::bool_switch(&o.generations),
       "read the records' generated responses too, as spin.generations = data does")
      ("workers", po::value(&o.workers)->default_value(o.workers),
       "threads tokenizing, as data.workers (0: one a CPU this process may run on, at most 16)");
  if (!parse_options_or_help(desc, argc, argv, "spin data", "spin data --model DIR --data DATA [options]", print)) {
    return std::nullopt;
  }
  data::RecordColumns::parse(o.columns, "--columns");  // well-formed
  require(o.show >= 0, "spin data: --show must not be negative");
  require(o.max_prompt_tokens >= 0 && o.max_response_tokens >= 0, "spin data: token limits must not be negative");
  return o;
}

// "min .. mean .. p50 .. p90 .. p99 .. max" of `lengths`.
std::string distribution(std::vector<std::int64_t> lengths) {
  if (lengths.empty()) return "none";
  std::sort(lengths.begin(), lengths.end());
  double sum = 0.0;
  for (std::int64_t n : lengths) sum += static_cast<double>(n);
  const auto quantile = [&](double q) {
    const auto at = static_cast<std::size_t>(std::ceil(q * static_cast<double>(lengths.size()))) - 1;
    return lengths[std::min(at, lengths.size() - 1)];
  };
  return cat("min ", lengths.front(), " | mean ", std::lround(sum / static_cast<double>(lengths.size())), " | p50 ",
             quantile(0.5), " | p90 ", quantile(0.9), " | p99 ", quantile(0.99), " | max ", lengths.back());
}

std::string shown(const data::Tokenizer* tokenizer, const std::vector<std::int32_t>& ids) {
  std::string list;
  for (std::size_t i = 0; i < ids.size() && i < 48; ++i) {
    if (i > 0) list += ' ';
    list += std::to_string(ids[i]);
  }
  if (ids.size() > 48) list += " ...";
  std::string s = cat(ids.size(), " tokens [", list, "]");
  if (tokenizer) {
    s += "\n      ";
    s += data::printable(data::decode_showing_specials(*tokenizer, ids));
  }
  return s;
}

}  // namespace

int run_data(int argc, char** argv, parallel::Communicator& world) {
  std::optional<DataOptions> parsed;
  parallel::run_collectively(world, [&] { parsed = parse_options(argc, argv, world.rank() == 0); });
  if (!parsed) return 0;
  const DataOptions& o = *parsed;
  parallel::run_collectively(world, [&] {
    if (world.rank() != 0) return;  // one process reads and prints
    const ModelSource source = model_source(o.model, "", true);
    const model::ModelConfig& config = source.config;
    const auto tokenizer = load_tokenizer(source.dir, config);
    const data::PromptTemplate tmpl = data::choose_prompt_template(o.prompt_template, tokenizer.get());
    const data::RecordColumns columns = data::RecordColumns::parse(o.columns, "--columns");
    data::LengthLimits limits;
    limits.max_prompt = o.max_prompt_tokens;
    limits.max_response = o.max_response_tokens;
    limits.max_sequence = config.max_sequence_length();
    const data::LoadedExamples loaded =
        data::load_examples(o.data, tokenizer.get(), tmpl, limits, config.vocab_size,
                            {.read_generated = o.generations, .workers = o.workers, .columns = columns});
    std::vector<std::int64_t> prompts, responses, generated, sequences;
    for (const data::Example& e : loaded.examples) {
      prompts.push_back(static_cast<std::int64_t>(e.prompt.size()));
      responses.push_back(static_cast<std::int64_t>(e.response.size()));
      sequences.push_back(static_cast<std::int64_t>(e.prompt.size() + std::max(e.response.size(), e.generated.size())));
      if (o.generations) generated.push_back(static_cast<std::int64_t>(e.generated.size()));
    }
    std::printf("spin data: %s\n", loaded.report.summary(o.data).c_str());
    std::printf("template %s (--template %s); the model's context: %lld tokens\n", data::prompt_template_name(tmpl),
                o.prompt_template.c_str(), static_cast<long long>(config.max_sequence_length()));
    std::printf("prompt tokens     %s\n", distribution(prompts).c_str());
    std::printf("response tokens   %s\n", distribution(responses).c_str());
    if (o.generations) std::printf("generated tokens  %s\n", distribution(generated).c_str());
    std::printf("sequence tokens   %s\n", distribution(sequences).c_str());
    for (std::size_t i = 0; i < loaded.examples.size() && static_cast<std::int64_t>(i) < o.show; ++i) {
      const data::Example& e = loaded.examples[i];
      std::printf("example %zu (%s)\n  prompt    %s\n  response  %s\n", i + 1, loaded.location(e).c_str(),
                  shown(tokenizer.get(), e.prompt).c_str(), shown(tokenizer.get(), e.response).c_str());
      if (o.generations) std::printf("  generated %s\n", shown(tokenizer.get(), e.generated).c_str());
    }
    std::fflush(stdout);
  });
  return 0;
}

}  // namespace spin::app
