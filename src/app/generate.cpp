// spin generate: responses to prompts (token ids, or text through the model's tokenizer and a
// prompt template), TP x PP x DP, with the KV-cache generator.
//   mpirun -np N spin generate --model HF_DIR --tp T --pp P --input prompts.jsonl
//       --output out.jsonl [--template llama3 --temperature 0.7 --top-p 0.9 --max-new-tokens 256 ...]
// Prompts are dealt round-robin to the data-parallel replicas and generated --batch-size at a
// time, each finished sequence's slot refilled (continuous batching); the responses depend only
// on the seed and each prompt's line number, so every layout writes the same file. Rank 0
// writes it in input order, through OUT.partial; with --save-every N the prompts go in rounds
// of N, each round's lines appended there as it ends, and a stopped run (SIGTERM / SIGUSR1 at a
// round's end: exit 75, as spin train; or a crash) started again with the same inputs and
// settings goes on after the lines already written (app/resumable_output.h). With --spin-data
// the input is a training set and each line a SPIN record {prompt, response, generated} for
// spin train's spin.generations = data (the SPIN code's offline generation step).
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "app/profile_window.h"
#include "app/resumable_output.h"
#include "app/runtime.h"
#include "app/stop_signals.h"
#include "core/error.h"
#include "core/profile.h"
#include "data/examples.h"
#include "data/prompt_template.h"
#include "data/jsonl.h"
#include "generate/generator.h"
#include "parallel/job_errors.h"
#include "train/memory_plan.h"  // format_bytes

