// spin eval: how well a model answers a data set -- the share of prompts whose greedy response
// is exactly the ground truth (token for token, EOS included), and the mean negative
// log-likelihood per ground-truth response token.
//   mpirun -np N spin eval --model DIR --data test.jsonl [--template plain] [--tp T --pp P]
#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <optional>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "app/resumable_output.h"
#include "app/runtime.h"
#include "core/error.h"
#include "core/json_file.h"
#include "data/batch_plan.h"
#include "data/examples.h"
#include "data/prompt_template.h"
#include "generate/generator.h"
#include "parallel/job_errors.h"
#include "train/pipeline_scorer.h"

namespace spin::app {

namespace {

namespace po = boost::program_options;

struct EvalOptions {
  std::string model, adapter, data, output, prompt_template = "auto", pp_layers, columns;
  int tp = 1, pp = 1, ep = 1;
  std::int64_t batch_size = 32, batch_tokens = 0, max_step_tokens = 0, max_new_tokens = 0;
  std::int64_t logits_chunk_rows = kScoringLogitsChunkRows;
  RuntimeOptions runtime;  // --device, --precision, --attention-backend
};

std::optional<EvalOptions> parse_options(int argc, char** argv, bool print) {
  EvalOptions o;
  po::options_description desc("spin eval options");
  desc.add_options()
      ("help,h", "print this help")
      ("model", po::value(&o.model)->required(),
       "Hugging Face model directory (with its tokenizer for text data), or a spin checkpoint (a step directory, "
       "or a run's save directory: its latest) whose policy it evaluates")
      ("adapter", po::value(&o.adapter)->default_value(""),
       "a PEFT LoRA adapter directory trained on --model's model, merged into it")
      ("data", po::value(&o.data)->required(), "JSONL, JSON array or Parquet with prompts and ground-truth responses (any spin data shape)")
      ("columns", po::value(&o.columns), data::kColumnsHelp)
      ("output", po::value(&o.output)->default_value(""), "also write the figures as one JSON line to this file")
      ("template", po::value(&o.prompt_template)->default_value(o.prompt_template), spin::cat("prompt template: ", data::kPromptTemplateChoices).c_str())
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("pp", po::value(&o.pp)->default_value(o.pp), "pipeline-parallel size")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("pp-layers", po::value(&o.pp_layers)->default_value(""),
       "layers per pipeline stage, e.g. 3,5, or balanced (by FLOPs, the LM head's counted)")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "sequences generated at once and examples scored together on each replica")
      ("batch-tokens", po::value(&o.batch_tokens)->default_value(o.batch_tokens),
       "the ground truth scored in micro-batches of at most this many tokens as well, a longer example alone "
       "(0: --batch-size examples alone)")
      ("max-step-tokens", po::value(&o.max_step_tokens)->default_value(o.max_step_tokens), kMaxStepTokensHelp)
      ("max-new-tokens", po::value(&o.max_new_tokens)->default_value(0),
       "longest greedy response (0: the longest ground-truth response)")
      ("logits-chunk-rows", po::value(&o.logits_chunk_rows)->default_value(o.logits_chunk_rows),
       "score the ground truth with the LM head's logits this many rows at a time (0: all at once)");
  o.runtime.add_to(desc);
  if (!parse_options_or_help(desc, argc, argv, "spin eval", "spin eval --model DIR --data DATA [options]", print)) {
    return std::nullopt;
  }
  data::RecordColumns::parse(o.columns, "--columns");  // well-formed
  require(o.batch_size >= 1, "spin eval: --batch-size must be at least 1");
  require(o.batch_tokens >= 0, "spin eval: --batch-tokens must not be negative");
  require(o.logits_chunk_rows >= 0, "spin eval: --logits-chunk-rows must be 0 (off) or positive");
  o.runtime.check();
  return o;
}

}  // namespace

