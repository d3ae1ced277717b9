#include "generate/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::generate {
namespace {

struct TinyGenerator {
  explicit TinyGenerator(testing::TinyShape shape = {}) : config(testing::tiny_config(shape)) {
    testing::init_tiny_weights(weights, 11, 0.5f, config.norm_weight_offset);
  }

  parallel::SelfCommunicator world;
  parallel::ProcessGrid grid{world, {1, 1, 1}};
  model::ModelConfig config;  // vocab 37, 64 positions
  model::TpDims dims = model::tp_dims(config, 0, 1);
  kernels::CpuKernels cpu;
  model::ModelWeights weights{config, dims};
  model::Transformer transformer{config, dims, grid.tp(), cpu};
  Generator generator{grid, transformer, weights};
};

// The tiny model as a Llama, a Mistral (3-key windows in every layer), a Gemma 3 (windows in
// one layer of two with their own RoPE table; tied embeddings), a SmolLM3 (its second layer's
// cached keys unrotated), a Phi-4-mini (half of each head rotating), an OLMo (LayerNorms without
// parameters), an OLMo 2 (q and k normed across their heads before they are cached) and a StableLM
// (LayerNorms with biases, half of each head rotating; again with attention and MLP side by side), and a
// Cohere (keys cached rotated in interleaved pairs; Cohere 2's global layer's unrotated, its windowed one's within
// 3 keys), a Mixtral and a Qwen2-MoE (routed per row, a shared expert beside), and Command R+'s and StableLM 2
// 12B's per-head LayerNorms of q and k before their keys are cached, and a GraniteMoE (Granite's
// multipliers over Mixtral's mixture).
constexpr testing::TinyFamily kFamilies[] = {
    testing::TinyFamily::Llama,        testing::TinyFamily::Mistral,       testing::TinyFamily::Gemma3,
    testing::TinyFamily::SmolLM3,      testing::TinyFamily::Phi4Mini,      testing::TinyFamily::Olmo,
    testing::TinyFamily::Olmo2,        testing::TinyFamily::StableLm,      testing::TinyFamily::StableLmParallel,
    testing::TinyFamily::Cohere,       testing::TinyFamily::Cohere2,       testing::TinyFamily::GptNeox,
    testing::TinyFamily::Phi,          testing::TinyFamily::Mixtral,       testing::TinyFamily::Qwen2Moe,
    testing::TinyFamily::CohereQkNorm, testing::TinyFamily::StableLmQkNorm, testing::TinyFamily::GraniteMoe,
    testing::TinyFamily::Glm4,         testing::TinyFamily::Exaone4,      testing::TinyFamily::Glm4Moe,
    testing::TinyFamily::DeepseekV3,   testing::TinyFamily::DeepseekV2};
testing::TinyShape family_shape(testing::TinyFamily family) {
  testing::TinyShape shape;
  shape.family = family;
  shape.tie = family == testing::TinyFamily::Gemma3;
  return shape;
}

std::vector<std::vector<std::int32_t>> prompts() {
  return {testing::random_ids(5, 37, 1), testing::random_ids(1, 37, 2), testing::random_ids(9, 37, 3),
          testing::random_ids(3, 37, 4)};
}

std::vector<std::uint64_t> ids(std::size_t n, std::uint64_t first = 0) {
  std::vector<std::uint64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = first + i;
  return out;
}

// Each response's recorded log-probabilities are those of one full forward over prompt + response.
void expect_full_forward_logprobs(const TinyGenerator& t, const std::vector<std::vector<std::int32_t>>& ps,
                                  const std::vector<Generation>& out) {
  for (std::size_t i = 0; i < ps.size(); ++i) {
    std::vector<std::int32_t> full = ps[i];
    full.insert(full.end(), out[i].tokens.begin(), out[i].tokens.end());
    const model::ForwardResult r = t.transformer.forward(t.weights, model::TokenBatch::pack({{full, 1}}));
    // token_logprobs[j] is log p(full[j + 1]); the response starts at j = prompt length - 1.
    const std::vector<float> want(r.token_logprobs.begin() + static_cast<std::ptrdiff_t>(ps[i].size() - 1),
                                  r.token_logprobs.end() - 1);
    testing::expect_close(out[i].logprobs, want, 1e-5, 1e-5, "logprobs");
  }
}

// The log-probabilities recorded while decoding with the KV cache equal those of one full
// forward over prompt + response -- also under sliding windows (Mistral's 3 keys in every layer,
// Gemma 3's in one layer of two with its own RoPE table), which the sequences outgrow while
// decoding: prefill and decode read the cache's window, the full forward its packed rows'.
TEST(Generator, KvCacheLogprobsEqualAFullForward) {
  for (const testing::TinyFamily family : kFamilies) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    TinyGenerator t(family_shape(family));
    GenerationParams p;
    p.max_new_tokens = 12;
    const auto ps = prompts();
    const auto out = t.generator.generate(ps, ids(ps.size()), p);
    for (const Generation& g : out) ASSERT_EQ(g.tokens.size(), 12u);
    expect_full_forward_logprobs(t, ps, out);
  }
}

