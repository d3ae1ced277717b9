// app::layers_per_stage / plan_model_shard / balance_tokens / balance_report: --pp-layers balanced weighs the layers
// at the run's sequence length -- the model's positions up to 4,096 without one -- and the shard
// carries the split the whole pipeline runs.
#include "app/model_setup.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "model/flops.h"

namespace spin::app {
namespace {

// Llama 3 8B's shape: at 4,096 tokens its 128,256-token head is 2.1 layers' work, at 8,192 (its
// positions) the attention's scores make a layer heavier and the head 1.8 layers' -- 9, 9, 8, 6
// layers at PP 4 against 9, 8, 8, 7.
model::ModelConfig llama3_8b() {
  return model::ModelConfig::from_json(
      R"({"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
          "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
          "rms_norm_eps": 1e-5, "rope_theta": 500000.0})",
      "Llama 3 8B config");
}

using Layers = std::vector<std::int64_t>;

TEST(ModelSetup, BalancedStagesWeighTheRunsSequenceLength) {
  const model::ModelConfig c = llama3_8b();
  EXPECT_EQ(layers_per_stage(c, 4, 1, "balanced"), (Layers{9, 9, 8, 6}));  // 4,096 tokens
  EXPECT_EQ(layers_per_stage(c, 4, 1, "balanced", 4096), (Layers{9, 9, 8, 6}));
  EXPECT_EQ(layers_per_stage(c, 4, 1, "balanced", 8192), (Layers{9, 8, 8, 7}));
  EXPECT_EQ(layers_per_stage(c, 4, 1, "balanced", 8192), model::balanced_layers(c, 4, 8192));
  EXPECT_EQ(layers_per_stage(c, 4, 1, "balanced", 100000), (Layers{9, 8, 8, 7}));  // the positions at most
  EXPECT_EQ(layers_per_stage(c, 4, 1, "", 8192), (Layers{8, 8, 8, 8}));            // only balanced weighs
  EXPECT_EQ(layers_per_stage(c, 4, 1, "10,10,6,6", 8192), (Layers{10, 10, 6, 6}));

  // The run's limits: prompt + response tokens, the model's positions at most; 0 (the default
  // length) unless both are limited.
  EXPECT_EQ(balance_tokens(c, 4096, 4096), 8192);
  EXPECT_EQ(balance_tokens(c, 512, 512), 1024);
  EXPECT_EQ(balance_tokens(c, 8192, 8192), 8192);
  EXPECT_EQ(balance_tokens(c, 0, 512), 0);
  EXPECT_EQ(balance_tokens(c, 512, 0), 0);
  // SPIN's generated responses: the longer of the two response limits.
  EXPECT_EQ(balance_tokens(c, 512, 256, 1024), 1536);
  EXPECT_EQ(balance_tokens(c, 512, 1024, 256), 1536);
  EXPECT_EQ(balance_tokens(c, 512, 0, 1024), 0);  // the real responses unlimited
  EXPECT_EQ(balance_tokens(c, 4096, 512, 8192), 8192);

  // Every stage's shard carries the whole split; its own range is its part of it.
  std::int64_t begin = 0;
  const Layers want{9, 8, 8, 7};
  for (int stage = 0; stage < 4; ++stage) {
    const ModelShard shard = plan_model_shard(c, 0, 1, stage, 4, "balanced", 1, 1, balance_tokens(c, 4096, 4096));
    EXPECT_EQ(shard.layers, want);
    EXPECT_EQ(shard.stage().begin, begin) << stage;
    begin += want[static_cast<std::size_t>(stage)];
    EXPECT_EQ(shard.stage().end, begin) << stage;
  }
  // Interleaved: the virtual stages' split, stage 0 holding the first and the fifth.
  const ModelShard chunked = plan_model_shard(c, 0, 1, 0, 4, "balanced", 1, 2, 8192);
  EXPECT_EQ(chunked.layers, model::balanced_layers(c, 8, 8192));
  ASSERT_EQ(chunked.chunks.size(), 2u);
  EXPECT_EQ(chunked.chunks[0].end - chunked.chunks[0].begin, chunked.layers[0]);
  EXPECT_EQ(chunked.chunks[1].end - chunked.chunks[1].begin, chunked.layers[4]);
}

// What balancing would take off an even split, said where it is 2% or more: Llama 3 8B at PP 4 (the
// head 2.1 layers' work beside 8 layers) 10.8%; one stage nothing; a head lighter than a layer nothing.
TEST(ModelSetup, BalanceHintsWhereTheHeadPacesThePipeline) {
  const model::ModelConfig c = llama3_8b();
  const std::optional<BalanceHint> pp4 = balance_hint(c, 4, 1);
  ASSERT_TRUE(pp4.has_value());
  EXPECT_EQ(pp4->balanced, (Layers{9, 9, 8, 6}));
  const double layer = model::layer_flops_per_token(c, 0, 4096), head = model::head_flops_per_token(c);
  EXPECT_DOUBLE_EQ(pp4->even_pace, 8 * layer + head);
  EXPECT_DOUBLE_EQ(pp4->balanced_pace, 9 * layer);
  EXPECT_NEAR(pp4->saving(), 0.108, 0.001);
  // At 8,192 tokens the head weighs less: 9, 8, 8, 7.
  const std::optional<BalanceHint> longer = balance_hint(c, 4, 1, 8192);
  ASSERT_TRUE(longer.has_value());
  EXPECT_EQ(longer->balanced, (Layers{9, 8, 8, 7}));
  EXPECT_LT(longer->saving(), pp4->saving());
  EXPECT_FALSE(balance_hint(c, 1, 1).has_value());
  // Llama 2 7B's 32,000-token head is half a layer's work: the even split is the balanced one.
  model::ModelConfig llama2 = c;
  llama2.vocab_size = 32000;
  llama2.num_kv_heads = 32;
  EXPECT_FALSE(balance_hint(llama2, 2, 1).has_value());
  EXPECT_FALSE(balance_hint(llama2, 4, 1).has_value());
}

