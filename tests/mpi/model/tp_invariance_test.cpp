// Run with 4 ranks. The central property of tensor parallelism: TP = 2 and TP = 4 give the
// log-probabilities and (gathered) gradients of TP = 1, to 1e-5 relative -- with and without
// sequence parallelism (rows split between the TP regions, pad rows included), in float32 and
// with bf16 products.
#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/transformer.h"
#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"

namespace spin::model {
namespace {

using spin::testing::mpi_world;

struct Run {
  std::vector<float> token_logprobs;
  std::vector<std::vector<float>> grads;  // per parameter, the whole (gathered) tensor
};

std::vector<Sequence> batch_sequences() {  // different lengths, packed without padding; keyed for dropout
  return {{testing::random_ids(9, 37, 11), 3, 0, 0},
          {testing::random_ids(3, 37, 12), 1, 0, 1},
          {testing::random_ids(14, 37, 13), 5, 0, 2},
          {testing::random_ids(1, 37, 14), 1, 0, 3}};
}

// The full tensor of `global_shape` from every TP rank's shard: each rank writes the part it holds
// (`t`; null where it holds none: another expert-parallel group's expert; of a replicated tensor the
// primary copy alone) into a zero buffer, then a sum over the TP group.
std::vector<float> gather(const ShardedTensor* held, const Shape& global_shape, parallel::Communicator& tp) {
  std::vector<float> full(static_cast<std::size_t>(shape_numel(global_shape)), 0.0f);
  if (held == nullptr) {
    tp.all_reduce(full.data(), full.size());
    return full;
  }
  const ShardedTensor& t = *held;
  const float* l = t.local.f32();
  if (t.replicated()) {
    if (t.primary) std::copy(l, l + t.local.numel(), full.begin());
  } else {
    // Matrices, and biases as one column.
    const std::int64_t cols = t.global_shape.size() > 1 ? t.global_shape[1] : 1;
    const std::int64_t lc = t.local.shape().size() > 1 ? t.local.shape()[1] : 1;
    for (std::int64_t r = 0; r < t.local.shape()[0]; ++r) {
      for (std::int64_t c = 0; c < lc; ++c) {
        if ((t.split_dim == 0 ? r : c) >= t.length) continue;  // padding
        const std::int64_t gr = t.split_dim == 0 ? t.offset + r : r;
        const std::int64_t gc = t.split_dim == 1 ? t.offset + c : c;
        full[static_cast<std::size_t>(gr * cols + gc)] = l[r * lc + c];
      }
    }
  }
  tp.all_reduce(full.data(), full.size());
  return full;
}

struct Options {
  bool sequence_parallel = false;
  bool recompute = false;
  std::int64_t recompute_layers = 0;  // with recompute: each stage's first this many (0: all)
  bool mixed = false;  // bf16 products
  std::vector<Sequence> sequences = batch_sequences();
  std::int64_t logits_chunk_rows = 0;
  double tolerance = 1e-5;  // of the log-probabilities (absolute) and of each gradient's largest element
  LoraConfig lora{};  // rank > 0: the model with LoRA adapters, whose gradients are compared
  int ep = 1;         // a mixture's expert-parallel size within the TP group
};

// The tensors of the model (or of its adapters) at TP 1: every parameter, in order.
std::vector<ShardedTensor> whole_layout(const ModelConfig& config, const LoraConfig& lora) {
  return lora.enabled() ? adapter_layout(config, lora, tp_dims(config, 0, 1), StageLayers::whole(config.num_layers))
                        : ModelWeights(config, tp_dims(config, 0, 1)).sharded_state_dict();
}

Run run(const ModelConfig& config, parallel::Communicator& tp, const Options& o = {}) {
  const TpDims dims = tp_dims(config, tp.rank(), tp.size(), tp.size() > 1 ? o.ep : 1);
  const kernels::CpuKernels cpu;
  ModelWeights weights(config, dims);
  testing::init_tiny_weights(weights, 21, 0.3f, config.norm_weight_offset);
  if (o.mixed) weights.enable_bf16(cpu);
  Transformer transformer(config, dims, tp, cpu);
  transformer.set_sequence_parallel(o.sequence_parallel);
  transformer.set_recompute_activations(o.recompute, o.recompute_layers);
  transformer.set_logits_chunk_rows(o.logits_chunk_rows);
  EXPECT_EQ(transformer.sequence_parallel(), o.sequence_parallel && tp.size() > 1);
  Activations acts;
  Run out;
  std::optional<ModelWeights> adapters;
  if (o.lora.enabled()) {
    adapters.emplace(ModelWeights::adapters(config, o.lora, dims, StageLayers::whole(config.num_layers)));
    testing::randomize_matrices(*adapters, 23, o.mixed ? 0.05f : 0.3f);
    if (o.mixed) adapters->enable_bf16(cpu);
  }
  out.token_logprobs = transformer
                           .forward(weights, TokenBatch::pack(o.sequences), acts, true, {},
                                    adapters ? &*adapters : nullptr)
                           .token_logprobs;
  ModelWeights grads = o.lora.enabled()
                           ? ModelWeights::adapters(config, o.lora, dims, StageLayers::whole(config.num_layers))
                           : ModelWeights(config, dims);
  const std::vector<float> dsums = {1.0f, -0.5f, 2.0f, 0.3f};
  transformer.backward(weights, acts, std::span(dsums).first(o.sequences.size()), grads);
  // By name, in the whole model's order: under expert parallelism each rank holds its experts alone.
  std::map<std::string, const ShardedTensor*> held;
  for (const ShardedTensor& g : grads.sharded_state_dict()) held[g.name] = &g;
  for (const ShardedTensor& whole : whole_layout(config, o.lora)) {
    const auto it = held.find(whole.name);
    const ShardedTensor* g = it == held.end() ? nullptr : it->second;
    out.grads.push_back(gather(g, whole.global_shape, tp));
    // Replicated (norm) gradients must be the same on every TP rank that holds them, or replicas would drift.
    if (g != nullptr && g->replicated()) {
      const std::vector<float> mine(g->local.f32(), g->local.f32() + g->local.numel());
      EXPECT_EQ(mine, out.grads.back()) << g->name << " differs between TP ranks";
    }
  }
  return out;
}

void expect_same_as_tp1(const testing::TinyShape& shape, int tp, const Options& o = {}) {
  SCOPED_TRACE(cat("TP ", tp, o.ep > 1 ? cat(", EP ", o.ep) : "", o.sequence_parallel ? ", sequence parallel" : "",
                   o.recompute ? ", recompute " : "", o.recompute ? cat(o.recompute_layers, " layers (0: all)") : "",
                   o.mixed ? ", bf16" : ""));
  const ModelConfig config = testing::tiny_config(shape);
  parallel::SelfCommunicator self;
  Options one_rank;
  one_rank.mixed = o.mixed;
  one_rank.sequences = o.sequences;
  one_rank.lora = o.lora;
  const Run reference = run(config, self, one_rank);
  parallel::ProcessGrid grid(mpi_world(), {tp, 1, 0});
  const Run parallel_run = run(config, grid.tp(), o);

  testing::expect_close(parallel_run.token_logprobs, reference.token_logprobs, o.tolerance, 1e-6,
                        "token logprobs");
  const auto names = whole_layout(config, o.lora);
  for (std::size_t p = 0; p < reference.grads.size(); ++p) {
    // Per tensor: max |diff| <= 1e-5 max |reference| (elements near 0 carry rounding of the
    // tensor's scale, not their own).
    double scale = 0.0, diff = 0.0;
    for (std::size_t i = 0; i < reference.grads[p].size(); ++i) {
      scale = std::max(scale, std::fabs(static_cast<double>(reference.grads[p][i])));
      diff = std::max(diff, std::fabs(static_cast<double>(parallel_run.grads[p][i]) - reference.grads[p][i]));
    }
    EXPECT_LE(diff, o.tolerance * scale) << names[p].name << " at TP " << tp;
    // GLM-4.5's router correction bias is a buffer of the files: nothing trains it.
    const bool buffer = names[p].name.ends_with("e_score_correction_bias");
    if (buffer) {
      EXPECT_EQ(scale, 0.0) << names[p].name << " has a gradient";
    } else {
      EXPECT_GT(scale, 0.0) << names[p].name << " has no gradient";
    }
  }
}

TEST(TensorParallel, MatchesOneRankWithVocabularyPaddingAtTp2AndTp4) {
  testing::TinyShape shape;  // vocab 37: padded at both TP sizes
  shape.kv_heads = 4;
  for (int tp : {2, 4}) expect_same_as_tp1(shape, tp);
}

TEST(TensorParallel, MatchesOneRankWithTiedEmbeddings) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  shape.tie = true;
  for (int tp : {2, 4}) expect_same_as_tp1(shape, tp);
}

// Qwen2's q/k/v biases split with their matrices' rows (each rank adds and differentiates its
// own columns), with tied embeddings as the small Qwen2 models have; in float32 and bf16.
TEST(TensorParallel, MatchesOneRankWithQkvBiasesAtTp2AndTp4) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  shape.tie = true;
  shape.family = testing::TinyFamily::Qwen2;
  for (int tp : {2, 4}) expect_same_as_tp1(shape, tp);
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .mixed = true});
}