// A LoRA policy's generation (the adapters over the frozen model, every projection adapted): the log-probabilities
// recorded while decoding with the KV cache equal those of one full forward with the adapters -- over latent
// attention's absorbed cache too, where kv_b_proj's adapter adds its terms to the absorbed queries and the
// outputs (DeepSeek-V3's; V2's q_proj without a latent), and a Llama's.
TEST(Generator, LoraAdaptersKvCacheLogprobsEqualAFullForward) {
  for (const testing::TinyFamily family :
       {testing::TinyFamily::DeepseekV3, testing::TinyFamily::DeepseekV2, testing::TinyFamily::Llama}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    TinyGenerator t(family_shape(family));
    const model::LoraConfig lora = testing::tiny_lora(t.config, 4);
    model::ModelWeights adapters =
        model::ModelWeights::adapters(t.config, lora, t.dims, model::StageLayers::whole(t.config.num_layers));
    testing::randomize_matrices(adapters, 5, 0.3f);
    Generator generator(t.grid, t.transformer, t.weights, &adapters);
    GenerationParams p;
    p.max_new_tokens = 10;
    const auto ps = prompts();
    const auto out = generator.generate(ps, ids(ps.size()), p);
    double moved = 0.0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      std::vector<std::int32_t> full = ps[i];
      full.insert(full.end(), out[i].tokens.begin(), out[i].tokens.end());
      model::Activations acts;
      const auto with =
          t.transformer.forward(t.weights, model::TokenBatch::pack({{full, 1}}), acts, false, {}, &adapters);
      const auto without = t.transformer.forward(t.weights, model::TokenBatch::pack({{full, 1}}));
      const std::vector<float> want(with.token_logprobs.begin() + static_cast<std::ptrdiff_t>(ps[i].size() - 1),
                                    with.token_logprobs.end() - 1);
      testing::expect_close(out[i].logprobs, want, 1e-5, 1e-5, "logprobs");
      for (std::size_t j = 0; j < want.size(); ++j) {
        moved = std::max(moved, std::fabs(double{want[j]} - without.token_logprobs[ps[i].size() - 1 + j]));
      }
    }
    EXPECT_GT(moved, 1e-2);  // the adapters change the model
  }
}

// A windowed layer's KV cache is a ring of its window and the most tokens one call feeds a
// sequence (model/kv_cache.h): Mistral (3-key windows in every layer) and Gemma 3 (in one layer
// of two) generating 40 tokens past prompts of up to 9, with no budget and budgets of 2 and 5
// tokens a call, a prompt's chunks at most the window's 3 tokens: the cache holds exactly those
// rows -- 5 or 4 of the 49 positions in the windowed layers -- and every token's log-probability
// is still the full forward's.
TEST(Generator, WindowedLayersKeepARingOfTheWindowAndACallsTokens) {
  for (const testing::TinyFamily family : {testing::TinyFamily::Mistral, testing::TinyFamily::Gemma3}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    TinyGenerator t(family_shape(family));
    ASSERT_TRUE(t.config.sliding_window.has_value());
    GenerationParams p;
    p.max_new_tokens = 40;
    const auto ps = prompts();
    const std::int64_t longest = 9, positions = longest + p.max_new_tokens, window = *t.config.sliding_window;
    for (const std::int64_t budget : {0, 2, 5}) {
      const auto out = t.generator.generate(ps, ids(ps.size()), p, {2, budget, {}});
      const std::int64_t per_call = std::min(budget > 0 ? std::min(budget, longest) : longest, window);
      std::int64_t rows = 0, windowed = 0;
      for (std::int64_t l = 0; l < t.config.num_layers; ++l) {
        rows += t.config.windowed(l) ? window + per_call - 1 : positions;
        windowed += t.config.windowed(l) ? 1 : 0;
      }
      ASSERT_GT(windowed, 0);
      EXPECT_EQ(t.generator.stats().kv_cache_bytes,
                static_cast<std::size_t>(2 * 2 * rows * t.dims.kv_width()) * sizeof(float))
          << "budget " << budget;
      expect_full_forward_logprobs(t, ps, out);
    }
  }
}

