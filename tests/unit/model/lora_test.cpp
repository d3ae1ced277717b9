// LoRA adapters (model/lora.h) on the tiny model: fresh adapters change nothing, their gradients
// match finite differences of the adapted forward, a merged model scores as base + adapters, and
// bf16 products follow float32.
#include "model/lora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/gradient_check.h"
#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/transformer.h"
#include "parallel/communicator.h"

namespace spin::model {
namespace {

struct Adapted {
  ModelConfig config;
  TpDims dims;
  parallel::SelfCommunicator tp;
  kernels::CpuKernels cpu;
  ModelWeights weights;
  ModelWeights adapters;
  Transformer transformer;

  explicit Adapted(const testing::TinyShape& shape = {}, const LoraConfig& lora = testing::tiny_lora())
      : config(testing::tiny_config(shape)),
        dims(tp_dims(config, 0, 1)),
        weights(config, dims),
        adapters(ModelWeights::adapters(config, lora, dims, StageLayers::whole(config.num_layers))),
        transformer(config, dims, tp, cpu) {
    testing::init_tiny_weights(weights, 7, 0.3f, config.norm_weight_offset);
    adapters.init_random(5, 0.0f);
  }
  std::vector<float> logprobs(const TokenBatch& batch, const ModelWeights* lora) const {
    Activations acts;
    return transformer.forward(weights, batch, acts, false, {}, lora).token_logprobs;
  }
};

std::vector<Sequence> sequences() {
  return {{testing::random_ids(5, 37, 1), 1, 0, 10},
          {testing::random_ids(8, 37, 2), 3, 0, 11},
          {testing::random_ids(3, 37, 3), 1, 0, 12}};
}

TEST(Lora, TargetsParseAndValidate) {
  const auto all = parse_lora_targets("all-linear", "lora.targets");
  for (const bool t : all) EXPECT_TRUE(t);
  LoraConfig lora;
  lora.rank = 8;
  lora.targets = parse_lora_targets("v_proj,q_proj,down_proj", "lora.targets");
  EXPECT_EQ(lora.targets_text(), "q_proj,v_proj,down_proj");
  EXPECT_EQ(lora.scale(), 2.0f);  // alpha 16 / rank 8
  lora.rslora = true;
  EXPECT_FLOAT_EQ(lora.scale(), 16.0f / std::sqrt(8.0f));
  EXPECT_EQ(lora.summary(), "rank 8, alpha 16, targets q_proj,v_proj,down_proj, rsLoRA");
  lora.rslora = false;
  EXPECT_NO_THROW(lora.validate("lora."));
  EXPECT_THROW(parse_lora_targets("q_proj,qkv", "lora.targets"), Error);
  // Phi-3's fused modules as PEFT names them.
  LoraConfig phi3;
  phi3.targets = parse_lora_targets("qkv_proj,gate_up_proj", "lora.targets");
  EXPECT_EQ(phi3.targets_text(), "q_proj,k_proj,v_proj,gate_proj,up_proj");
  // Mixtral's experts' modules as PEFT names them.
  LoraConfig mixtral;
  mixtral.targets = parse_lora_targets("w2,q_proj,w1", "lora.targets");
  EXPECT_EQ(mixtral.targets_text(), "q_proj,gate_proj,down_proj");
  mixtral.targets = parse_lora_targets("w3", "lora.targets");
  EXPECT_EQ(mixtral.targets_text(), "up_proj");
  EXPECT_THROW(parse_lora_targets("gate", "lora.targets"), Error);  // the router is not adapted
  // Granite 4.0's shared MLP's modules as PEFT names them.
  LoraConfig granite4;
  granite4.targets = parse_lora_targets("output_linear,input_linear", "lora.targets");
  EXPECT_EQ(granite4.targets_text(), "gate_proj,up_proj,down_proj");
  // NeMo's names of its fused modules.
  LoraConfig nemo;
  nemo.targets = parse_lora_targets("attention_qkv,mlp_fc2", "lora.targets");
  EXPECT_EQ(nemo.targets_text(), "q_proj,k_proj,v_proj,down_proj");
  nemo.targets = parse_lora_targets("attention_dense,mlp_fc1", "lora.targets");
  EXPECT_EQ(nemo.targets_text(), "o_proj,gate_proj,up_proj");
  EXPECT_EQ(parse_lora_targets("all", "lora.targets"), all);
  EXPECT_THROW(parse_lora_targets("", "lora.targets"), Error);
  try {
    parse_lora_targets("q_proj,,v_proj", "lora.targets");
    ADD_FAILURE() << "an empty name passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora.targets"), std::string::npos) << e.what();
  }
  lora.alpha = 0.0;
  EXPECT_THROW(lora.validate("lora."), Error);
  lora.alpha = 16.0;
  for (const double dropout : {-0.1, 1.0}) {
    lora.dropout = dropout;
    EXPECT_THROW(lora.validate("lora."), Error) << dropout;
  }
  lora.dropout = 0.1;
  EXPECT_NO_THROW(lora.validate("lora."));
  LoraConfig no_adapters;
  no_adapters.dropout = 0.1;
  EXPECT_THROW(no_adapters.validate("lora."), Error);  // a dropout of nothing: a mistake, said so
  lora.targets = {};
  EXPECT_THROW(lora.validate("lora."), Error);
  lora.rank = -1;
  EXPECT_THROW(lora.validate("lora."), Error);
  EXPECT_NO_THROW(LoraConfig{}.validate("lora."));  // rank 0: no adapters
}