// Qwen3's head norms: replicated weights whose gradients each rank computes from its own heads
// (all-reduced over TP). Gemma: GeGLU, norms of 1 + w (the offset in every norm's forward and
// backward, on whatever rows a rank holds) and the embedding scaled in its row-parallel region,
// tied. Gemma 2: the norms of o_proj's and down_proj's reduced outputs (under sequence
// parallelism on each rank's rows, their weight gradients all-reduced), capped scores and logits,
// windows in alternate layers; Mistral: every layer's window; Gemma 3: Gemma 2's norms with
// Qwen3's head norms (of 1 + w), the local layers' own RoPE table; Phi-3: LongRoPE's scaled
// table; Granite: its multipliers (the embedding's in its row-parallel region, each half's after
// the row-parallel reduction, the logits' on each vocabulary shard); OLMo 2: q and k normed across
// the heads of every TP rank (the statistics and the backward's sums all-reduced, the weights split
// with the heads), no norm before either half (the products read the residual stream itself); OLMo: LayerNorms without
// parameters (nothing to all-reduce under SP). Each in float32, with
// recomputation, and in bf16 with sequence parallelism (Gemma's bf16-rounded scale).
TEST(TensorParallel, MatchesOneRankWithQkNormsAndForGemmaAtTp2AndTp4) {
  using testing::TinyFamily;
  for (const TinyFamily family :
       {TinyFamily::Mistral, TinyFamily::Qwen3, TinyFamily::Gemma, TinyFamily::Gemma2, TinyFamily::Gemma3,
        TinyFamily::Phi3, TinyFamily::Phi4Mini, TinyFamily::SmolLM3, TinyFamily::Granite, TinyFamily::Olmo,
        TinyFamily::Olmo2, TinyFamily::StableLm, TinyFamily::StableLmParallel, TinyFamily::Cohere, TinyFamily::Cohere2,
        TinyFamily::GptNeox, TinyFamily::GptNeoxSequential, TinyFamily::Phi, TinyFamily::Mixtral,
        TinyFamily::Qwen3Moe, TinyFamily::Olmoe, TinyFamily::Qwen2Moe,
        TinyFamily::CohereQkNorm, TinyFamily::StableLmQkNorm, TinyFamily::LlamaBiases, TinyFamily::GraniteMoe,
        TinyFamily::Glm4, TinyFamily::Exaone4, TinyFamily::Glm4Moe, TinyFamily::DeepseekV3,
        TinyFamily::DeepseekV2}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    testing::TinyShape shape;
    shape.kv_heads = 4;
    shape.family = family;
    shape.tie = family != TinyFamily::Qwen3;
    // StableLM 2 12B's per-head LayerNorms over heads of 4 (hidden 16) divide by the spread of 4
    // values: in bf16 below, a flipped rounding upstream moved log-probabilities by 3e-3 there (at
    // any TP layout alike: float32 holds 1e-5); heads of 8 hold 1e-5 in bf16 too.
    if (family == TinyFamily::StableLmQkNorm) shape.hidden = 32;
    for (int tp : {2, 4}) expect_same_as_tp1(shape, tp);
    expect_same_as_tp1(shape, 2, {.recompute = true});
    expect_same_as_tp1(shape, 2, {.sequence_parallel = true});
    // bf16: TP's partial sums of o_proj and down_proj add in another order (float32 rounding,
    // ~1e-7); Gemma 2's norms of those outputs scale the difference up with them (by 1 / rms)
    // before the residual add, enough to flip occasional bf16 roundings downstream (2^-9
    // relative each: a log-probability moves by ~2e-4, a gradient's largest element by up to
    // ~3e-3 of it, as measured; Gemma 3 has the same norms). A wrong split or reduction moves
    // them by O(1); float32 above holds 1e-5. StableLM's parallel residual likewise: its log-probabilities
    // hold 1e-5, but layer 0's q and k weight gradients and what lies below them (its input norm, the
    // embedding) differ by 1e-4 - 4e-4 of their largest element, as measured -- a tenth of a bf16 ulp there:
    // flipped roundings of bf16(dq), bf16(dk), whose inputs differ in float32's last bits (bf16 without
    // sequence parallelism alike; float32 holds 1e-5). Qwen2-MoE's shared expert and its sigmoid gate likewise:
    // 3.5e-5 of the embedding's largest gradient element with OpenBLAS's SkylakeX kernels (below 1e-5 with its
    // Haswell kernels: each sums the partial products in its own order).
    const double tolerance = family == TinyFamily::Gemma2 || family == TinyFamily::Gemma3 ? 5e-3
                             : family == TinyFamily::StableLmParallel                     ? 1e-3
                             : family == TinyFamily::Qwen2Moe                             ? 1e-4
                                                                                          : 1e-5;
    expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .mixed = true, .tolerance = tolerance});
  }
  testing::TinyShape gemma;
  gemma.family = testing::TinyFamily::Gemma;
  EXPECT_EQ(testing::tiny_config(gemma).embedding_scale(false), 4.0f);  // sqrt(16)
}

