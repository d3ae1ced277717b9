// Generator: batched autoregressive decoding with a KV cache over TP x PP ranks.
// Prompts are prefilled (in one pass each, or in chunks under a token budget per model call) and
// then advance one token per step; a sequence that stops (EOS after min_new_tokens, an end
// sequence or end string, max_new_tokens) leaves the batch, and with more prompts than the batch holds its
// cache slot goes to the next waiting prompt, whose prefill joins the others' next decoding
// step (continuous batching). Under
// pipeline parallelism the batch is split into as many groups as there are stages and the
// groups take turns, so that while one group crosses the pipeline the other stages work on the
// others; the last stage samples (vocab-parallel, see sampling.h) and sends the chosen tokens to
// the first stage. Tokens depend only on (seed, prompt id, position), never on the layout or
// the batch: the same seed gives the same responses for any TP / PP / DP layout.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "generate/sampling.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace spin::generate {

struct GenerationParams {
  SamplingParams sampling;
  std::int64_t max_new_tokens = 128;
  std::int64_t min_new_tokens = 0;  // EOS is banned and no stop applies before this many
  std::vector<std::int32_t> eos_ids;
  std::vector<std::vector<std::int32_t>> end_sequences;  // stop after any of these
  // Text that ends a response once generated (Hugging Face's stop_strings, NeMo's end_strings,
  // vLLM's stop): an occurrence in `detokenize` of the response that ends within the last
  // token's text stops it, the whole token kept. Matched in decoded text, so special tokens
  // (left out of it) are for eos_ids and end_sequences.
  std::vector<std::string> end_strings;
  std::function<std::string(std::span<const std::int32_t>)> detokenize;  // needed with end_strings
  std::uint64_t seed = 1234;

  void validate(std::int64_t vocab_size) const;  // throws naming the bad value
};

enum class FinishReason { Eos, EndSequence, EndString, Length };
const char* finish_reason_name(FinishReason r);

struct Generation {
  std::vector<std::int32_t> tokens;  // the response, with the EOS or end sequence that ended it
  std::vector<float> logprobs;       // per token, under the full softmax of the raw logits
  FinishReason finish = FinishReason::Length;
};

// How generate() batches its prompts.
struct Batching {
  // Sequences in flight at once: the KV cache's slots (0: every prompt at once). Prompts start
  // in order; when a sequence finishes, the next waiting prompt takes its slot at the next step.
  std::int64_t max_batch = 0;
  // Tokens one model call processes at most (0: no limit), vLLM's max_num_batched_tokens:
  // decoding sequences feed one each and prompts are prefilled in chunks of what is left, so
  // the activation buffers hold this many rows however long the prompts are. A chunk's keys
  // and values join the cache like a decoded token's; a prompt is sampled from once its last
  // chunk has run. Every sequence in flight feeds at least one token per call: the budget must
  // be at least min_step_tokens(max_batch, pipeline stages). Budget or not, a model with sliding
  // windows feeds a sequence at most its window a call (model::windowed_prefill_chunk), which
  // bounds its windowed layers' KV rings (model/kv_cache.h).
  std::int64_t max_tokens = 0;
  // Called on the first pipeline stage whenever sequences finish, with how many have so far
  // (the stage that runs spin generate's progress line).
  std::function<void(std::int64_t finished)> on_finished;
};

struct GenerationStats {
  std::vector<std::int64_t> rows_per_step;    // sequences in each model call (last stage)
  std::vector<std::int64_t> tokens_per_step;  // tokens fed in each model call (last stage)
  std::int64_t slots = 0;                   // the KV cache's
  std::int64_t prompt_tokens = 0;
  std::int64_t new_tokens = 0;
  double model_seconds = 0.0;     // this rank, in the model's forward passes
  double sampling_seconds = 0.0;  // this rank, choosing tokens (last stage)
  std::size_t kv_cache_bytes = 0;  // this rank's KV cache
  std::size_t buffer_bytes = 0;    // this rank's activation buffers
};

// The least Batching::max_tokens for `in_flight` sequences (> 0) over `stages` pipeline
// stages: the sequences of one group, which take turns, one token each.
std::int64_t min_step_tokens(std::int64_t in_flight, int stages);
// Throws spin::Error, naming the setting as `what` (e.g. "spin generate: --max-step-tokens"),
// unless max_tokens is 0 (no limit) or at least min_step_tokens(in_flight, stages).
void check_step_tokens(std::int64_t max_tokens, std::int64_t in_flight, int stages, const std::string& what);

class Generator {
 public:
  // `adapters`: LoRA adapters the model runs with (model/lora.h; the policy of a LoRA run).
  Generator(const parallel::ProcessGrid& grid, const model::Transformer& transformer,
            const model::ModelWeights& weights, const model::ModelWeights* adapters = nullptr);
  // Interleaved pipeline stages: one Transformer a model chunk of this stage (model::stage_chunks), in
  // model order. A group's step goes round the stages once a chunk, its keys and values in each
  // chunk's own cache, and is sampled at the last stage's last chunk; the same tokens as without.
  Generator(const parallel::ProcessGrid& grid, model::TransformerChunks chunks, const model::ModelWeights& weights,
            const model::ModelWeights* adapters = nullptr);

  // Responses to `prompts`; sample_ids[i] keys prompt i's sampling noise (use its index in the
  // data set). Collective over this data-parallel replica (its TP x PP ranks); every rank
  // returns the same responses, whatever `batching` is. Throws spin::Error before any work for
  // an empty prompt or one that cannot fit max_new_tokens more tokens in the model's context.
  std::vector<Generation> generate(const std::vector<std::vector<std::int32_t>>& prompts,
                                   const std::vector<std::uint64_t>& sample_ids,
                                   const GenerationParams& params, const Batching& batching = {});

  const GenerationStats& stats() const { return stats_; }

 private:
  const parallel::ProcessGrid& grid_;
  model::TransformerChunks chunks_;
  const model::ModelWeights& weights_;
  const model::ModelWeights* adapters_;
  GenerationStats stats_;
};

}  // namespace spin::generate