// PEFT's start: A uniform in +-1/sqrt(in), B zero -- the adapted model is its base, bit for bit,
// in float32 and with bf16 products.
TEST(Lora, FreshAdaptersLeaveTheModelUnchanged) {
  Adapted m;
  for (const ShardedTensor& p : m.adapters.sharded_state_dict()) {
    const std::vector<float> v(p.local.f32(), p.local.f32() + p.local.numel());
    double largest = 0.0;
    for (const float x : v) largest = std::max(largest, std::fabs(static_cast<double>(x)));
    if (p.name.ends_with("lora_B.weight")) {
      EXPECT_EQ(largest, 0.0) << p.name;
    } else {
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.global_shape[1]));
      EXPECT_LE(largest, bound) << p.name;
      EXPECT_GT(largest, 0.5 * bound) << p.name;
    }
  }
  EXPECT_EQ(m.adapters.sharded_state_dict().size(), 2u * 7 * 2);  // A and B, a Llama's 7 targets, 2 layers
  const TokenBatch batch = TokenBatch::pack(sequences());
  EXPECT_EQ(m.logprobs(batch, &m.adapters), m.logprobs(batch, nullptr));
  m.weights.enable_bf16(m.cpu);
  m.adapters.enable_bf16(m.cpu);
  EXPECT_EQ(m.logprobs(batch, &m.adapters), m.logprobs(batch, nullptr));
}