// A call that feeds a sequence more tokens than a windowed layer's ring was sized for would
// overwrite keys before its first rows read them: refused, naming the sequence and the layer.
TEST(Generator, ACallTooLongForARingIsRefused) {
  TinyGenerator t(family_shape(testing::TinyFamily::Mistral));  // 3-key windows in every layer
  const model::StageLayers whole = model::StageLayers::whole(t.config.num_layers);
  model::KvCache cache(t.dims, 16, model::kv_capacities(t.config, whole, 16, 2), 1);  // rings of 3 + 2 - 1 rows
  ASSERT_EQ(cache.capacity(0), 4);
  model::Activations acts;
  const std::vector<std::int64_t> slot = {0};
  t.transformer.forward_cached(t.weights, model::TokenBatch::pack({{testing::random_ids(2, 37, 1), 1}}), slot, cache,
                               acts, {}, std::vector<std::int64_t>{0});
  try {
    t.transformer.forward_cached(t.weights, model::TokenBatch::pack({{testing::random_ids(3, 37, 2), 1, 2}}), slot,
                                 cache, acts, {}, std::vector<std::int64_t>{0});
    FAIL() << "3 tokens from position 2 read 5 positions of a 4-row ring";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sequence 0 3 tokens from position 2, which read 5 cached positions of "
                                         "layer 0, which keeps 4"),
              std::string::npos)
        << e.what();
  }
}

TEST(Generator, GreedyDecodingIsTheArgmaxOfTheFullForward) {
  TinyGenerator t;
  GenerationParams p;
  p.sampling.greedy = true;
  p.max_new_tokens = 6;
  const auto ps = prompts();
  const auto out = t.generator.generate(ps, ids(ps.size()), p);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    std::vector<std::int32_t> seq = ps[i];
    for (std::int32_t produced : out[i].tokens) {
      model::Activations acts;
      const model::TokenBatch b = model::TokenBatch::pack({{seq, 1}});
      t.transformer.forward(t.weights, b, acts, false);
      const float* last = acts.head.logits.f32() + (b.rows() - 1) * t.dims.vocab_rows;
      EXPECT_EQ(produced, std::max_element(last, last + t.config.vocab_size) - last);
      seq.push_back(produced);
    }
  }
}

// A prompt's response depends on its id and the seed, not on the batch around it.
TEST(Generator, ResponsesDoNotDependOnBatchSizeOrOrder) {
  TinyGenerator t;
  GenerationParams p;
  p.max_new_tokens = 10;
  p.sampling.top_p = 0.9f;
  const auto ps = prompts();
  const auto all = t.generator.generate(ps, ids(ps.size()), p);
  const auto reversed = t.generator.generate({ps[3], ps[2], ps[1], ps[0]}, {3, 2, 1, 0}, p);
  const auto alone = t.generator.generate({ps[2]}, {2}, p);
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(reversed[3 - i].tokens, all[i].tokens);
  EXPECT_EQ(alone[0].tokens, all[2].tokens);
  EXPECT_NE(t.generator.generate({ps[2]}, {7}, p)[0].tokens, all[2].tokens) << "another id, other noise";
}