namespace spin::app {

namespace {

namespace po = boost::program_options;

struct GenerateOptions {
  std::string model, adapter, input, output, pp_layers, eos_ids, prompt_template = "auto", columns;
  std::vector<std::string> end_sequences;
  int tp = 1, pp = 1, ep = 1;
  std::int64_t batch_size = 32, max_step_tokens = 0, save_every = 0, num_samples = 1;
  std::int64_t seed = 1234;  // params.seed, read signed: "-1" is refused, not wrapped to 2^64 - 1
  double exit_duration_mins = 0.0;
  generate::GenerationParams params;
  bool eos_given = false;
  bool spin_data = false;  // the input is a training data set; the output SPIN records with the answers
  bool profile = false;    // a Chrome trace per rank of the whole generation
  RuntimeOptions runtime;  // --device, --precision, --attention-backend
};

std::optional<GenerateOptions> parse_options(int argc, char** argv, bool print) {
  GenerateOptions o;
  generate::GenerationParams& g = o.params;
  po::options_description desc("spin generate options");
  desc.add_options()
      ("help,h", "print this help")
      ("model", po::value(&o.model)->required(),
       "Hugging Face model directory, or a spin checkpoint (a step directory, or a run's save directory: its "
       "latest) whose policy generates")
      ("adapter", po::value(&o.adapter)->default_value(""),
       "a PEFT LoRA adapter directory trained on --model's model, merged into it")
      ("input", po::value(&o.input)->required(),
       "JSONL, JSON array or Parquet of {\"prompt\": [token ids...]}, {\"prompt\": \"text\"} or {\"messages\": [...]}, or a "
       "comma-separated list of such files")
      ("template", po::value(&o.prompt_template)->default_value(o.prompt_template),
       spin::cat("prompt template for text prompts: ", data::kPromptTemplateChoices).c_str())
      ("columns", po::value(&o.columns),
       "PROMPT[,RESPONSE[,GENERATED]]: the records' keys (Parquet's columns) for a layout of no known shape -- the "
       "prompt's alone, or with --spin-data as data.columns --, each text or messages")
      ("profile", po::bool_switch(&o.profile),
       "profile the generation: every rank's ranges (each model call with its sequences, sampling) to "
       "<output>.profile/rank<r>.json, a Chrome trace (NVTX ranges on GPUs)")
      ("spin-data", po::bool_switch(&o.spin_data),
       "the input is a training data set (any spin train shape, through --template as spin train reads it); each "
       "output line is a pre-tokenized SPIN record {prompt, response: the ground truth, generated: this model's "
       "answer} for spin train --spin.generations data")
      ("output", po::value(&o.output)->required(),
       "JSONL written by rank 0, one line per prompt: prompt, response (ids, and text when the model has a "
       "tokenizer), logprobs, finish_reason")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("pp", po::value(&o.pp)->default_value(o.pp), "pipeline-parallel size (data-parallel = world / (tp x pp))")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("pp-layers", po::value(&o.pp_layers)->default_value(""),
       "layers per pipeline stage, e.g. 3,5, or balanced (by FLOPs, the LM head's counted)")
      ("batch-size", po::value(&o.batch_size)->default_value(o.batch_size),
       "sequences generated at once on each data-parallel replica (KV cache slots; a finished one's slot takes "
       "the next prompt)")
      ("max-step-tokens", po::value(&o.max_step_tokens)->default_value(o.max_step_tokens), kMaxStepTokensHelp)
      ("num-samples", po::value(&o.num_samples)->default_value(o.num_samples),
       "responses per prompt, each a line of its own with \"sample\": k (vLLM's n); sample 0 is the response "
       "without this option, the others have noise of their own")
      ("save-every", po::value(&o.save_every)->default_value(o.save_every),
       "generate the prompts in rounds of this many (over all replicas), each round's lines written to "
       "<output>.partial as it ends, so that a stopped run (SIGTERM / SIGUSR1 at a round's end: exit 75) "
       "or a crashed one continues when started again (0: one round)")
      ("exit-duration-mins", po::value(&o.exit_duration_mins)->default_value(o.exit_duration_mins),
       "with --save-every: minutes after which the run stops at the next round's end and exits 75, as for SIGTERM / "
       "SIGUSR1 (0: no limit)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "sampling seed")
      ("greedy", po::bool_switch(&g.sampling.greedy), "argmax decoding")
      ("temperature", po::value(&g.sampling.temperature)->default_value(g.sampling.temperature), "sampling temperature (> 0)")
      ("top-k", po::value(&g.sampling.top_k)->default_value(g.sampling.top_k), "sample among the k most likely tokens (0: off)")
      ("top-p", po::value(&g.sampling.top_p)->default_value(g.sampling.top_p), "nucleus sampling mass (1: off)")
      ("min-p", po::value(&g.sampling.min_p)->default_value(g.sampling.min_p),
       "keep tokens at least min-p times as probable as the most probable (0: off)")
      ("repetition-penalty", po::value(&g.sampling.repetition_penalty)->default_value(g.sampling.repetition_penalty),
       "divide positive / multiply negative logits of tokens already present (1: off)")
      ("max-new-tokens", po::value(&g.max_new_tokens)->default_value(g.max_new_tokens), "longest response")
      ("min-new-tokens", po::value(&g.min_new_tokens)->default_value(g.min_new_tokens),
       "shortest response (EOS and end sequences are ignored before it)")
      ("eos-ids", po::value(&o.eos_ids),
       "comma-separated EOS token ids (default: config.json's and generation_config.json's eos_token_id and "
       "the template's end of a response)")
      ("end-string", po::value(&o.params.end_strings)->composing(),
       "text that ends a response once generated -- an occurrence ending within the last token's text, the "
       "whole token kept (needs the model's tokenizer; special tokens are for --eos-ids); repeatable")
      ("end-sequence", po::value(&o.end_sequences)->composing(),
       "comma-separated token ids that end a response when generated; repeatable");
  o.runtime.add_to(desc);
  if (!parse_options_or_help(desc, argc, argv, "spin generate",
                             "spin generate --model DIR --input PROMPTS --output OUT [options]", print)) {
    return std::nullopt;
  }
  require(o.batch_size >= 1, "spin generate: --batch-size must be at least 1");
  require(o.save_every >= 0, "spin generate: --save-every must be 0 (one round) or positive, got ", o.save_every);
  require(o.exit_duration_mins == 0.0 || o.save_every > 0,
          "spin generate: --exit-duration-mins stops at a round's end: it needs --save-every");
  set_time_limit(o.exit_duration_mins, "spin generate: --exit-duration-mins");
  require(o.num_samples >= 1, "spin generate: --num-samples must be at least 1, got ", o.num_samples);
  require(o.seed >= 0, "spin generate: --seed must not be negative, got ", o.seed);
  g.seed = static_cast<std::uint64_t>(o.seed);
  data::choose_prompt_template(o.prompt_template, nullptr);  // a known name
  data::RecordColumns::parse(o.columns, "--columns", o.spin_data);  // well-formed
  o.eos_given = !o.eos_ids.empty();
  for (std::int64_t id : parse_int_list(o.eos_ids, "--eos-ids")) {
    o.params.eos_ids.push_back(static_cast<std::int32_t>(id));
  }
  for (const std::string& e : o.end_sequences) {
    std::vector<std::int32_t> seq;
    for (std::int64_t id : parse_int_list(e, "--end-sequence")) seq.push_back(static_cast<std::int32_t>(id));
    o.params.end_sequences.push_back(seq);
  }
  o.runtime.check();
  return o;
}

// Token ids as a JSON list: [1, 2, 3].
// One output line of --spin-data: the pre-tokenized record spin train reads with
// spin.generations = data, and the answer's text when the model has a tokenizer.
std::string spin_record_line(const std::vector<std::int32_t>& prompt, const std::vector<std::int32_t>& truth,
                             const generate::Generation& g, const std::optional<std::string>& text,
                             const std::string& tail) {
  std::string s = "{\"prompt\": " + data::jsonl::ids_literal(prompt) + ", \"response\": " + data::jsonl::ids_literal(truth) + ", \"generated\": " +
                  data::jsonl::ids_literal(g.tokens) + ", \"finish_reason\": \"" + generate::finish_reason_name(g.finish) + "\"";
  if (text) s += ", \"generated_text\": " + data::jsonl::quoted(*text);
  return s + tail + "}\n";
}

// One output line; `text` (the decoded response) only when the model has a tokenizer; `tail`: more
// fields (", \"sample\": k").
std::string json_line(const std::vector<std::int32_t>& prompt, const generate::Generation& g,
                      const std::optional<std::string>& text, const std::string& tail) {
  std::string s = "{\"prompt\": " + data::jsonl::ids_literal(prompt) + ", \"response\": " + data::jsonl::ids_literal(g.tokens) + ", \"logprobs\": [";
  char buf[32];
  for (std::size_t i = 0; i < g.logprobs.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", static_cast<double>(g.logprobs[i]));
    s += buf;
  }
  s += "], \"length\": " + std::to_string(g.tokens.size()) + ", \"finish_reason\": \"" +
       generate::finish_reason_name(g.finish) + "\"";
  if (text) s += ", \"response_text\": " + data::jsonl::quoted(*text);
  return s + tail + "}\n";
}

// Responses of the prompts `ids` flattened for sending: [length, finish] per prompt, then the
// tokens, then the log-probabilities.
struct Packed {
  std::vector<std::int64_t> heads;
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
};

Packed pack(const std::vector<generate::Generation>& gens) {
  Packed p;
  for (const auto& g : gens) {
    p.heads.push_back(static_cast<std::int64_t>(g.tokens.size()));
    p.heads.push_back(static_cast<std::int64_t>(g.finish));
    p.tokens.insert(p.tokens.end(), g.tokens.begin(), g.tokens.end());
    p.logprobs.insert(p.logprobs.end(), g.logprobs.begin(), g.logprobs.end());
  }
  return p;
}

std::vector<generate::Generation> unpack(const Packed& p) {
  std::vector<generate::Generation> out(p.heads.size() / 2);
  std::size_t at = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto n = static_cast<std::size_t>(p.heads[2 * i]);
    out[i].tokens.assign(p.tokens.begin() + static_cast<std::ptrdiff_t>(at), p.tokens.begin() + static_cast<std::ptrdiff_t>(at + n));
    out[i].logprobs.assign(p.logprobs.begin() + static_cast<std::ptrdiff_t>(at), p.logprobs.begin() + static_cast<std::ptrdiff_t>(at + n));
    out[i].finish = static_cast<generate::FinishReason>(p.heads[2 * i + 1]);
    at += n;
  }
  return out;
}

// Every replica's responses on data-parallel rank 0 (of TP 0, PP 0: the ranks that call this),
// replica by replica; the other ranks send theirs and get nothing back.
std::vector<std::vector<generate::Generation>> gather_replicas(const parallel::ProcessGrid& grid,
                                                               std::vector<generate::Generation> mine) {
  if (grid.dp_rank() != 0) {
    const Packed packed = pack(mine);
    const std::int64_t sizes[3] = {static_cast<std::int64_t>(packed.heads.size()),
                                   static_cast<std::int64_t>(packed.tokens.size()),
                                   static_cast<std::int64_t>(packed.logprobs.size())};
    grid.dp().send(sizes, 3, 0);
    grid.dp().send(packed.heads.data(), packed.heads.size(), 0);
    grid.dp().send(packed.tokens.data(), packed.tokens.size(), 0);
    grid.dp().send(packed.logprobs.data(), packed.logprobs.size(), 0);
    return {};
  }
  std::vector<std::vector<generate::Generation>> by_replica(static_cast<std::size_t>(grid.dp_size()));
  by_replica[0] = std::move(mine);
  for (int r = 1; r < grid.dp_size(); ++r) {
    std::int64_t sizes[3];
    grid.dp().recv(sizes, 3, r);
    Packed p;
    p.heads.resize(static_cast<std::size_t>(sizes[0]));
    p.tokens.resize(static_cast<std::size_t>(sizes[1]));
    p.logprobs.resize(static_cast<std::size_t>(sizes[2]));
    grid.dp().recv(p.heads.data(), p.heads.size(), r);
    grid.dp().recv(p.tokens.data(), p.tokens.size(), r);
    grid.dp().recv(p.logprobs.data(), p.logprobs.size(), r);
    by_replica[static_cast<std::size_t>(r)] = unpack(p);
  }
  return by_replica;
}

// What the output's lines depend on, for resuming only the run that wrote a partial output: the
// model's directory (its path -- a save directory's latest checkpoint, resolved --: the weights are
// not read for this), the token ids of every prompt (after the template) and ground truth, and
// every generation setting.
std::uint64_t fingerprint(const GenerateOptions& o, const std::string& model_dir,
                          const std::vector<std::vector<std::int32_t>>& prompts,
                          const std::vector<std::vector<std::int32_t>>& truths) {
  const generate::GenerationParams& g = o.params;
  const generate::SamplingParams& s = g.sampling;
  std::uint64_t h = fnv1a(cat("spin generate v1|model ", std::filesystem::absolute(model_dir).string(), "|spin-data ",
                              o.spin_data, "|seed ", g.seed, "|new tokens ", g.min_new_tokens, "..", g.max_new_tokens,
                              "|greedy ", s.greedy, "|temperature ", std::bit_cast<std::uint32_t>(s.temperature),
                              "|top-k ", s.top_k, "|top-p ", std::bit_cast<std::uint32_t>(s.top_p), "|min-p ",
                              std::bit_cast<std::uint32_t>(s.min_p), "|repetition ",
                              std::bit_cast<std::uint32_t>(s.repetition_penalty), "|eos ", data::jsonl::ids_literal(g.eos_ids)));
  for (const auto& e : g.end_sequences) h = fnv1a(cat("|end ", data::jsonl::ids_literal(e)), h);
  for (const std::string& e : g.end_strings) h = fnv1a(cat("|end string ", e.size(), ":", e), h);
  h = fnv1a(cat("|samples ", o.num_samples), h);
  for (const auto* lists : {&prompts, &truths}) {
    for (const std::vector<std::int32_t>& ids : *lists) {
      h = fnv1a(cat("|", ids.size(), ":"), h);
      h = fnv1a({reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(std::int32_t)}, h);
    }
  }
  return h;
}

}  // namespace

int run_generate(int argc, char** argv, parallel::Communicator& world) {
  const auto parsed = parse_command<GenerateOptions>(
      world, [&](bool print) { return parse_options(argc, argv, print); });
  if (!parsed) return 0;
  GenerateOptions o = parsed->first;  // the EOS ids are completed from the model below
  const parallel::Layout layout = parsed->second;
  const bool root = world.rank() == 0;
  const Runtime runtime(o.runtime, world);
  const parallel::ProcessGrid grid(runtime.world(), layout);

  std::optional<ModelSource> source;
  std::optional<ModelShard> shard;
  OutputTarget target;                                     // world rank 0's: where --output is written
  std::vector<std::vector<std::int32_t>> prompts, truths;  // truths: --spin-data's ground truths
  std::vector<std::string> where;                          // each prompt's file:line
  std::unique_ptr<data::Tokenizer> tokenizer;
  data::PromptTemplate prompt_format = data::PromptTemplate::Chat;  // --template, resolved: how responses read
  parallel::run_collectively(world, [&] {
    // Here, where the layout is known to be sound (its pipeline stages divide the batch).
    generate::check_step_tokens(o.max_step_tokens, o.batch_size, grid.pp_size(), "spin generate: --max-step-tokens");
    source = model_source(o.model, o.adapter, root);
    shard = plan_model_shard(source->config, grid, o.pp_layers);
    tokenizer = load_tokenizer(source->dir, shard->config);
    require(o.params.end_strings.empty() || tokenizer, "spin generate: --end-string needs the model's tokenizer (",
            o.model, " has none)");
    if (tokenizer) {
      o.params.detokenize = [t = tokenizer.get()](std::span<const std::int32_t> ids) { return t->decode(ids); };
    }
    prompt_format = data::choose_prompt_template(o.prompt_template, tokenizer.get());
    if (!o.eos_given) {
      o.params.eos_ids = stop_ids(source->dir, shard->config, tokenizer.get(), prompt_format);
    }
    o.params.validate(shard->config.vocab_size);
    if (o.spin_data) {
      data::LoadedExamples loaded =
          data::load_examples(o.input, tokenizer.get(), prompt_format, {}, shard->config.vocab_size,
                              {.columns = data::RecordColumns::parse(o.columns, "--columns", true)});
      for (data::Example& e : loaded.examples) {
        where.push_back(loaded.location(e));
        prompts.push_back(std::move(e.prompt));
        truths.push_back(std::move(e.response));
      }
    } else {
      data::LoadedPrompts loaded = data::load_prompts(o.input, tokenizer.get(), prompt_format,
                                                      data::RecordColumns::parse(o.columns, "--columns", false));
      prompts = std::move(loaded.prompts);
      where = std::move(loaded.where);
    }
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const auto need = static_cast<std::int64_t>(prompts[i].size()) + o.params.max_new_tokens;
      require(need <= shard->config.max_sequence_length(), where[i], ": the prompt has ",
              prompts[i].size(), " tokens; with --max-new-tokens ", o.params.max_new_tokens,
              " it needs ", need, " positions but the model allows ",
              shard->config.max_sequence_length());
      for (std::int32_t t : prompts[i]) {
        require(t < shard->config.vocab_size, where[i], ": token id ", t,
                " is outside the vocabulary [0, ", shard->config.vocab_size, ")");
      }
    }
    if (root) {  // a directory or no parent: refused now
      target = output_target(o.output, "spin generate: --output");
      require(!o.profile || !target.in_place, "spin generate: --profile writes its traces beside --output (", o.output,
              ".profile), and ", o.output, " is not a regular file: give --output a file");
    }
  });
  model::ModelWeights weights(shard->config, shard->dims, shard->chunks, 1, runtime.device(),
                              runtime.inference_storage());
  parallel::run_collectively(world, [&] {
    load_model_weights(*source, o.adapter, *shard, weights, runtime.kernels());
  });
  runtime.prepare(weights);
  const model::Transformer transformer(shard->config, shard->dims, shard->stage(), grid.tp(), runtime.kernels());
  generate::Generator generator(grid, transformer, weights);

