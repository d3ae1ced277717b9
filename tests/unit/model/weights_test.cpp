#include "model/weights.h"

#include <gtest/gtest.h>

#include "common/tiny_model.h"

namespace spin::model {
namespace {

TEST(ModelWeights, ListsHuggingFaceNamesWithShapesOnce) {
  testing::TinyShape s;
  s.tie = true;
  const ModelConfig c = testing::tiny_config(s);
  const ModelWeights w(c, tp_dims(c, 1, 2));
  const auto& p = w.sharded_state_dict();
  ASSERT_EQ(p.size(), 1u + 9u * 2u + 1u);  // tied: no separate lm_head
  EXPECT_EQ(p[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(p[0].local.shape(), (Shape{19, 16}));
  EXPECT_EQ(p[0].offset, 19);
  EXPECT_EQ(p[0].length, 18);
  EXPECT_EQ(p[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(p[2].global_shape, (Shape{16, 16}));
  EXPECT_EQ(p[2].split_dim, 0);
  EXPECT_EQ(p[5].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(p[5].split_dim, 1);
  EXPECT_EQ(p[5].local.shape(), (Shape{16, 8}));
  EXPECT_EQ(p.back().name, "model.norm.weight");
  EXPECT_TRUE(p.back().replicated());
  EXPECT_EQ(w.lm_head.raw(), w.embed_tokens.raw());
}

// The SPIN reference sync: a local copy of every shard, independent afterwards.
// The module PEFT adapts for each projection: spin's own, or in Phi-3's files the fused one.
TEST(ModelWeights, PeftModulesFollowTheFilesFusions) {
  const auto config_of = [](testing::TinyFamily family) {
    testing::TinyShape shape;
    shape.family = family;
    return testing::tiny_config(shape);
  };
  const ModelConfig llama = testing::tiny_config();
  const ModelConfig phi3 = config_of(testing::TinyFamily::Phi3);
  EXPECT_EQ(peft_module(llama, LoraTarget::K), "self_attn.k_proj");
  EXPECT_EQ(peft_module(llama, LoraTarget::Up), "mlp.up_proj");
  EXPECT_EQ(peft_module(phi3, LoraTarget::K), "self_attn.qkv_proj");
  EXPECT_EQ(peft_module(phi3, LoraTarget::Up), "mlp.gate_up_proj");
  EXPECT_EQ(peft_module(phi3, LoraTarget::O), "self_attn.o_proj");
  EXPECT_EQ(peft_module(phi3, LoraTarget::Down), "mlp.down_proj");
  EXPECT_EQ(lora_module(llama, LoraTarget::Gate), "mlp.gate_proj");
  // DeepSeek-V3's latent projections under their own names, q_b_proj's as Q's (V2-Lite's q_proj without a q
  // latent).
  const ModelConfig v3 = config_of(testing::TinyFamily::DeepseekV3);
  EXPECT_EQ(peft_module(v3, LoraTarget::Q), "self_attn.q_b_proj");
  EXPECT_EQ(peft_module(v3, LoraTarget::QA), "self_attn.q_a_proj");
  EXPECT_EQ(peft_module(v3, LoraTarget::KvA), "self_attn.kv_a_proj_with_mqa");
  EXPECT_EQ(peft_module(v3, LoraTarget::KvB), "self_attn.kv_b_proj");
  EXPECT_EQ(peft_module(config_of(testing::TinyFamily::DeepseekV2), LoraTarget::Q), "self_attn.q_proj");
  // GPT-NeoX: q, k and v in query_key_value (fused per head), its other modules renamed.
  const ModelConfig neox = config_of(testing::TinyFamily::GptNeox);
  EXPECT_EQ(peft_module(neox, LoraTarget::V), "attention.query_key_value");
  EXPECT_EQ(peft_module(neox, LoraTarget::O), "attention.dense");
  EXPECT_EQ(peft_module(neox, LoraTarget::Up), "mlp.dense_h_to_4h");
  // A mixture of experts: every expert's modules (Mixtral's names in its files), the shared expert's.
  const std::vector<LoraModule> mixtral = lora_modules(config_of(testing::TinyFamily::Mixtral), LoraTarget::Down, 0);
  ASSERT_EQ(mixtral.size(), 4u);
  EXPECT_EQ(mixtral[3].spin, "mlp.experts.3.down_proj");
  EXPECT_EQ(mixtral[3].peft, "block_sparse_moe.experts.3.w2");
  const ModelConfig qwen2_moe = config_of(testing::TinyFamily::Qwen2Moe);
  const std::vector<LoraModule> qwen = lora_modules(qwen2_moe, LoraTarget::Gate, 0);
  ASSERT_EQ(qwen.size(), 5u);
  EXPECT_EQ(qwen[4].spin, "mlp.shared_expert.gate_proj");
  EXPECT_EQ(qwen[4].peft, "mlp.shared_expert.gate_proj");
  EXPECT_EQ(lora_modules(qwen2_moe, LoraTarget::Q, 0)[0].peft, "self_attn.q_proj");
}

TEST(ModelWeights, CopyFromCopiesEveryParameterAndZeroClears) {
  const ModelConfig c = testing::tiny_config();
  ModelWeights policy(c, tp_dims(c, 0, 1)), reference(c, tp_dims(c, 0, 1));
  policy.init_random(4, 0.1f);
  reference.copy_from(policy);
  const float* p = policy.flat().f32();
  const float* r = reference.flat().f32();
  for (std::int64_t i = 0; i < policy.flat().numel(); ++i) ASSERT_EQ(p[i], r[i]);
  policy.zero();
  EXPECT_NE(reference.layers[1].down_proj.f32()[3], 0.0f);
  for (std::int64_t i = 0; i < policy.flat().numel(); ++i) ASSERT_EQ(p[i], 0.0f);
}

// init_random gives the same global model whatever the TP layout: TP=2 shards, put together,
// equal the TP=1 tensors.
TEST(ModelWeights, RandomInitIsLayoutInvariant) {
  const ModelConfig c = testing::tiny_config();
  ModelWeights whole(c, tp_dims(c, 0, 1));
  whole.init_random(3, 0.1f);
  std::vector<ModelWeights> shards;
  for (int r = 0; r < 2; ++r) {
    shards.emplace_back(c, tp_dims(c, r, 2));
    shards.back().init_random(3, 0.1f);
  }
  const auto& full = whole.sharded_state_dict();
  for (std::size_t p = 0; p < full.size(); ++p) {
    const float* g = full[p].local.f32();
    const std::int64_t cols = full[p].global_shape.size() == 2 ? full[p].global_shape[1] : 1;
    for (const ModelWeights& sw : shards) {
      const ShardedTensor& t = sw.sharded_state_dict()[p];
      const float* l = t.local.f32();
      if (t.replicated()) {
        for (std::int64_t i = 0; i < t.local.numel(); ++i) ASSERT_EQ(l[i], g[i]) << t.name;
        continue;
      }
      const std::int64_t lc = t.local.shape()[1];
      for (std::int64_t r = 0; r < t.local.shape()[0]; ++r) {
        for (std::int64_t col = 0; col < lc; ++col) {
          const std::int64_t gr = t.split_dim == 0 ? t.offset + r : r;
          const std::int64_t gc = t.split_dim == 1 ? t.offset + col : col;
          const bool padding = (t.split_dim == 0 ? r : col) >= t.length;
          ASSERT_EQ(l[r * lc + col], padding ? 0.0f : g[gr * cols + gc]) << t.name;
        }
      }
    }
  }
}

}  // namespace
}  // namespace spin::model