TEST(Generator, StopsAtEosEndSequencesAndLengthAndFinishedSequencesLeaveTheBatch) {
  TinyGenerator t;
  GenerationParams greedy;
  greedy.sampling.greedy = true;
  greedy.max_new_tokens = 8;
  const auto ps = prompts();
  const auto free_run = t.generator.generate(ps, ids(ps.size()), greedy);

  // EOS = prompt 0's third greedy token: it stops there; the others run to max_new_tokens
  // unless they meet it too.
  GenerationParams eos = greedy;
  eos.eos_ids = {free_run[0].tokens[2]};
  auto out = t.generator.generate(ps, ids(ps.size()), eos);
  EXPECT_EQ(out[0].finish, FinishReason::Eos);
  EXPECT_EQ(out[0].tokens, std::vector<std::int32_t>(free_run[0].tokens.begin(), free_run[0].tokens.begin() + 3));
  const auto& rows = t.generator.stats().rows_per_step;
  EXPECT_EQ(rows.front(), 4);
  EXPECT_TRUE(std::is_sorted(rows.rbegin(), rows.rend())) << "the batch only shrinks";
  EXPECT_LT(rows.back(), 4) << "the finished sequence left the batch";

  // min_new_tokens bans EOS (and every stop) before 5 tokens.
  eos.min_new_tokens = 5;
  out = t.generator.generate(ps, ids(ps.size()), eos);
  EXPECT_GE(out[0].tokens.size(), 5u);
  for (std::size_t j = 0; j + 1 < out[0].tokens.size(); ++j) EXPECT_NE(out[0].tokens[j], eos.eos_ids[0]);

  // An end sequence: prompt 2's greedy tokens 2..3.
  GenerationParams end = greedy;
  end.end_sequences = {{free_run[2].tokens[2], free_run[2].tokens[3]}};
  out = t.generator.generate(ps, ids(ps.size()), end);
  EXPECT_EQ(out[2].finish, FinishReason::EndSequence);
  EXPECT_LE(out[2].tokens.size(), 4u);
  EXPECT_EQ(out[1].finish, out[1].tokens.size() == 8 ? FinishReason::Length : FinishReason::EndSequence);

  // An end string, in a text of two letters per token: the second letter of prompt 3's greedy
  // token 2 and the first of its token 3 -- an occurrence that ends inside token 3's text, which
  // stops the response there (the whole token kept).
  GenerationParams text = greedy;
  text.detokenize = [](std::span<const std::int32_t> ids) {
    std::string s;
    for (std::int32_t id : ids) s += {static_cast<char>('a' + id % 26), static_cast<char>('A' + id / 26)};
    return s;
  };
  const std::string letters = text.detokenize(free_run[3].tokens);
  const std::string stop = letters.substr(5, 2);
  ASSERT_EQ(letters.find(stop), 5u) << "the test needs the string's first occurrence there";
  text.end_strings = {stop, "never"};
  out = t.generator.generate(ps, ids(ps.size()), text);
  EXPECT_EQ(out[3].finish, FinishReason::EndString);
  EXPECT_EQ(out[3].tokens, std::vector<std::int32_t>(free_run[3].tokens.begin(), free_run[3].tokens.begin() + 4));
  EXPECT_STREQ(finish_reason_name(out[3].finish), "end_string");
}

