// spin score: per-token log-probabilities and masked sums of token sequences under a model.
//   mpirun -np N spin score --model HF_DIR --tp T --pp P --input seqs.jsonl --output out.jsonl
// Text records (a prompt and its response, chat messages, NeMo or ShareGPT conversations) are tokenized as
// training tokenizes them (--template) and their response tokens summed.
// Sequences are dealt round-robin to the data-parallel replicas (world / (tp x pp) of them),
// scored in micro-batches that flow through the pipeline stages one behind the other (the
// reference's forward-only schedule), and gathered on rank 0 -- each replica's last stage hands
// its results to its first, whose TP rank 0 sends them on -- which writes the output in input
// order (into a temporary file renamed at the end, so a failed run leaves no partial output; a device or a
// pipe -- /dev/null, /dev/stdout -- in place).
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

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
#include "data/token_jsonl.h"
#include "model/transformer.h"
#include "parallel/job_errors.h"
#include "parallel/process_grid.h"
#include "train/pipeline_scorer.h"

namespace spin::app {

namespace {

namespace po = boost::program_options;

struct ScoreOptions {
  std::string model, adapter;
  std::string input;
  std::string output;
  std::string prompt_template = "auto", columns;
  int tp = 1, pp = 1, ep = 1;
  std::string pp_layers;
  std::int64_t batch_size = 8;
  std::int64_t batch_tokens = 0;  // a micro-batch's tokens at most (0: batch_size sequences alone)
  // Without a backward a chunk costs nothing (no logits are recomputed): bounded by default, so that
  // a large vocabulary's logits never take [rows, vocab / tp] floats at once.
  std::int64_t logits_chunk_rows = kScoringLogitsChunkRows;
  RuntimeOptions runtime;  // --device, --precision, --attention-backend
};

// Returns nullopt after printing --help.
std::optional<ScoreOptions> parse_options(int argc, char** argv, bool print) {
  ScoreOptions o;
  po::options_description desc("spin score options");
  desc.add_options()
      ("help,h", "print this help")
      ("model", po::value(&o.model)->required(),
       "Hugging Face model directory (config.json + model.safetensors[.index.json]), or a spin checkpoint (a "
       "step directory, or a run's save directory: its latest) whose policy it scores")
      ("adapter", po::value(&o.adapter)->default_value(""),
       "a PEFT LoRA adapter directory trained on --model's model, merged into it")
      ("input", po::value(&o.input)->required(),
       "JSONL, JSON array or Parquet: {\"tokens\":[...], \"mask_from\":k} or {\"prompt\":[...], \"response\":[...]} of ids, or text as "
       "training reads it (prompt/response, messages, NeMo or ShareGPT conversations, ...)")
      ("columns", po::value(&o.columns), data::kColumnsHelp)
      ("template", po::value(&o.prompt_template)->default_value(o.prompt_template),
       spin::cat("prompt template for text records: ", data::kPromptTemplateChoices).c_str())
      ("output", po::value(&o.output)->required(),
       "JSONL written by rank 0: {\"logprob_sum\": s, \"token_logprobs\": [...]} per input line")
      ("tp", po::value(&o.tp)->default_value(1), "tensor-parallel size (data-parallel = world / (tp x pp))")
      ("pp", po::value(&o.pp)->default_value(1), "pipeline-parallel size")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("pp-layers", po::value(&o.pp_layers)->default_value(""),
       "layers per pipeline stage, comma-separated (default: an even split), or balanced (by FLOPs, the LM head's "
       "counted)")
      ("batch-size", po::value(&o.batch_size)->default_value(8),
       "sequences per micro-batch on each data-parallel replica")
      ("batch-tokens", po::value(&o.batch_tokens)->default_value(o.batch_tokens),
       "tokens per micro-batch at most as well, a longer sequence alone (data::cut_micro_batches; 0: --batch-size "
       "sequences alone)")
      ("logits-chunk-rows", po::value(&o.logits_chunk_rows)->default_value(o.logits_chunk_rows),
       "the LM head's logits this many rows at a time (0: all at once)");
  o.runtime.add_to(desc);
  if (!parse_options_or_help(desc, argc, argv, "spin score",
                             "spin score --model DIR --input IN --output OUT [options]", print)) {
    return std::nullopt;
  }
  require(o.batch_size >= 1, "spin score: --batch-size must be at least 1");
  require(o.batch_tokens >= 0, "spin score: --batch-tokens must not be negative");
  require(o.logits_chunk_rows >= 0, "spin score: --logits-chunk-rows must be 0 (off) or positive");
  data::choose_prompt_template(o.prompt_template, nullptr);  // a known name
  data::RecordColumns::parse(o.columns, "--columns");        // well-formed
  o.runtime.check();
  return o;
}

std::string format_line(const std::vector<float>& token_logprobs, float sum) {
  std::string s = "{\"logprob_sum\": ";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(sum));
  s += buf;
  s += ", \"token_logprobs\": [";
  for (std::size_t i = 0; i < token_logprobs.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", static_cast<double>(token_logprobs[i]));
    s += buf;
  }
  s += "]}\n";
  return s;
}

// Scores `mine` in micro-batches of `batch_size` sequences, pipelined over the stages; returns on
// the last stage, per record, its token log-probabilities followed by its sum, concatenated
// (nothing on the other stages).
std::vector<float> score_records(const parallel::ProcessGrid& grid, const model::Transformer& transformer,
                                 const model::ModelWeights& weights,
                                 const std::vector<data::TokenRecord>& records,
                                 const std::vector<std::int64_t>& mine, std::int64_t batch_size,
                                 std::int64_t batch_tokens) {
  std::vector<std::int64_t> tokens;
  for (std::int64_t i : mine) {
    tokens.push_back(static_cast<std::int64_t>(records[static_cast<std::size_t>(i)].tokens.size()));
  }
  std::vector<model::TokenBatch> batches;
  for (const auto& group : data::cut_micro_batches(mine, tokens, batch_size, batch_tokens)) {
    std::vector<model::Sequence> seqs;
    for (std::int64_t i : group) {
      const data::TokenRecord& r = records[static_cast<std::size_t>(i)];
      seqs.push_back({r.tokens, r.mask_from});
    }
    batches.push_back(model::TokenBatch::pack(seqs));
  }
  const std::vector<model::ForwardResult> results = train::forward_pipelined(grid, transformer, weights, batches);
  std::vector<float> out;
  if (!transformer.stage().last) return out;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const model::TokenBatch& batch = batches[b];
    const model::ForwardResult& r = results[b];
    for (std::int64_t s = 0; s < batch.num_seqs(); ++s) {
      const auto first = static_cast<std::size_t>(batch.cu_seqlens[static_cast<std::size_t>(s)]);
      const auto last = static_cast<std::size_t>(batch.cu_seqlens[static_cast<std::size_t>(s + 1)]);
      // token_logprobs[i] predicts token i + 1: rows first .. last-2 of the sequence.
      out.insert(out.end(), r.token_logprobs.begin() + static_cast<std::ptrdiff_t>(first),
                 r.token_logprobs.begin() + static_cast<std::ptrdiff_t>(last - 1));
      out.push_back(r.sequence_logprobs[static_cast<std::size_t>(s)]);
    }
  }
  return out;
}