// The adapters' gradients against central differences of the adapted float32 forward
// (common/gradient_check.h), for every projection adapted and
// for a subset; the base model is frozen: its weights are not written and have no gradient (also
// OLMo 2's q and k norms across the heads, whose input gradients flow without a weight gradient,
// and StableLM's LayerNorms, their weights and biases frozen);
// the first OLMo's adapters of q, k and v through its clamp (clip_qkv at a limit in a gap of the
// adapted products' values: common/gradient_check.h); Mixtral's every expert's gate, up and down
// adapted over its frozen mixture (the router's input gradient flows, no expert's or router's
// weight gradient; the router itself is not adapted), and its attention alone; Qwen2-MoE's experts'
// and shared expert's adapters; GLM-4's through its q, k, v biases, interleaved partial RoPE and the
// norms of each half's output; EXAONE 4's through its head norms, output norms and NoPE layer;
// GLM-4.5's through its dense first layer's MLP and the next one's experts and ungated shared
// experts behind the sigmoid router; DeepSeek-V3's every projection's -- its latent attention's
// q_a_proj, q_b_proj, kv_a_proj_with_mqa (one adapter over its two products) and kv_b_proj, o_proj and
// the MLP's -- and DeepSeek-V2's (q_proj without a q latent; k_proj refused: latent attention has none).
TEST(Lora, GradientsMatchFiniteDifferences) {
  for (const char* variant : {"llama", "qwen3", "gemma2", "olmo", "olmo2", "stablelm", "parallel residual", "cohere",
                              "gpt_neox", "phi", "mixtral", "mixtral attention", "mixtral q and down", "qwen2_moe",
                              "q and v", "glm4", "exaone4", "glm4_moe", "deepseek_v3", "deepseek_v2"}) {
    SCOPED_TRACE(variant);
    testing::TinyShape shape;
    shape.family = variant == std::string("qwen3")               ? testing::TinyFamily::Qwen3
                   : variant == std::string("gemma2")            ? testing::TinyFamily::Gemma2
                   : variant == std::string("olmo")              ? testing::TinyFamily::Olmo
                   : variant == std::string("olmo2")             ? testing::TinyFamily::Olmo2
                   : variant == std::string("stablelm")          ? testing::TinyFamily::StableLm
                   : variant == std::string("parallel residual") ? testing::TinyFamily::StableLmParallel
                   : variant == std::string("cohere")            ? testing::TinyFamily::Cohere
                   : variant == std::string("gpt_neox")          ? testing::TinyFamily::GptNeox
                   : variant == std::string("phi")               ? testing::TinyFamily::Phi
                   : std::string(variant).starts_with("mixtral") ? testing::TinyFamily::Mixtral
                   : variant == std::string("qwen2_moe")         ? testing::TinyFamily::Qwen2Moe
                   : variant == std::string("glm4")              ? testing::TinyFamily::Glm4
                   : variant == std::string("exaone4")           ? testing::TinyFamily::Exaone4
                   : variant == std::string("glm4_moe")          ? testing::TinyFamily::Glm4Moe
                   : variant == std::string("deepseek_v3")       ? testing::TinyFamily::DeepseekV3
                   : variant == std::string("deepseek_v2")       ? testing::TinyFamily::DeepseekV2
                                                                 : testing::TinyFamily::Llama;
    LoraConfig lora = testing::tiny_lora(testing::tiny_config(shape));
    if (variant == std::string("mixtral attention")) {
      lora.targets = parse_lora_targets("q_proj,k_proj,v_proj,o_proj", "test");
    }
    if (variant == std::string("mixtral q and down")) lora.targets = parse_lora_targets("q_proj,w2", "test");
    if (shape.family == testing::TinyFamily::GptNeox || shape.family == testing::TinyFamily::Phi) {  // no gate
      lora.targets = parse_lora_targets("q_proj,k_proj,v_proj,o_proj,up_proj,down_proj", "test");
    }
    if (variant == std::string("q and v")) lora.targets = parse_lora_targets("q_proj,v_proj", "test");
    // DeepSeek-V2: q_proj (without a q latent) and kv_b_proj. More adapters of this size move its softmax
    // router's group-limited choice within the differences' steps (measured: down_proj's alone, or q_proj,
    // kv_a_proj_with_mqa, kv_b_proj and o_proj together, break them; DeepSeek-V3 checks those adapters).
    if (variant == std::string("deepseek_v2")) {
      lora.targets = parse_lora_targets("q_proj,kv_b_proj", "test");
    }
    if (shape.family == testing::TinyFamily::DeepseekV3) {  // latent attention has no k_proj: refused by name
      LoraConfig k = lora;
      k.targets = parse_lora_targets("k_proj,o_proj", "test");
      const std::string e = testing::error_of([&] { Adapted refused(shape, k); });
      EXPECT_NE(e.find("LoRA targets k_proj, but the model has no such projection"), std::string::npos) << e;
    }
    const TokenBatch batch = TokenBatch::pack(sequences());
    if (shape.family == testing::TinyFamily::Olmo) {
      shape.clip_qkv = 1e9f;  // the adapted products' values kept, nothing clamped
      Adapted probe(shape, lora);
      testing::randomize_matrices(probe.adapters, 3, 0.3f);
      Activations acts;
      probe.transformer.forward(probe.weights, batch, acts, true, {}, &probe.adapters);
      shape.clip_qkv = testing::clip_in_a_gap(acts);
    }
    Adapted m(shape, lora);
    testing::randomize_matrices(m.adapters, 3, 0.3f);
    const std::vector<float> c = {0.7f, -1.3f, 0.4f};
    const Tensor base_before = m.weights.flat().clone();
    Activations acts;
    m.transformer.forward(m.weights, batch, acts, true, {}, &m.adapters);
    ModelWeights grads = ModelWeights::adapters(m.config, lora, m.dims, StageLayers::whole(m.config.num_layers));
    m.transformer.backward(m.weights, acts, c, grads);
    EXPECT_EQ(to_host<float>(m.weights.flat()), to_host<float>(base_before));

    const auto loss = [&] {
      Activations scoring;
      const ForwardResult r = m.transformer.forward(m.weights, batch, scoring, false, {}, &m.adapters);
      return testing::weighted_sum(r.sequence_logprobs, c);
    };
    for (const ShardedTensor& g : grads.sharded_state_dict()) {
      double largest = 0.0;
      for (const float x : to_host<float>(g.local)) largest = std::max(largest, std::fabs(double{x}));
      EXPECT_GT(largest, 1e-3) << g.name << " has no gradient";
    }
    testing::check_model_gradients(m.adapters, grads, loss, variant);
  }
}

