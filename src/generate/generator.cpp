#include "generate/generator.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/profile.h"

namespace spin::generate {

namespace {

constexpr int kHeaderSizeTag = 21, kHeaderTag = 22, kHiddenTag = 23;
constexpr int kFeedbackSizeTag = 24, kFeedbackTag = 25;

// One step of one group as it travels down the pipeline: the active sequences (prompt index
// and cache slot), the tokens each feeds in (its prompt, or a chunk of it, at prefill; its last
// sampled token afterwards), the position of the first and the length of what is being fed: the
// prompt (or, after LongRoPE's switch, the whole sequence) a chunk belongs to, or the token's
// end. Coming back to the first stage, a sequence without tokens is one whose prefill goes on.
struct Step {
  std::vector<std::int64_t> samples, slots, positions, extents;
  std::vector<std::vector<std::int32_t>> tokens;

  void add(std::int64_t sample, std::int64_t slot, std::vector<std::int32_t> feed, std::int64_t position = 0,
           std::int64_t extent = 0) {
    samples.push_back(sample);
    slots.push_back(slot);
    positions.push_back(position);
    extents.push_back(extent);
    tokens.push_back(std::move(feed));
  }
  std::vector<std::int64_t> encode() const {
    std::vector<std::int64_t> out = {static_cast<std::int64_t>(slots.size())};
    for (std::size_t i = 0; i < slots.size(); ++i) {
      out.insert(out.end(),
                 {samples[i], slots[i], positions[i], extents[i], static_cast<std::int64_t>(tokens[i].size())});
      out.insert(out.end(), tokens[i].begin(), tokens[i].end());
    }
    return out;
  }
  static Step decode(const std::vector<std::int64_t>& in) {
    Step s;
    std::size_t at = 1;
    for (std::int64_t i = 0; i < in.at(0); ++i) {
      const auto n = static_cast<std::size_t>(in.at(at + 4));
      const auto from = in.begin() + static_cast<std::ptrdiff_t>(at + 5);
      s.add(in.at(at), in.at(at + 1), {from, from + static_cast<std::ptrdiff_t>(n)}, in.at(at + 2), in.at(at + 3));
      at += 5 + n;
    }
    return s;
  }
};

// The first stage's side of continuous batching: which prompts wait, which cache slots are
// free, how much of each sequence (`known`: the generator's history -- each sampled token joins it
// here as it is fed) has been fed, and what each group last sent down the pipeline (whatever of it
// does not come back has finished, and its slots are free again). With LongRoPE (`long_context`: ModelConfig::long_rope_context) a sequence that outgrows
// the short factors' context is fed again from its start, the whole of it on the long factors --
// as transformers' Phi-3 generation recomputes its cache there --, prefilled in chunks like a
// prompt.
class Admission {
 public:
  Admission(std::vector<std::vector<std::int32_t>>& known, std::int64_t slots, std::int64_t groups,
            std::int64_t max_tokens, std::int64_t max_chunk, std::int64_t long_context)
      : known_(known),
        max_tokens_(max_tokens),
        max_chunk_(max_chunk),
        long_context_(long_context),
        fed_(known.size(), 0),
        capacity_(static_cast<std::size_t>(groups)),
        sent_(static_cast<std::size_t>(groups)) {
    for (std::int64_t g = 0; g < groups; ++g) {
      capacity_[static_cast<std::size_t>(g)] = slots / groups + (g < slots % groups ? 1 : 0);
    }
    for (std::int64_t slot = slots - 1; slot >= 0; --slot) free_.push_back(slot);  // lowest first
  }

  // Group g's next step: what came back of its last one (`continuing`) plus waiting prompts
  // in the slots that freed up, as many as the group holds; the prompts being prefilled get
  // their next chunks, in the order they started.
  Step next(std::int64_t g, Step continuing) {
    const auto gi = static_cast<std::size_t>(g);
    for (const std::int64_t slot : sent_[gi]) {
      if (std::find(continuing.slots.begin(), continuing.slots.end(), slot) == continuing.slots.end()) {
        release(slot);
        ++finished_;
      }
    }
    while (static_cast<std::int64_t>(continuing.slots.size()) < capacity_[gi] &&
           waiting_ < static_cast<std::int64_t>(known_.size())) {
      const std::int64_t slot = free_.back();
      free_.pop_back();
      continuing.add(waiting_, slot, {});
      ++waiting_;
    }
    feed(continuing);
    sent_[gi] = continuing.slots;
    return continuing;
  }
  std::int64_t finished() const { return finished_; }