std::size_t result_floats(const std::vector<data::TokenRecord>& records,
                          const std::vector<std::int64_t>& indices) {
  std::size_t n = 0;
  for (std::int64_t i : indices) n += records[static_cast<std::size_t>(i)].tokens.size();  // (len - 1) + 1 sum
  return n;
}

}  // namespace

int run_score(int argc, char** argv, parallel::Communicator& world) {
  const auto parsed = parse_command<ScoreOptions>(
      world, [&](bool print) { return parse_options(argc, argv, print); });
  if (!parsed) return 0;
  const ScoreOptions& o = parsed->first;
  const parallel::Layout layout = parsed->second;

  const auto start = std::chrono::steady_clock::now();
  const Runtime runtime(o.runtime, world);
  parallel::ProcessGrid grid(runtime.world(), layout);
  std::optional<ModelSource> source;
  std::optional<ModelShard> shard;
  OutputTarget output;  // world rank 0's
  std::vector<data::TokenRecord> records;
  parallel::run_collectively(world, [&] {
    source = model_source(o.model, o.adapter, world.rank() == 0);
    shard = plan_model_shard(source->config, grid, o.pp_layers);
    const model::ModelConfig& config = shard->config;
    const data::RecordColumns columns = data::RecordColumns::parse(o.columns, "--columns");
    if (data::holds_text(o.input, columns)) {
      // Tokenized as training does; every line scored (no length limit here: validated below).
      const auto tokenizer = load_tokenizer(source->dir, config);
      require(tokenizer != nullptr, o.input, ": text records need the model's tokenizer, and ", o.model, " has none");
      const data::LoadedExamples loaded = data::load_examples(
          o.input, tokenizer.get(), data::choose_prompt_template(o.prompt_template, tokenizer.get()), {},
          config.vocab_size, {.columns = columns});
      for (const data::Example& e : loaded.examples) {
        data::TokenRecord r;
        r.tokens = e.prompt;
        r.tokens.insert(r.tokens.end(), e.response.begin(), e.response.end());
        r.mask_from = static_cast<std::int64_t>(e.prompt.size());
        r.line = e.line;
        records.push_back(std::move(r));
      }
    } else {
      records = data::read_token_jsonl(o.input);
    }
    data::validate_token_records(records, o.input, config.vocab_size,
                                 config.max_sequence_length());
    if (world.rank() == 0) {
      // Fail now, not after the scoring, if the output cannot be written.
      // (A FIFO is not opened for the probe: its reader would take the close for the end of the output.)
      output = output_target(o.output, "spin score: --output");
      if (output.in_place) {
        require(::access(output.path.c_str(), W_OK) == 0, o.output, ": cannot write (", std::strerror(errno), ")");
      } else {
        const std::string probe = output.path + ".tmp";
        std::FILE* f = std::fopen(probe.c_str(), "w");
        require(f != nullptr, o.output, ": cannot create the output file");
        std::fclose(f);
        std::remove(probe.c_str());
      }
    }
  });
  model::ModelWeights weights(shard->config, shard->dims, shard->chunks, 1, runtime.device(),
                              runtime.inference_storage());
  parallel::run_collectively(world, [&] {
    load_model_weights(*source, o.adapter, *shard, weights, runtime.kernels());
  });
  runtime.prepare(weights);
  const auto loaded = std::chrono::steady_clock::now();

  model::Transformer transformer(shard->config, shard->dims, shard->stage(), grid.tp(), runtime.kernels());
  transformer.set_logits_chunk_rows(o.logits_chunk_rows);
  const auto count = static_cast<std::int64_t>(records.size());
  const auto mine = data::replica_share(count, grid.dp_rank(), grid.dp_size());
  std::vector<float> results = score_records(grid, transformer, weights, records, mine, o.batch_size, o.batch_tokens);
  const auto scored = std::chrono::steady_clock::now();

  // Gather on world rank 0 (tp rank 0, dp rank 0, pp rank 0): each replica's last stage sends its
  // results to its first stage over the pipeline group of TP rank 0, and the first stages send
  // theirs to rank 0 over their data-parallel group.
  if (grid.tp_rank() != 0) return 0;
  if (grid.pp_size() > 1) {
    if (grid.is_last_stage()) {
      grid.pp().send(results.data(), results.size(), 0);
      return 0;
    }
    if (!grid.is_first_stage()) return 0;
    results.resize(result_floats(records, mine));
    grid.pp().recv(results.data(), results.size(), grid.pp_size() - 1);
  }
  if (grid.dp_rank() != 0) {
    grid.dp().send(results.data(), results.size(), 0);
    return 0;
  }
  std::vector<std::vector<float>> by_replica(static_cast<std::size_t>(grid.dp_size()));
  by_replica[0] = results;
  for (int r = 1; r < grid.dp_size(); ++r) {
    auto& buf = by_replica[static_cast<std::size_t>(r)];
    buf.resize(result_floats(records, data::replica_share(count, r, grid.dp_size())));
    grid.dp().recv(buf.data(), buf.size(), r);
  }
  // Written beside the file and renamed over it; a device or a pipe (/dev/null, /dev/stdout) in place.
  const std::string tmp = output.in_place ? output.path : output.path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  require(f != nullptr, tmp, ": cannot create");
  std::vector<std::size_t> cursor(by_replica.size(), 0);
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const std::size_t r = i % by_replica.size();
    const std::size_t n = records[i].tokens.size() - 1;
    const float* p = by_replica[r].data() + cursor[r];
    const std::string line = format_line(std::vector<float>(p, p + n), p[n]);
    std::fputs(line.c_str(), f);
    cursor[r] += n + 1;
    tokens += static_cast<std::int64_t>(n + 1);
  }
  const bool written = std::ferror(f) == 0;  // a write that failed mid-way (the close reports only its own)
  if (std::fclose(f) != 0 || !written) write_failed(tmp);
  if (!output.in_place) std::filesystem::rename(tmp, output.path);

  const double load_s = std::chrono::duration<double>(loaded - start).count();
  const double score_s = std::chrono::duration<double>(scored - loaded).count();
  std::printf("spin score: %zu sequences, %lld tokens, layout tp %d x pp %d x dp %d on %s: load %.2f s, "
              "score %.2f s (%.0f tokens/s), wrote %s\n",
              records.size(), static_cast<long long>(tokens), grid.tp_size(), grid.pp_size(), grid.dp_size(),
              runtime.describe().c_str(),
              load_s, score_s, static_cast<double>(tokens) / std::max(score_s, 1e-9),
              o.output.c_str());
  return 0;
}

}  // namespace spin::app