// The start-up line of spin sft / spin train: the split balanced chose, or what it would save, at the
// sequence length the shard was planned for (8,192 here: 9, 8, 8, 7, not 4,096's 9, 9, 8, 6).
TEST(ModelSetup, BalanceReportSaysTheSplitOrTheSavingAtTheShardsLength) {
  const model::ModelConfig c = llama3_8b();
  const ModelShard even = plan_model_shard(c, 0, 1, 3, 4, "", 1, 1, 8192);
  const std::optional<BalanceHint> hint = balance_hint(c, 4, 1, 8192);
  ASSERT_TRUE(hint.has_value());
  char saving[16];
  std::snprintf(saving, sizeof saving, "%.1f", 100.0 * hint->saving());
  EXPECT_EQ(balance_report("spin sft", even, "", "--pp-layers"),
            cat("spin sft: pipeline balance: --pp-layers balanced (9,8,8,7) would take ", saving,
                "% off the slowest stage's work (the LM head's among it)\n"));
  EXPECT_EQ(balance_report("spin train", plan_model_shard(c, 0, 1, 1, 4, "balanced", 1, 1, 8192), "balanced",
                           "parallel.pp_layers ="),
            "spin train: parallel.pp_layers = balanced: 9,8,8,7 layers a stage\n");
  EXPECT_EQ(balance_report("spin sft", plan_model_shard(c, 0, 1, 0, 4, "10,10,6,6"), "10,10,6,6", "--pp-layers"), "");
  EXPECT_EQ(balance_report("spin sft", plan_model_shard(c, 0, 1, 0, 1), "", "--pp-layers"), "");  // one stage
  // Interleaved: the virtual stages', named so.
  const ModelShard chunked = plan_model_shard(c, 0, 1, 0, 2, "balanced", 1, 2, 8192);
  EXPECT_EQ(balance_report("spin sft", chunked, "balanced", "--pp-layers"),
            cat("spin sft: --pp-layers balanced: ", layers_text(model::balanced_layers(c, 4, 8192)),
                " layers a virtual stage\n"));
  model::ModelConfig llama2 = c;
  llama2.vocab_size = 32000;
  llama2.num_kv_heads = 32;
  EXPECT_EQ(balance_report("spin sft", plan_model_shard(llama2, 0, 1, 0, 4), "", "--pp-layers"), "");
}

// hf_config_json: torch_dtype the dtype written (as save_pretrained writes it), or transformers 4.56's "dtype"
// where the file uses that key; the text as it was where nothing changes; FP8's quantization_config beside
// bfloat16 (its other tensors').
TEST(ModelSetup, ExportedConfigSaysTheDtypeWritten) {
  const auto config = [](const std::string& json) { return model::ModelConfig::from_json(json, "config"); };
  const std::string llama = R"({"vocab_size": 64, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 32, "rms_norm_eps": 1e-5)";
  const auto written = [&](const std::string& tail, const std::string& dtype) {
    const model::ModelConfig c = config(llama + tail);
    return hf_config_json(c, hf_format(dtype, "--dtype", c, 1));
  };
  const std::string bf16 = llama + R"(, "torch_dtype": "bfloat16"})";
  EXPECT_EQ(written(R"(, "torch_dtype": "bfloat16"})", "bf16"), bf16);  // unchanged text
  EXPECT_EQ(written("}", "f32"), llama + "}");  // none said: float32, as transformers reads a config without one
  EXPECT_EQ(nlohmann::json::parse(written("}", "bf16")).at("torch_dtype"), "bfloat16");
  EXPECT_EQ(nlohmann::json::parse(written(R"(, "torch_dtype": "bfloat16"})", "f16")).at("torch_dtype"), "float16");
  const nlohmann::json dtype = nlohmann::json::parse(written(R"(, "dtype": "float32"})", "bf16"));
  EXPECT_EQ(dtype.at("dtype"), "bfloat16");
  EXPECT_FALSE(dtype.contains("torch_dtype"));
  const nlohmann::json fp8 = nlohmann::json::parse(written(R"(, "torch_dtype": "float32"})", "fp8"));
  EXPECT_EQ(fp8.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(fp8.at("quantization_config").at("weight_block_size"), nlohmann::json::array({128, 128}));
  EXPECT_EQ(fp8.at("quantization_config").at("quant_method"), "fp8");
}

}  // namespace
}  // namespace spin::app