 private:
  // Every sequence feeds one token at least; the budget's rest goes to the prefills in order, a
  // sequence at most max_chunk_ tokens a call.
  void feed(Step& step) {
    std::int64_t spare = max_tokens_ - static_cast<std::int64_t>(step.slots.size());
    for (std::size_t i = 0; i < step.slots.size(); ++i) {
      const auto s = static_cast<std::size_t>(step.samples[i]);
      std::vector<std::int32_t>& known = known_[s];
      step.positions[i] = fed_[s];
      if (!step.tokens[i].empty()) {  // a decoding sequence's sampled token
        known.push_back(step.tokens[i].front());
        if (long_context_ == 0 || fed_[s] != long_context_) {
          ++fed_[s];
          continue;
        }
        step.tokens[i].clear();  // LongRoPE's switch: everything again, from position 0
        step.positions[i] = fed_[s] = 0;
      }
      const std::int64_t left = static_cast<std::int64_t>(known.size()) - fed_[s];
      std::int64_t n = max_tokens_ == 0 ? left : std::min(left, 1 + spare);
      if (max_chunk_ > 0) n = std::min(n, max_chunk_);
      spare -= n - 1;
      const auto from = known.begin() + static_cast<std::ptrdiff_t>(fed_[s]);
      step.tokens[i].assign(from, from + static_cast<std::ptrdiff_t>(n));
      step.extents[i] = static_cast<std::int64_t>(known.size());
      fed_[s] += n;
    }
  }
  void release(std::int64_t slot) {
    free_.insert(std::upper_bound(free_.begin(), free_.end(), slot, std::greater<>()), slot);
  }

  std::vector<std::vector<std::int32_t>>& known_;  // per prompt: it and the tokens sampled so far
  std::int64_t max_tokens_;             // per model call (0: no limit)
  std::int64_t max_chunk_;              // per sequence and model call (0: no limit)
  std::int64_t long_context_;           // LongRoPE's switch (0: none)
  std::vector<std::int64_t> fed_;       // per prompt: its tokens in the cache once the step has run
  std::vector<std::int64_t> capacity_;  // per group
  std::vector<std::vector<std::int64_t>> sent_;  // per group: the slots of its last step
  std::vector<std::int64_t> free_;      // free slots, the lowest at the back
  std::int64_t waiting_ = 0;            // the next prompt to start
  std::int64_t finished_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool ends_with(const std::vector<std::int32_t>& seq, const std::vector<std::int32_t>& tail) {
  return !tail.empty() && seq.size() >= tail.size() &&
         std::equal(tail.begin(), tail.end(), seq.end() - static_cast<std::ptrdiff_t>(tail.size()));
}

// Point-to-point moves of a generating stage. Feedback to the first stage is sent without
// blocking: the first stage may itself be blocked sending down the pipe, and a blocking send
// back would close a cycle. So is, under interleaving, what the last stage's chunks pass round
// to the first stage's next chunks.
class Links {
 public:
  explicit Links(parallel::Communicator& pp) : pp_(pp) {}
  ~Links() { finish(); }