// LoRA adapters split with their projections (model/lora.h): B's rows with a column-parallel
// projection's, A's columns with a row-parallel one's, the other factor whole on every rank with
// its gradient all-reduced. Every projection adapted, and q/v alone; with sequence parallelism,
// recomputation and bf16 products; Qwen3's head norms, Gemma 2's sandwich norms and OLMo 2's
// norms across TP's heads frozen around them, the first OLMo's clamp after them.
TEST(TensorParallel, LoraAdaptersMatchOneRankAtTp2AndTp4) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  const LoraConfig all = testing::tiny_lora();
  for (int tp : {2, 4}) expect_same_as_tp1(shape, tp, {.lora = all});
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .lora = all});
  expect_same_as_tp1(shape, 2, {.recompute = true, .lora = all});
  // bf16: a row-parallel adapter's u = scale x A^T is each rank's partial sum, rounded to bf16 on
  // its rank before the B product (one rounding of the whole sum at TP 1), and a column-parallel
  // one's du likewise: differences of 2^-9 relative that flip bf16 roundings downstream (as
  // Gemma 2's above): measured 9e-3 on a log-probability, 2.5% of a gradient's largest element,
  // with adapters of std 0.05. A wrong split moves them by O(1); float32 above holds 1e-5.
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .mixed = true, .tolerance = 5e-2, .lora = all});
  LoraConfig qv = all;
  qv.targets = parse_lora_targets("q_proj,v_proj", "test");
  expect_same_as_tp1(shape, 4, {.lora = qv});
  // LoRA's dropout: o_proj's and down_proj's adapters see their rank's columns of the input, masked
  // by global column; the others the whole input, masked alike on every rank.
  LoraConfig dropped = all;
  dropped.dropout = 0.3;
  for (int tp : {2, 4}) expect_same_as_tp1(shape, tp, {.sequence_parallel = tp == 4, .lora = dropped});
  expect_same_as_tp1(shape, 2, {.recompute = true, .lora = dropped});
  for (const testing::TinyFamily family :
       {testing::TinyFamily::Qwen3, testing::TinyFamily::Gemma2, testing::TinyFamily::Olmo, testing::TinyFamily::Olmo2,
        testing::TinyFamily::StableLm, testing::TinyFamily::StableLmParallel}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    shape.family = family;
    expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .lora = all});
  }
  // GPT-NeoX (no gate to adapt): its frozen biases added after the reductions, a norm per half.
  shape.family = testing::TinyFamily::GptNeox;
  LoraConfig neox = all;
  neox.targets = parse_lora_targets("q_proj,k_proj,v_proj,o_proj,up_proj,down_proj", "test");
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .lora = neox});
  expect_same_as_tp1(shape, 4, {.lora = neox});
  shape.family = testing::TinyFamily::Phi;  // besides, the LM head's frozen bias
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .lora = neox});
  // A mixture of experts: every expert's adapters split as its projections (their replicated
  // factors' gradients all-reduced with the layer's own), over the frozen router and experts; Qwen2-MoE's
  // shared expert's too; under dropout each grouped row masked by its source row's key.
  for (const testing::TinyFamily family : {testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    shape.family = family;
    for (int tp : {2, 4}) expect_same_as_tp1(shape, tp, {.lora = all});
    expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .recompute = true, .lora = dropped});
  }
  // DeepSeek-V3's every projection adapted over its frozen latent attention: q_b_proj's and kv_b_proj's
  // adapters split with the heads (their A's gradients in the layer's reduction), q_a_proj's and
  // kv_a_proj_with_mqa's whole on every rank, their gradients from every row and their input gradients
  // over the rank's share of the rows, masked there by those rows' keys under dropout; in bf16 too.
  // DeepSeek-V2's q_proj reading the layer's input.
  for (const testing::TinyFamily family : {testing::TinyFamily::DeepseekV3, testing::TinyFamily::DeepseekV2}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    shape.family = family;
    LoraConfig deepseek = testing::tiny_lora(testing::tiny_config(shape));
    for (int tp : {2, 4}) expect_same_as_tp1(shape, tp, {.lora = deepseek});
    expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .mixed = true, .tolerance = 5e-2, .lora = deepseek});
    deepseek.dropout = 0.3;
    expect_same_as_tp1(shape, 4, {.sequence_parallel = true, .recompute = true, .lora = deepseek});
  }
}