// LoRA's dropout (lora.dropout): the adapters' gradients are those of the masked forward -- each
// adapter's input x keep / (1 - p), the mask drawn again in the backward, in float32 and with
// activation recomputation -- against its central differences (the training forward's, which
// draws the masks; a scoring forward draws none). The masks act, follow the step's seed and each
// sequence's key: a sequence packed with others or alone, first or last, is masked the same. Also
// a mixture of experts' adapters (Qwen2-MoE's: every expert's and the shared expert's), whose
// grouped rows take their source rows' keys; DeepSeek-V3's latent projections' adapters (streams of
// their own) with recomputation.
TEST(Lora, DropoutGradientsMatchFiniteDifferences) {
  for (const auto& [family, recompute] :
       {std::pair{testing::TinyFamily::Llama, false}, std::pair{testing::TinyFamily::Llama, true},
        std::pair{testing::TinyFamily::Qwen2Moe, false}, std::pair{testing::TinyFamily::Qwen2Moe, true},
        std::pair{testing::TinyFamily::DeepseekV3, true}}) {
    SCOPED_TRACE(recompute);
    SCOPED_TRACE(static_cast<int>(family));
    testing::TinyShape shape;
    shape.family = family;
    LoraConfig lora = testing::tiny_lora(testing::tiny_config(shape));
    lora.dropout = 0.3;
    Adapted m(shape, lora);
    m.transformer.set_recompute_activations(recompute);
    testing::randomize_matrices(m.adapters, 3, 0.3f);
    TokenBatch batch = TokenBatch::pack(sequences());
    batch.dropout_seed = 42;
    const std::vector<float> c = {0.7f, -1.3f, 0.4f};
    const auto training_logprobs = [&](const TokenBatch& b) {
      Activations acts;
      return m.transformer.forward(m.weights, b, acts, true, {}, &m.adapters).sequence_logprobs;
    };
    Activations acts;
    m.transformer.forward(m.weights, batch, acts, true, {}, &m.adapters);
    ModelWeights grads = ModelWeights::adapters(m.config, lora, m.dims, StageLayers::whole(m.config.num_layers));
    m.transformer.backward(m.weights, acts, c, grads);
    testing::check_model_gradients(
        m.adapters, grads, [&] { return testing::weighted_sum(training_logprobs(batch), c); }, "dropout");

    Activations scoring;
    const auto scored = m.transformer.forward(m.weights, batch, scoring, false, {}, &m.adapters).sequence_logprobs;
    LoraConfig plain = lora;
    plain.dropout = 0.0;
    Adapted undropped(shape, plain);
    undropped.adapters.flat().copy_from(m.adapters.flat());
    Activations plain_acts;
    EXPECT_EQ(scored, undropped.transformer.forward(undropped.weights, batch, plain_acts, true, {}, &undropped.adapters)
                          .sequence_logprobs);
    EXPECT_GT(testing::max_abs_diff(training_logprobs(batch), scored), 1e-2) << "the masks act";
    TokenBatch reseeded = batch;
    reseeded.dropout_seed = 43;
    EXPECT_GT(testing::max_abs_diff(training_logprobs(reseeded), training_logprobs(batch)), 1e-3);
    // The middle sequence alone, and the three in reverse order: each keeps its masks.
    const auto together = training_logprobs(batch);
    auto seqs = sequences();
    TokenBatch alone = TokenBatch::pack({seqs[1]});
    alone.dropout_seed = 42;
    EXPECT_NEAR(training_logprobs(alone)[0], together[1], 1e-5);
    TokenBatch reversed = TokenBatch::pack({seqs[2], seqs[1], seqs[0]});
    reversed.dropout_seed = 42;
    const auto backwards = training_logprobs(reversed);
    for (std::size_t s = 0; s < 3; ++s) EXPECT_NEAR(backwards[2 - s], together[s], 1e-5) << s;
  }
}