  void send_step(const Step& step, int dest, int size_tag, int tag) {
    const std::vector<std::int64_t> payload = step.encode();
    const std::int64_t size = static_cast<std::int64_t>(payload.size());
    pp_.send(&size, 1, dest, size_tag);
    pp_.send(payload.data(), payload.size(), dest, tag);
  }
  void post_feedback(const Step& step) { post(pending_, step, kFeedbackSizeTag, kFeedbackTag); }
  // A step and its hidden states (`hidden`, copied: n floats) round to the first stage. The first
  // stage has taken a step of group g and chunk c once this stage runs g's chunk c + 1, which
  // comes from there: retire_oldest_round() then waits for nothing more than the transfer. The
  // hidden states go through host memory: a device send (NCCL's) would hold this stage's stream --
  // and the receives queued behind it -- until the first stage takes it, which it does only after
  // its own sends down the ring have been taken: a cycle. (recv_round takes them.)
  void post_round(const Step& step, const Tensor& hidden, std::size_t n) {
    Pending& p = post(rounds_, step, kHeaderSizeTag, kHeaderTag);
    if (n == 0) return;  // a group's end: no hidden states
    p.hidden = Tensor::zeros({static_cast<std::int64_t>(n)}, DType::F32, Device::Cpu);
    copy_bytes(p.hidden.raw(), Device::Cpu, hidden.raw(), hidden.device(), n * sizeof(float));
    p.hidden_send = pp_.isend(p.hidden.f32(), n, 0, kHiddenTag);
  }
  // The first stage's side: hidden states come round from the last stage into `into` (device).
  void recv_round(std::span<float> into, Device device) {
    if (!staging_.defined() || staging_.numel() < static_cast<std::int64_t>(into.size())) {
      staging_ = Tensor::zeros({static_cast<std::int64_t>(into.size())}, DType::F32, Device::Cpu);
    }
    pp_.recv(staging_.f32(), into.size(), pp_.size() - 1, kHiddenTag);
    copy_bytes(into.data(), device, staging_.raw(), Device::Cpu, into.size_bytes());
  }
  void retire_oldest_round() {
    if (rounds_.empty()) return;
    wait(rounds_.front());
    rounds_.pop_front();
  }
  Step recv_step(int source, int size_tag, int tag) {
    std::int64_t size = 0;
    pp_.recv(&size, 1, source, size_tag);
    std::vector<std::int64_t> payload(static_cast<std::size_t>(size));
    pp_.recv(payload.data(), payload.size(), source, tag);
    return Step::decode(payload);
  }
  void finish() {
    for (std::list<Pending>* list : {&rounds_, &pending_}) {
      for (Pending& p : *list) wait(p);
      list->clear();
    }
  }