// Expert parallelism within the TP group (model::TpDims): each rank holds num_experts / ep experts --
// whole at ep = tp, else split over tp / ep ranks --, runs only the rows routed to them, and leaves the
// others' outputs to the layer's one reduction: the log-probabilities and gradients of one rank. Every
// router: Mixtral's softmax, Qwen2-MoE's with its gated shared expert (split over the whole group),
// GLM-4.5's sigmoid router with groups and a dense first layer, DeepSeek-V3's with latent attention
// around it, GraniteMoE's; with sequence parallelism, recomputation and bf16 products; LoRA adapters of
// the experts split with them (dropout masks by each expert's own columns).
TEST(ExpertParallel, MatchesOneRankWithTheExpertsSpreadOverTheTpGroup) {
  using testing::TinyFamily;
  testing::TinyShape shape;
  shape.kv_heads = 4;
  for (const TinyFamily family : {TinyFamily::Mixtral, TinyFamily::Qwen2Moe, TinyFamily::Glm4Moe,
                                  TinyFamily::DeepseekV3, TinyFamily::GraniteMoe}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    shape.family = family;
    expect_same_as_tp1(shape, 2, {.ep = 2});
    expect_same_as_tp1(shape, 4, {.ep = 2});
    expect_same_as_tp1(shape, 4, {.ep = 4});
    expect_same_as_tp1(shape, 4, {.sequence_parallel = true, .recompute = true, .ep = 4});
    // bf16: as TensorParallel's above, partial sums added in another order flip bf16 roundings downstream.
    expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .mixed = true, .tolerance = 1e-4, .ep = 2});
  }
  const LoraConfig all = testing::tiny_lora();
  LoraConfig dropped = all;
  dropped.dropout = 0.3;
  for (const TinyFamily family : {TinyFamily::Mixtral, TinyFamily::Qwen2Moe}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    shape.family = family;
    expect_same_as_tp1(shape, 2, {.lora = all, .ep = 2});
    expect_same_as_tp1(shape, 4, {.lora = all, .ep = 2});
    expect_same_as_tp1(shape, 4, {.sequence_parallel = true, .recompute = true, .lora = dropped, .ep = 2});
    expect_same_as_tp1(shape, 4, {.lora = dropped, .ep = 4});
  }
}