// Continuous batching: with fewer cache slots than prompts, a finished sequence's slot takes the
// next prompt at the very next step, and the responses are those of one batch holding all.
TEST(Generator, ContinuousBatchingRefillsFinishedSlotsAndGivesTheSameResponses) {
  TinyGenerator t;
  std::vector<std::vector<std::int32_t>> ps;
  for (int i = 0; i < 9; ++i) ps.push_back(testing::random_ids(static_cast<std::size_t>(1 + (i * 7) % 11), 37, 20 + i));
  GenerationParams p;
  p.max_new_tokens = 12;
  p.sampling.top_p = 0.95f;
  p.eos_ids = {3, 8, 30};  // stops some sequences early, at different lengths
  const auto all = t.generator.generate(ps, ids(ps.size()), p);
  std::vector<std::int64_t> lengths;
  for (const Generation& g : all) lengths.push_back(static_cast<std::int64_t>(g.tokens.size()));
  ASSERT_GT(std::count_if(all.begin(), all.end(), [](const Generation& g) { return g.finish == FinishReason::Eos; }), 2)
      << "the test needs responses of different lengths";

  for (std::int64_t slots : {1, 2, 4}) {
    std::vector<std::int64_t> reported;
    const Batching batching{slots, 0, [&](std::int64_t finished) { reported.push_back(finished); }};
    const auto got = t.generator.generate(ps, ids(ps.size()), p, batching);
    for (std::size_t i = 0; i < ps.size(); ++i) {
      EXPECT_EQ(got[i].tokens, all[i].tokens) << "prompt " << i << " with " << slots << " slots";
      EXPECT_EQ(got[i].finish, all[i].finish);
      testing::expect_close(got[i].logprobs, all[i].logprobs, 1e-5, 1e-5, "logprobs");
    }
    const GenerationStats& st = t.generator.stats();
    EXPECT_EQ(st.slots, slots);
    // The sequences in each step, simulated: prompts start in order as slots free up.
    std::vector<std::int64_t> want, active;
    std::size_t waiting = 0;
    while (waiting < ps.size() || !active.empty()) {
      while (static_cast<std::int64_t>(active.size()) < slots && waiting < ps.size()) active.push_back(lengths[waiting++]);
      want.push_back(static_cast<std::int64_t>(active.size()));
      for (auto& left : active) --left;
      std::erase(active, 0);
    }
    EXPECT_EQ(st.rows_per_step, want) << slots << " slots";
    ASSERT_FALSE(reported.empty());
    EXPECT_TRUE(std::is_sorted(reported.begin(), reported.end()));
    EXPECT_EQ(reported.back(), static_cast<std::int64_t>(ps.size())) << "every response is reported finished";
  }
  EXPECT_EQ(t.generator.generate(ps, ids(ps.size()), p, {100, 0, {}}).size(), ps.size()) << "more slots than prompts";
  EXPECT_EQ(t.generator.stats().slots, static_cast<std::int64_t>(ps.size()));
}

// Chunked prefill: under a budget of tokens per model call, prompts are fed in chunks of what
// the decoding sequences leave (each sequence one token at least; under sliding windows at most
// the window: model::windowed_prefill_chunk) and sampled from after their last chunk. The
// responses and log-probabilities are those of whole-prompt prefills -- also under sliding
// windows that the chunks cross --, every token is fed exactly once, each call's sequences and
// tokens are those of a simulation of the rule, and the buffers shrink.
TEST(Generator, ChunkedPrefillGivesTheSameResponsesUnderATokenBudget) {
  for (const testing::TinyFamily family : kFamilies) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    TinyGenerator t(family_shape(family));
    std::vector<std::vector<std::int32_t>> ps;
    for (int i = 0; i < 7; ++i) ps.push_back(testing::random_ids(static_cast<std::size_t>(1 + (i * 9) % 23), 37, 40 + i));
    GenerationParams p;
    p.max_new_tokens = 8;
    p.sampling.top_p = 0.95f;
    p.sampling.repetition_penalty = 1.3f;  // reads each sequence's tokens so far: prompt chunks counted once
    p.eos_ids = {3, 8, 30};
    const auto whole = t.generator.generate(ps, ids(ps.size()), p, {3, 0, {}});
    const std::size_t whole_buffers = t.generator.stats().buffer_bytes;
    const std::vector<std::int64_t>& whole_calls = t.generator.stats().tokens_per_step;
    const std::int64_t whole_largest = *std::max_element(whole_calls.begin(), whole_calls.end());
    const std::int64_t chunk = model::windowed_prefill_chunk(t.config);  // 3 or 4 with windows, else 0
    std::int64_t fed = 0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      fed += static_cast<std::int64_t>(ps[i].size() + whole[i].tokens.size()) - 1;  // the last token is never fed
    }

    for (const auto& [slots, budget] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {1, 5}, {3, 3}, {3, 7}, {4, 40}}) {
      const auto got = t.generator.generate(ps, ids(ps.size()), p, {slots, budget, {}});
      for (std::size_t i = 0; i < ps.size(); ++i) {
        EXPECT_EQ(got[i].tokens, whole[i].tokens) << "prompt " << i << ", " << slots << " slots, " << budget << " tokens";
        EXPECT_EQ(got[i].finish, whole[i].finish);
        testing::expect_close(got[i].logprobs, whole[i].logprobs, 1e-5, 1e-5, "logprobs");
      }
      const GenerationStats& st = t.generator.stats();
      // The rule, simulated: per sequence the prompt tokens left to feed and the tokens left to
      // sample; prompts start in order as slots free up.
      struct Live {
        std::int64_t prompt, response;
      };
      std::vector<Live> live;
      std::vector<std::int64_t> want_rows, want_tokens;
      std::size_t waiting = 0;
      while (waiting < ps.size() || !live.empty()) {
        while (static_cast<std::int64_t>(live.size()) < slots && waiting < ps.size()) {
          live.push_back({static_cast<std::int64_t>(ps[waiting].size()), static_cast<std::int64_t>(whole[waiting].tokens.size())});
          ++waiting;
        }
        std::int64_t spare = budget - static_cast<std::int64_t>(live.size()), tokens = 0;
        for (Live& s : live) {
          std::int64_t n = s.prompt > 0 ? std::min(s.prompt, 1 + spare) : 1;
          if (chunk > 0) n = std::min(n, chunk);
          if (s.prompt > 0) spare -= n - 1, s.prompt -= n;
          tokens += n;
          if (s.prompt == 0) --s.response;  // sampled from
        }
        want_rows.push_back(static_cast<std::int64_t>(live.size()));
        want_tokens.push_back(tokens);
        std::erase_if(live, [](const Live& s) { return s.response == 0; });
      }
      EXPECT_EQ(st.rows_per_step, want_rows) << slots << " slots, " << budget << " tokens";
      EXPECT_EQ(st.tokens_per_step, want_tokens) << slots << " slots, " << budget << " tokens";
      EXPECT_LE(*std::max_element(st.tokens_per_step.begin(), st.tokens_per_step.end()), budget);
      EXPECT_EQ(std::accumulate(st.tokens_per_step.begin(), st.tokens_per_step.end(), std::int64_t{0}), fed);
      if (budget < whole_largest) {
        EXPECT_LT(st.buffer_bytes, whole_buffers) << "the buffers hold a call's tokens";
      }
    }
  }
}