 private:
  struct Pending {
    std::int64_t size = 0;
    std::vector<std::int64_t> payload;
    Tensor hidden;
    std::unique_ptr<parallel::PendingSend> size_send, payload_send, hidden_send;
  };
  Pending& post(std::list<Pending>& list, const Step& step, int size_tag, int tag) {
    Pending& p = list.emplace_back();
    p.payload = step.encode();
    p.size = static_cast<std::int64_t>(p.payload.size());
    p.size_send = pp_.isend(&p.size, 1, 0, size_tag);
    p.payload_send = pp_.isend(p.payload.data(), p.payload.size(), 0, tag);
    return p;
  }
  static void wait(Pending& p) {
    for (auto* op : {&p.size_send, &p.payload_send, &p.hidden_send}) {
      if (*op) (*op)->wait();
    }
  }
  parallel::Communicator& pp_;
  std::list<Pending> pending_;  // feedback; stable addresses while the sends are in flight
  std::list<Pending> rounds_;   // steps gone round to the first stage, oldest first
  Tensor staging_;              // the first stage's host buffer for what comes round
};

// Throws for an empty prompt, one with a token outside the vocabulary or one that leaves no room
// for max_new_tokens in the model's context; returns the longest prompt's length.
std::int64_t check_prompts(const std::vector<std::vector<std::int32_t>>& prompts, const std::vector<std::uint64_t>& ids,
                           const GenerationParams& params, const model::ModelConfig& config) {
  std::int64_t longest = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto len = static_cast<std::int64_t>(prompts[i].size());
    require(len >= 1, "generation: prompt ", ids[i], " is empty");
    require(len + params.max_new_tokens <= config.max_sequence_length(), "generation: prompt ", ids[i], " has ", len,
            " tokens; with max_new_tokens ", params.max_new_tokens, " it needs ", len + params.max_new_tokens,
            " positions but the model allows ", config.max_sequence_length());
    for (std::int32_t t : prompts[i]) {
      require(t >= 0 && t < config.vocab_size, "generation: prompt ", ids[i], " holds token id ", t,
              " outside the vocabulary [0, ", config.vocab_size, ")");
    }
    longest = std::max(longest, len);
  }
  return longest;
}

// Whether one of the end strings occurs in the response's text ending within the text its last
// token added (an occurrence before that would have stopped it already).
bool completes_end_string(const std::vector<std::int32_t>& tokens, const GenerationParams& params) {
  if (params.end_strings.empty()) return false;
  const std::string now = params.detokenize(tokens);
  const std::size_t before = params.detokenize({tokens.data(), tokens.size() - 1}).size();
  return std::any_of(params.end_strings.begin(), params.end_strings.end(), [&](const std::string& s) {
    return now.find(s, before + 1 > s.size() ? before + 1 - s.size() : 0) != std::string::npos;
  });
}

// The last stage's bookkeeping after sampling: each sampled sequence's token and whether it
// stops (EOS, an end sequence or end string once min_new_tokens are made, max_new_tokens); returns what
// goes on -- the sequences not sampled from (their prefill goes on) without tokens, the others
// with the token to feed.
Step record_choices(const Step& step, const std::vector<std::int64_t>& sampled, const std::vector<Sampled>& chosen,
                    const GenerationParams& params, std::vector<Generation>& results) {
  Step following;
  for (std::size_t i = 0, j = 0; i < step.slots.size(); ++i) {
    if (j == sampled.size() || sampled[j] != static_cast<std::int64_t>(i)) {
      following.add(step.samples[i], step.slots[i], {});
      continue;
    }
    const Sampled& c = chosen[j++];
    Generation& r = results[static_cast<std::size_t>(step.samples[i])];
    r.tokens.push_back(c.token);
    r.logprobs.push_back(c.logprob);
    const auto made = static_cast<std::int64_t>(r.tokens.size());
    bool stop = true;
    if (made >= params.min_new_tokens &&
        std::find(params.eos_ids.begin(), params.eos_ids.end(), c.token) != params.eos_ids.end()) {
      r.finish = FinishReason::Eos;
    } else if (made >= params.min_new_tokens &&
               std::any_of(params.end_sequences.begin(), params.end_sequences.end(),
                           [&](const auto& e) { return ends_with(r.tokens, e); })) {
      r.finish = FinishReason::EndSequence;
    } else if (made >= params.min_new_tokens && completes_end_string(r.tokens, params)) {
      r.finish = FinishReason::EndString;
    } else if (made >= params.max_new_tokens) {
      r.finish = FinishReason::Length;
    } else {
      stop = false;
    }
    if (!stop) following.add(step.samples[i], step.slots[i], {c.token});
  }
  return following;
}

// `root`'s responses (the last stage's) on every rank of `pp`: lengths and finish reasons,
// then the tokens and log-probabilities back to back.
void broadcast_results(parallel::Communicator& pp, int root, std::vector<Generation>& results) {
  std::vector<std::int64_t> heads;
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
  for (const Generation& r : results) {
    heads.push_back(static_cast<std::int64_t>(r.tokens.size()));
    heads.push_back(static_cast<std::int64_t>(r.finish));
    tokens.insert(tokens.end(), r.tokens.begin(), r.tokens.end());
    logprobs.insert(logprobs.end(), r.logprobs.begin(), r.logprobs.end());
  }
  pp.broadcast(heads.data(), heads.size(), root);
  std::size_t total = 0;
  for (std::size_t s = 0; s < results.size(); ++s) total += static_cast<std::size_t>(heads[2 * s]);
  tokens.resize(total);
  logprobs.resize(total);
  pp.broadcast(tokens.data(), tokens.size(), root);
  pp.broadcast(logprobs.data(), logprobs.size(), root);
  std::size_t at = 0;
  for (std::size_t s = 0; s < results.size(); ++s) {
    const auto n = static_cast<std::size_t>(heads[2 * s]);
    const auto from = static_cast<std::ptrdiff_t>(at), to = static_cast<std::ptrdiff_t>(at + n);
    results[s].tokens.assign(tokens.begin() + from, tokens.begin() + to);
    results[s].logprobs.assign(logprobs.begin() + from, logprobs.begin() + to);
    results[s].finish = static_cast<FinishReason>(heads[2 * s + 1]);
    at += n;
  }
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Eos: return "eos";
    case FinishReason::EndSequence: return "end_sequence";
    case FinishReason::EndString: return "end_string";
    case FinishReason::Length: return "length";
  }
  return "?";
}

void GenerationParams::validate(std::int64_t vocab_size) const {
  sampling.validate();
  require(max_new_tokens >= 1, "generation: max_new_tokens must be at least 1, got ", max_new_tokens);
  require(min_new_tokens >= 0 && min_new_tokens <= max_new_tokens,
          "generation: min_new_tokens must be in [0, max_new_tokens = ", max_new_tokens, "], got ",
          min_new_tokens);
  for (std::int32_t e : eos_ids) {
    require(e >= 0 && e < vocab_size, "generation: EOS id ", e, " is outside the vocabulary [0, ",
            vocab_size, ")");
  }
  for (const auto& seq : end_sequences) {
    require(!seq.empty(), "generation: an end sequence is empty");
    for (std::int32_t t : seq) {
      require(t >= 0 && t < vocab_size, "generation: end-sequence token ", t,
              " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
  for (const std::string& s : end_strings) require(!s.empty(), "generation: an end string is empty");
  require(end_strings.empty() || detokenize, "generation: end strings need the model's tokenizer to read the text");
}

std::int64_t min_step_tokens(std::int64_t in_flight, int stages) {
  return (in_flight + stages - 1) / stages;
}

void check_step_tokens(std::int64_t max_tokens, std::int64_t in_flight, int stages, const std::string& what) {
  const std::int64_t least = min_step_tokens(in_flight, stages);
  require(max_tokens == 0 || max_tokens >= least, what, " = ", max_tokens, " cannot feed the ", least,
          " sequences one model call holds (", in_flight, " in flight over ", stages,
          stages == 1 ? " pipeline stage" : " pipeline stages", "), one token each: allow at least ", least,
          ", or 0 for no limit");
}

Generator::Generator(const parallel::ProcessGrid& grid, const model::Transformer& transformer,
                     const model::ModelWeights& weights, const model::ModelWeights* adapters)
    : Generator(grid, model::TransformerChunks{&transformer}, weights, adapters) {}

Generator::Generator(const parallel::ProcessGrid& grid, model::TransformerChunks chunks,
                     const model::ModelWeights& weights, const model::ModelWeights* adapters)
    : grid_(grid), chunks_(std::move(chunks)), weights_(weights), adapters_(adapters) {
  require(!chunks_.empty(), "generation: a pipeline stage without a model chunk");
}

std::vector<Generation> Generator::generate(const std::vector<std::vector<std::int32_t>>& prompts,
                                            const std::vector<std::uint64_t>& sample_ids,
                                            const GenerationParams& params, const Batching& batching) {
  const model::Transformer& first_chunk = *chunks_.front();
  const model::ModelConfig& config = first_chunk.config();
  params.validate(config.vocab_size);
  require(sample_ids.size() == prompts.size(), "generation: ", sample_ids.size(), " ids for ",
          prompts.size(), " prompts");
  require(batching.max_batch >= 0, "generation: the batch size must not be negative, got ", batching.max_batch);
  const std::int64_t longest = check_prompts(prompts, sample_ids, params, config);
  stats_ = {};
  const auto batch = static_cast<std::int64_t>(prompts.size());
  if (batch == 0) return {};
  const std::int64_t slots = batching.max_batch == 0 ? batch : std::min(batching.max_batch, batch);

  parallel::Communicator& pp = grid_.pp();
  const int stages = grid_.pp_size();
  const auto chunks = static_cast<std::int64_t>(chunks_.size());
  const int next_rank = (pp.rank() + 1) % stages, previous_rank = (pp.rank() + stages - 1) % stages;
  check_step_tokens(batching.max_tokens, slots, stages, "generation: the tokens per model call");
  const int last_rank = stages - 1;
  // Mixed precision keeps the cache in bf16 too (half the memory of the longest phase). Windowed
  // layers keep a ring of their window and the most tokens a call feeds a sequence: a whole
  // prompt, or with LongRoPE a sequence fed again at the switch (L + 1 tokens), within the budget
  // and the windowed prefill chunk (model/kv_cache.h).
  const std::int64_t positions = longest + params.max_new_tokens, switch_at = config.long_rope_context();
  const std::int64_t rows_per_call = model::rows_per_call(
      config, positions > switch_at && switch_at > 0 ? std::max(longest, switch_at + 1) : longest, batching.max_tokens);
  std::vector<std::unique_ptr<model::KvCache>> caches;  // a chunk's layers each
  for (const model::Transformer* t : chunks_) {
    caches.push_back(std::make_unique<model::KvCache>(
        t->dims(), positions, model::kv_capacities(config, t->stage(), positions, rows_per_call), slots, t->device(),
        weights_.has_bf16() ? DType::BF16 : DType::F32));
  }
  const VocabParallelSampler sampler(first_chunk.dims(), grid_.tp(), first_chunk.kernels(), params.sampling,
                                     params.seed, params.eos_ids);
  model::Activations acts;
  Tensor input_buffer;  // hidden states from the previous stage, on the device
  Links links(pp);

  // Per-prompt state, the same on every stage: the tokens so far.
  std::vector<std::vector<std::int32_t>> history = prompts;
  std::vector<Generation> results(static_cast<std::size_t>(batch));

  // Groups take turns so that the stages of a pipeline have work in flight; each holds its
  // share of the slots.
  const std::int64_t groups = stages == 1 ? 1 : std::min<std::int64_t>(stages, slots);
  Admission admission(history, slots, groups, batching.max_tokens, model::windowed_prefill_chunk(config),
                      config.long_rope_context());  // first stage
  std::vector<Step> next(static_cast<std::size_t>(groups));  // first stage without feedback: the groups' next steps
  std::vector<bool> started(static_cast<std::size_t>(groups), false);
  // By chunk and group. Under interleaving a group's step goes round the ring once a chunk (stage
  // 0, 1, ..., p - 1, then stage 0's next chunk), so each stage runs, a chunk after the other, every
  // group's step through it -- the order in which they reach it.
  std::vector<std::vector<bool>> done(chunks_.size(), std::vector<bool>(static_cast<std::size_t>(groups), false));

  for (std::int64_t open = groups * chunks; open > 0;) {
    for (std::int64_t g = 0, c = 0; c < chunks; g = (g + 1) % groups, c += g == 0 ? 1 : 0) {
      const auto gi = static_cast<std::size_t>(g);
      const model::Transformer& transformer = *chunks_[static_cast<std::size_t>(c)];
      const model::StageLayers& stage = transformer.stage();
      if (done[static_cast<std::size_t>(c)][gi]) continue;
      // The last stage's step of this group through the previous chunk has reached the first
      // stage (it is what this step comes from).
      if (c > 0 && pp.rank() == last_rank) links.retire_oldest_round();
      Step step;
      if (!stage.first) {
        step = links.recv_step(previous_rank, kHeaderSizeTag, kHeaderTag);
      } else {
        const std::int64_t finished = admission.finished();
        step = admission.next(g, !started[gi] || stages == 1 ? std::move(next[gi])
                                                             : links.recv_step(last_rank, kFeedbackSizeTag, kFeedbackTag));
        started[gi] = true;
        if (batching.on_finished && admission.finished() > finished) batching.on_finished(admission.finished());
      }
      const bool round = !stage.last && next_rank == 0;  // to the first stage's next chunk
      if (step.slots.empty()) {  // the group has finished: pass the word on
        if (round) {
          links.post_round(step, Tensor(), 0);
        } else if (!stage.last) {
          links.send_step(step, next_rank, kHeaderSizeTag, kHeaderTag);
        }
        done[static_cast<std::size_t>(c)][gi] = true;
        --open;
        continue;
      }

      std::vector<model::Sequence> seqs;
      std::vector<std::int64_t> sampled;  // the sequences whose prompt this call completes or that decode
      std::int64_t rows = 0;
      for (std::size_t i = 0; i < step.slots.size(); ++i) {
        std::vector<std::int32_t>& known = history[static_cast<std::size_t>(step.samples[i])];
        const std::vector<std::int32_t>& feed = step.tokens[i];
        const std::int64_t position = step.positions[i], end = position + static_cast<std::int64_t>(feed.size());
        // A sampled token (fed past what is known) is now part of the sequence on every stage (the
        // first stage's Admission has added it already).
        const auto known_length = static_cast<std::int64_t>(known.size());
        if (end > known_length) known.insert(known.end(), feed.end() - (end - known_length), feed.end());
        // What this call feeds completes a prompt (or a sequence fed again) or is a sampled token.
        if (step.extents[i] == 0 || end == step.extents[i]) sampled.push_back(static_cast<std::int64_t>(i));
        seqs.push_back({feed, 1, position, -1, step.extents[i]});
        rows += static_cast<std::int64_t>(feed.size());
      }
      std::span<float> input;
      if (!stage.first) {
        const std::int64_t floats = rows * transformer.dims().hidden;
        if (!input_buffer.defined() || input_buffer.numel() < floats) {
          input_buffer = Tensor::zeros({floats}, DType::F32, transformer.device());
        }
        input = {input_buffer.f32(), static_cast<std::size_t>(floats)};
        if (pp.rank() == 0) {  // round from the last stage (a chunk after the first)
          links.recv_round(input, transformer.device());
        } else {
          pp.recv(input.data(), input.size(), previous_rank, kHiddenTag);
        }
      }
      const auto model_start = std::chrono::steady_clock::now();
      {
        const profile::Range range("model call", "sequences", static_cast<std::int64_t>(seqs.size()));
        transformer.forward_cached(weights_, model::TokenBatch::pack(seqs), step.slots,
                                   *caches[static_cast<std::size_t>(c)], acts, input, sampled, adapters_);
      }
      stats_.model_seconds += seconds_since(model_start);
      if (round) {
        links.post_round(step, acts.stage_output, static_cast<std::size_t>(acts.stage_output.numel()));
        continue;
      }
      if (!stage.last) {
        links.send_step(step, next_rank, kHeaderSizeTag, kHeaderTag);
        pp.send(acts.stage_output.f32(), static_cast<std::size_t>(acts.stage_output.numel()), next_rank, kHiddenTag);
        continue;
      }

      // Last stage: choose the next token of every sequence past its prompt and decide who goes on.
      std::vector<SampleRow> sample_rows;
      for (std::int64_t i : sampled) {
        const auto si = static_cast<std::size_t>(step.samples[static_cast<std::size_t>(i)]);
        sample_rows.push_back({sample_ids[si], static_cast<std::int64_t>(history[si].size()), history[si],
                               static_cast<std::int64_t>(results[si].tokens.size()) < params.min_new_tokens});
      }
      const auto sampling_start = std::chrono::steady_clock::now();
      std::optional<profile::Range> sampling_range(std::in_place, "sampling", "sequences",
                                                   static_cast<std::int64_t>(sample_rows.size()));
      const std::vector<Sampled> chosen =
          sample_rows.empty() ? std::vector<Sampled>() : sampler.sample(acts.head.logits.f32(), sample_rows);
      sampling_range.reset();
      stats_.sampling_seconds += seconds_since(sampling_start);
      stats_.rows_per_step.push_back(static_cast<std::int64_t>(step.slots.size()));
      stats_.tokens_per_step.push_back(rows);
      Step following = record_choices(step, sampled, chosen, params, results);
      if (stages == 1) {
        next[gi] = std::move(following);
      } else {
        links.post_feedback(following);
      }
    }
  }
  links.finish();

  for (const auto& cache : caches) stats_.kv_cache_bytes += cache->bytes();
  stats_.slots = slots;
  stats_.buffer_bytes = acts.bytes();  // buffers only grow: the largest call's
  // The last stage knows the responses; every rank of the replica returns them.
  if (stages > 1) broadcast_results(pp, last_rank, results);
  for (std::size_t s = 0; s < results.size(); ++s) {
    stats_.new_tokens += static_cast<std::int64_t>(results[s].tokens.size());
    stats_.prompt_tokens += static_cast<std::int64_t>(prompts[s].size());
  }
  return results;
}

}  // namespace spin::generate