// W + scale B A in place of W scores as W with the adapters (float32 rounding apart); merging
// fresh adapters (B = 0) changes no bit.
TEST(Lora, MergedWeightsScoreAsTheAdaptedModel) {
  for (const auto family : {testing::TinyFamily::Llama, testing::TinyFamily::Qwen2Moe}) {
    SCOPED_TRACE(static_cast<int>(family));
    testing::TinyShape shape;
    shape.family = family;
    Adapted m(shape);
    const TokenBatch batch = TokenBatch::pack(sequences());
    const Tensor before = m.weights.flat().clone();
    m.adapters.merge_into(m.weights, m.cpu);
    EXPECT_EQ(to_host<float>(m.weights.flat()), to_host<float>(before));
    testing::randomize_matrices(m.adapters, 3, 0.3f);
    const std::vector<float> adapted = m.logprobs(batch, &m.adapters);
    EXPECT_GT(testing::max_abs_diff(adapted, m.logprobs(batch, nullptr)), 1e-2);  // the adapters act
    m.adapters.merge_into(m.weights, m.cpu);
    testing::expect_close(m.logprobs(batch, nullptr), adapted, 1e-5, 1e-5, "merged");
  }
}

// With bf16 products the adapted model's log-probabilities and the adapters' gradients follow
// float32's to bf16's precision: measured, the gradients' L2 distance is 2.6% of their norm (the
// base model's own weight gradients: 1.1%; an adapter's factor is a rank-3 projection of its
// projection's gradient, with the u and du roundings besides); a wrong operand or leading
// dimension moves them by O(1).
TEST(Lora, Bf16ProductsFollowFloat32) {
  for (const auto family : {testing::TinyFamily::Llama, testing::TinyFamily::Qwen2Moe}) {
    SCOPED_TRACE(static_cast<int>(family));
    testing::TinyShape shape;
    shape.family = family;
    const LoraConfig lora = testing::tiny_lora();
    std::vector<float> logprobs[2];
    std::vector<float> grads[2];
    for (int mixed = 0; mixed < 2; ++mixed) {
      Adapted m(shape, lora);
      testing::randomize_matrices(m.adapters, 3, 0.3f);
      if (mixed) {
        m.weights.enable_bf16(m.cpu);
        m.adapters.enable_bf16(m.cpu);
      }
      const TokenBatch batch = TokenBatch::pack(sequences());
      Activations acts;
      logprobs[mixed] = m.transformer.forward(m.weights, batch, acts, true, {}, &m.adapters).token_logprobs;
      ModelWeights g = ModelWeights::adapters(m.config, lora, m.dims, StageLayers::whole(m.config.num_layers));
      const std::vector<float> c = {0.7f, -1.3f, 0.4f};
      m.transformer.backward(m.weights, acts, c, g);
      grads[mixed] = to_host<float>(g.flat());
    }
    testing::expect_close(logprobs[1], logprobs[0], 2e-2, 2e-2, "bf16 log-probabilities");
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < grads[0].size(); ++i) {
      diff += std::pow(static_cast<double>(grads[1][i]) - grads[0][i], 2);
      norm += std::pow(static_cast<double>(grads[0][i]), 2);
    }
    EXPECT_LE(std::sqrt(diff / norm), 0.06);
    EXPECT_GT(diff, 0.0);  // the bf16 path ran
  }
}

}  // namespace
}  // namespace spin::model