// LongRoPE (the tiny Phi-3 and Phi-4-mini: L = 32 of 64 positions), as transformers' Phi-3
// generation: a prompt longer than L runs on the long factors from its prefill on; a shorter one
// on the short factors until its sequence outgrows L, when the whole of it is fed again on the
// long factors. So each token at position t is drawn from the full forward of the t tokens
// before it on the short factors while t <= L, on the long ones after -- twins that never switch
// give those --; under a token budget the refeed is prefilled in chunks, to the same responses;
// and every sequence that crosses L is fed again once.
TEST(Generator, LongRopeSequencesPastTheShortContextAreFedAgainOnTheLongFactors) {
  for (const testing::TinyFamily family : {testing::TinyFamily::Phi3, testing::TinyFamily::Phi4Mini}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    TinyGenerator t(family_shape(family));
    const std::int64_t switch_at = t.config.long_rope_context();
    ASSERT_EQ(switch_at, 32);
    const auto twin = [&](bool long_factors) {
      model::ModelConfig c = t.config;
      if (long_factors) c.rope_scaling->short_factor = c.rope_scaling->long_factor;
      c.rope_scaling->original_max_position_embeddings = c.max_position_embeddings;
      return c;
    };
    const model::ModelConfig short_config = twin(false), long_config = twin(true);
    const model::Transformer short_twin(short_config, t.dims, t.grid.tp(), t.cpu);
    const model::Transformer long_twin(long_config, t.dims, t.grid.tp(), t.cpu);
    // Crossing at its 3rd, 13th and 1st new token; long from the start; never reaching L.
    const std::vector<std::vector<std::int32_t>> ps = {testing::random_ids(30, 37, 1), testing::random_ids(20, 37, 2),
                                                       testing::random_ids(40, 37, 3), testing::random_ids(5, 37, 4),
                                                       testing::random_ids(32, 37, 5)};
    GenerationParams p;
    p.max_new_tokens = 20;
    const auto out = t.generator.generate(ps, ids(ps.size()), p);
    std::int64_t crossing = 0, fed = 0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      ASSERT_EQ(out[i].tokens.size(), 20u);
      std::vector<std::int32_t> seq = ps[i];
      seq.insert(seq.end(), out[i].tokens.begin(), out[i].tokens.end());
      const auto prompt = static_cast<std::int64_t>(ps[i].size());
      crossing += prompt <= switch_at && prompt + 19 > switch_at;
      fed += static_cast<std::int64_t>(seq.size()) - 1;
      for (std::int64_t j = 0; j < 20; ++j) {
        const std::int64_t position = prompt + j;  // the token's; the t before it are its context
        const model::Transformer& same = position <= switch_at ? short_twin : long_twin;
        const std::vector<std::int32_t> upto(seq.begin(), seq.begin() + position + 1);
        const model::ForwardResult r = same.forward(t.weights, model::TokenBatch::pack({{upto, 1}}));
        EXPECT_NEAR(out[i].logprobs[static_cast<std::size_t>(j)], r.token_logprobs[static_cast<std::size_t>(position - 1)],
                    2e-5)
            << "prompt " << i << ", token " << j;
      }
    }
    ASSERT_EQ(crossing, 3);
    EXPECT_EQ(std::accumulate(t.generator.stats().tokens_per_step.begin(), t.generator.stats().tokens_per_step.end(),
                              std::int64_t{0}),
              fed + crossing * switch_at)
        << "every crossing sequence's first L tokens fed again, once";
    for (const auto& [slots, budget] : {std::pair<std::int64_t, std::int64_t>{2, 5}, {3, 3}, {5, 9}}) {
      const auto got = t.generator.generate(ps, ids(ps.size()), p, {slots, budget, {}});
      for (std::size_t i = 0; i < ps.size(); ++i) {
        EXPECT_EQ(got[i].tokens, out[i].tokens) << "prompt " << i << ", " << slots << " slots, " << budget << " tokens";
        testing::expect_close(got[i].logprobs, out[i].logprobs, 1e-5, 1e-5, "logprobs");
      }
      EXPECT_LE(*std::max_element(t.generator.stats().tokens_per_step.begin(), t.generator.stats().tokens_per_step.end()),
                budget);
    }
  }
}