int run_eval(int argc, char** argv, parallel::Communicator& world) {
  const auto parsed = parse_command<EvalOptions>(
      world, [&](bool print) { return parse_options(argc, argv, print); });
  if (!parsed) return 0;
  const EvalOptions& o = parsed->first;
  const parallel::Layout layout = parsed->second;
  const Runtime runtime(o.runtime, world);
  const parallel::ProcessGrid grid(runtime.world(), layout);

  std::optional<ModelSource> source;
  std::optional<ModelShard> shard;
  data::LoadedExamples data;
  generate::GenerationParams greedy;
  parallel::run_collectively(world, [&] {
    // Here, where the layout is known to be sound (its pipeline stages divide the batch).
    generate::check_step_tokens(o.max_step_tokens, o.batch_size, grid.pp_size(), "spin eval: --max-step-tokens");
    source = model_source(o.model, o.adapter, world.rank() == 0);
    shard = plan_model_shard(source->config, grid, o.pp_layers);
    const model::ModelConfig& mc = shard->config;
    const auto tokenizer = load_tokenizer(source->dir, mc);
    const data::PromptTemplate tmpl = data::choose_prompt_template(o.prompt_template, tokenizer.get());
    data = data::load_examples(o.data, tokenizer.get(), tmpl, {0, 0, mc.max_sequence_length(), data::Overlong::Drop},
                               mc.vocab_size, {.columns = data::RecordColumns::parse(o.columns, "--columns")});
    std::int64_t longest = 0;
    for (const auto& e : data.examples) {
      longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(e.response.size()));
    }
    greedy.sampling.greedy = true;
    greedy.max_new_tokens = o.max_new_tokens > 0 ? o.max_new_tokens : longest;
    greedy.eos_ids = stop_ids(source->dir, mc, tokenizer.get(), tmpl);
    greedy.validate(mc.vocab_size);
    // (Written in place at the end -- no file beside it -- so a device or a pipe is fine; a directory is not.)
    if (!o.output.empty() && world.rank() == 0) output_target(o.output, "spin eval: --output");
    for (const auto& e : data.examples) {
      if (static_cast<std::int64_t>(e.prompt.size()) + greedy.max_new_tokens > mc.max_sequence_length()) {
        fail(data.location(e), ": the prompt leaves no room for ", greedy.max_new_tokens, " new tokens");
      }
    }
  });
  model::ModelWeights weights(shard->config, shard->dims, shard->chunks, 1, runtime.device(),
                              runtime.inference_storage());
  parallel::run_collectively(world, [&] {
    load_model_weights(*source, o.adapter, *shard, weights, runtime.kernels());
  });
  runtime.prepare(weights);
  model::Transformer transformer(shard->config, shard->dims, shard->stage(), grid.tp(), runtime.kernels());
  transformer.set_logits_chunk_rows(o.logits_chunk_rows);
  generate::Generator generator(grid, transformer, weights);

  // This replica's examples: greedy answers (--batch-size in flight, refilled as they finish)
  // and ground-truth scores (--batch-size per forward).
  double exact = 0.0, count = 0.0;
  const std::vector<std::int64_t> mine =
      data::replica_share(static_cast<std::int64_t>(data.examples.size()), grid.dp_rank(), grid.dp_size());
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::int64_t i : mine) prompts.push_back(data.examples[static_cast<std::size_t>(i)].prompt);
  const auto answers =
      generator.generate(prompts, std::vector<std::uint64_t>(prompts.size(), 0), greedy, {o.batch_size, o.max_step_tokens, {}});
  for (std::size_t i = 0; i < answers.size(); ++i) {
    exact += answers[i].tokens == data.examples[static_cast<std::size_t>(mine[i])].response ? 1.0 : 0.0;
    count += 1.0;
  }
  const train::ResponseNll truth = train::response_nll(grid, transformer, weights, data.examples, o.batch_size, o.batch_tokens);
  // Generation results are on every rank of a replica: summed over the replicas.
  std::vector<double> totals = {exact, count};
  grid.dp().all_reduce(totals.data(), totals.size());
  if (world.rank() == 0) {
    const double em = totals[0] / std::max(totals[1], 1.0);
    const double mean_nll = truth.mean();
    std::printf("spin eval: %s: %.0f examples | exact match %.4f | nll per response token %.4f\n",
                o.data.c_str(), totals[1], em, mean_nll);
    if (!o.output.empty()) {
      std::ofstream out(o.output);
      out.precision(17);
      out << "{\"examples\": " << totals[1] << ", \"exact_match\": " << em << ", \"nll\": " << mean_nll << "}\n";
      close_checked(out, o.output);
    }
  }
  return 0;
}

}  // namespace spin::app