TEST(ExpertParallel, RefusesSizesThatDoNotDivideTheTpGroupOrTheExperts) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  shape.family = testing::TinyFamily::Mixtral;
  const ModelConfig mixtral = testing::tiny_config(shape);
  const auto refusal = [](const ModelConfig& c, int tp, int ep) {
    return testing::error_of([&] { tp_dims(c, 0, tp, ep); });
  };
  EXPECT_NE(refusal(mixtral, 4, 3).find("expert-parallel size 3 does not divide tensor-parallel size 4"),
            std::string::npos);
  testing::TinyShape v2 = shape;
  v2.family = testing::TinyFamily::DeepseekV2;  // 6 experts
  EXPECT_NE(refusal(testing::tiny_config(v2), 4, 4).find("num_experts (6) is not divisible by expert-parallel size 4"),
            std::string::npos);
  shape.family = testing::TinyFamily::Llama;
  EXPECT_NE(refusal(testing::tiny_config(shape), 2, 2).find("the model has no experts"), std::string::npos);
  // The rank's experts and their split: rank 3 of TP 4 at EP 2 holds experts 2 and 3, their second half.
  const TpDims d = tp_dims(mixtral, 3, 4, 2);
  EXPECT_EQ(d.first_expert, 2);
  EXPECT_EQ(d.experts, 2);
  EXPECT_EQ(d.expert_tp, 2);
  EXPECT_EQ(d.expert_rank, 1);
  EXPECT_EQ(d.intermediate, mixtral.intermediate_size / 2);
  EXPECT_FALSE(d.holds_expert(1));
  EXPECT_TRUE(d.holds_expert(3));
}