TEST(Generator, BadPromptsAndParametersAreErrorsBeforeAnyWork) {
  TinyGenerator t;
  GenerationParams p;
  p.max_new_tokens = 10;
  const auto message = [&](const std::vector<std::vector<std::int32_t>>& ps, const GenerationParams& q) {
    try {
      t.generator.generate(ps, ids(ps.size()), q);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({{1, 2}, {}}, p).find("prompt 1 is empty"), std::string::npos);
  EXPECT_NE(message({std::vector<std::int32_t>(60, 1)}, p).find("needs 70 positions but the model allows 64"),
            std::string::npos);
  GenerationParams bad = p;
  bad.end_strings = {"###"};
  EXPECT_NE(message({{1}}, bad).find("end strings need the model's tokenizer"), std::string::npos);
  bad.detokenize = [](std::span<const std::int32_t>) { return std::string(); };
  bad.end_strings = {""};
  EXPECT_NE(message({{1}}, bad).find("an end string is empty"), std::string::npos);
  bad = p;
  bad.sampling.top_p = 0.0f;
  EXPECT_NE(message({{1}}, bad).find("top_p"), std::string::npos);
  bad = p;
  bad.sampling.temperature = -0.5f;
  EXPECT_NE(message({{1}}, bad).find("temperature"), std::string::npos);
  bad = p;
  bad.min_new_tokens = 11;
  EXPECT_NE(message({{1}}, bad).find("min_new_tokens"), std::string::npos);
  try {
    t.generator.generate({{1}}, {0}, p, {-1, 0, {}});
    ADD_FAILURE() << "a negative batch size was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch size must not be negative"), std::string::npos) << e.what();
  }
  // Three sequences in flight feed three tokens a call at least.
  for (const std::int64_t budget : {2, -1}) {
    try {
      t.generator.generate(prompts(), ids(4), p, {3, budget, {}});
      ADD_FAILURE() << budget << " tokens per call were taken for 3 sequences";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot feed the 3 sequences one model call holds (3 in flight over 1 "
                                           "pipeline stage), one token each: allow at least 3"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(min_step_tokens(3, 1), 3);
  EXPECT_EQ(min_step_tokens(5, 2), 3) << "two groups of 3 and 2";
  EXPECT_EQ(min_step_tokens(2, 4), 1) << "two groups of one";
}

}  // namespace
}  // namespace spin::generate