  // Line j answers prompt j / K with its sample j % K (K = --num-samples), whose noise is keyed
  // by prompt + sample x prompts: sample 0's is the prompt's own. Rounds of --save-every prompts'
  // lines (all of them without), appended to <output>.partial by rank 0 as each ends; a run
  // started again with the same fingerprint goes on after the lines there.
  const std::int64_t samples = o.num_samples, prompt_count = static_cast<std::int64_t>(prompts.size());
  const std::int64_t total = prompt_count * samples;
  const std::int64_t round_size = o.save_every > 0 ? o.save_every * samples : std::max<std::int64_t>(total, 1);
  std::optional<ResumableOutput> out;  // world rank 0
  std::int64_t done = 0;
  parallel::run_collectively(world, [&] {
    if (!root) return;
    out.emplace(target, fingerprint(o, source->dir, prompts, truths), total);
    done = out->lines_done();
  });
  world.broadcast(&done, 1, 0);
  const std::int64_t resumed = done;
  if (root && resumed > 0) {
    std::printf("spin generate: %s holds %lld of the %lld lines: going on from there\n",
                out->partial_path().c_str(), static_cast<long long>(resumed), static_cast<long long>(total));
  }
  if (o.save_every > 0) install_stop_handlers();

  const bool progress = root && isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  std::int64_t round_start = done;  // for the progress line
  generate::Batching batching{o.batch_size, o.max_step_tokens, {}};
  if (progress) {
    batching.on_finished = [&](std::int64_t finished) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const std::int64_t now = round_start + finished * grid.dp_size();
      std::fprintf(stderr, "\rspin generate: ~%lld/%lld responses, %.1f responses/s", static_cast<long long>(now),
                   static_cast<long long>(total), static_cast<double>(now - resumed) / s);
      std::fflush(stderr);
    };
  }
  // --profile: a one-step window around the whole generation.
  ProfileWindow profile_window(o.profile ? 1 : 0, 0, o.output + ".profile", world.rank(), "--profile", "--profile");
  profile_window.before_step(1);
  std::optional<profile::Range> range(std::in_place, "generate", "prompts", (total - done) / samples);
  std::int64_t total_new = 0, rounds = 0;
  std::size_t cache_bytes = 0, buffer_bytes = 0;  // this rank's largest over the rounds
  bool stopped = false;
  while (done < total) {
    // This replica's lines of the round (every dp-th), --batch-size sequences in flight, a
    // finished one's slot refilled with the next.
    const std::int64_t end = std::min(total, done + round_size);
    std::vector<std::vector<std::int32_t>> batch;
    std::vector<std::uint64_t> ids;
    for (std::int64_t j = done; j < end; ++j) {
      if (j % grid.dp_size() != grid.dp_rank()) continue;
      batch.push_back(prompts[static_cast<std::size_t>(j / samples)]);
      ids.push_back(static_cast<std::uint64_t>(j / samples + (j % samples) * prompt_count));
    }
    round_start = done;
    std::vector<generate::Generation> results = generator.generate(batch, ids, o.params, batching);
    cache_bytes = std::max(cache_bytes, generator.stats().kv_cache_bytes);
    buffer_bytes = std::max(buffer_bytes, generator.stats().buffer_bytes);
    // Gathered on world rank 0 over the data-parallel group of (TP 0, PP 0), written in input order.
    if (grid.tp_rank() == 0 && grid.pp_rank() == 0) {
      const std::vector<std::vector<generate::Generation>> by_replica = gather_replicas(grid, std::move(results));
      if (root) {
        std::string lines;
        std::vector<std::size_t> next(by_replica.size(), 0);
        for (std::int64_t j = done; j < end; ++j) {
          const auto replica = static_cast<std::size_t>(j % grid.dp_size());
          const generate::Generation& g = by_replica[replica][next[replica]++];
          const auto pi = static_cast<std::size_t>(j / samples);
          total_new += static_cast<std::int64_t>(g.tokens.size());
          const std::optional<std::string> text =
              tokenizer ? std::optional(data::response_text(g.tokens, prompt_format, *tokenizer)) : std::nullopt;
          const std::string tail = samples > 1 ? cat(", \"sample\": ", j % samples) : "";
          lines += o.spin_data ? spin_record_line(prompts[pi], truths[pi], g, text, tail)
                               : json_line(prompts[pi], g, text, tail);
        }
        out->append(lines, end - done);
      }
    }
    done = end;
    ++rounds;
    raise_test_stop(world, "signal-after-round", rounds);
    if (o.save_every > 0 && done < total && stop_agreed(world, true)) {
      stopped = true;
      break;
    }
  }
  range.reset();
  profile_window.after_step(1);
  if (progress) std::fputc('\n', stderr);
  if (root && !profile_window.take_report().empty()) {
    std::printf("spin generate: profile in %s.profile/rank<r>.json (Chrome traces: ui.perfetto.dev)\n", o.output.c_str());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (stopped) {
    if (root) {
      std::printf("spin generate: stopped by %s after %lld of %lld prompts, their lines in %s; the same command "
                  "goes on from there\n",
                  stop_reason().c_str(),
                  static_cast<long long>(done / samples), static_cast<long long>(prompt_count),
                  out->partial_path().c_str());
      std::fflush(stdout);
    }
    return kExitRequeue;
  }
  if (!root) return 0;
  out->finish();
  std::printf("spin generate: %lld prompts%s%s, %lld new tokens in %.2f s (%.0f tokens/s), layout tp %d x pp %d x "
              "dp %d, wrote %s\n",
              static_cast<long long>((total - resumed) / samples), samples > 1 ? cat(" x ", samples, " samples").c_str() : "",
              resumed > 0 ? cat(" (after ", resumed / samples, " written before)").c_str() : "", static_cast<long long>(total_new),
              seconds, static_cast<double>(total_new) / std::max(seconds, 1e-9), grid.tp_size(), grid.pp_size(),
              grid.dp_size(), o.output.c_str());
  // Rank 0's (the first pipeline stage's): what spin plan's generation lines count.
  std::printf("spin generate: rank 0 held a KV cache of %s and activation buffers of %s\n",
              train::format_bytes(static_cast<std::int64_t>(cache_bytes)).c_str(),
              train::format_bytes(static_cast<std::int64_t>(buffer_bytes)).c_str());
  return 0;
}

}  // namespace spin::app