// The batch's 27 rows split 14 + 13 (one pad row) at TP 2 and 7 + 7 + 7 + 6 at TP 4.
TEST(SequenceParallel, MatchesOneRankAtTp2AndTp4WithPadRows) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  for (int tp : {2, 4}) {
    SCOPED_TRACE("tp " + std::to_string(tp));
    expect_same_as_tp1(shape, tp, {.sequence_parallel = true});
  }
}

// The LM head's logits 5 rows at a time (27 rows: 6 chunks, the last of 2), recomputed in the
// backward: one rank and TP 2 (with sequence parallelism, and in bf16) against one rank in one go.
TEST(LogitsChunks, MatchTheWholeLogitsOnOneRankAndAtTp2) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  expect_same_as_tp1(shape, 1, {.logits_chunk_rows = 5});
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .logits_chunk_rows = 5});
  expect_same_as_tp1(shape, 2, {.mixed = true, .logits_chunk_rows = 5});
}

// Fewer rows than ranks: at TP 4 a batch of 3 rows leaves a rank nothing but a pad row.
TEST(SequenceParallel, MatchesOneRankWhenSomeRanksHoldOnlyPadRows) {
  testing::TinyShape shape;
  shape.kv_heads = 4;
  expect_same_as_tp1(shape, 4, {.sequence_parallel = true, .sequences = {{testing::random_ids(3, 37, 5), 1}}});
}

TEST(SequenceParallel, MatchesOneRankWithTiedEmbeddingsRecomputationAndBf16Products) {
  testing::TinyShape shape;
  shape.tie = true;  // 2 kv heads: TP 2
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .recompute = true});
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .mixed = true});
}

// Recomputing only the first 2 of 3 layers (the third keeping its activations) at TP 2 and 4,
// with sequence parallelism and bf16 products: the one-rank model's results without recomputation.
TEST(TensorParallel, PartialRecomputationMatchesOneRank) {
  testing::TinyShape shape;
  shape.layers = 3;
  shape.kv_heads = 4;
  for (int tp : {2, 4}) expect_same_as_tp1(shape, tp, {.recompute = true, .recompute_layers = 2});
  expect_same_as_tp1(shape, 2, {.sequence_parallel = true, .recompute = true, .recompute_layers = 2, .mixed = true});
}

TEST(TensorParallel, GroupedQueryAttentionSplitsKvHeadsAtTp2AndRefusesFewerKvHeadsThanRanks) {
  testing::TinyShape shape;  // 4 query heads, 2 kv heads
  expect_same_as_tp1(shape, 2);
  const ModelConfig config = testing::tiny_config(shape);
  try {
    tp_dims(config, 0, 4);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "num_key_value_heads (2) is not divisible by tensor-parallel size 4");
  }
}

}  // namespace
}  // namespace spin::model
