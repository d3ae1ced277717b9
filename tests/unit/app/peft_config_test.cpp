// app::lora_from_peft_config: a PEFT adapter_config.json read as spin's LoRA settings (rank, alpha,
// rsLoRA, targets -- PEFT's module names, all-linear, Phi-3's fused modules), and each thing
// spin's merge would not reproduce refused with the file and field named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "app/model_setup.h"
#include "common/scratch_dir.h"
#include "core/error.h"

namespace spin::app {
namespace {

namespace fs = std::filesystem;

struct PeftConfigTest : ::testing::Test {
  // PEFT 0.10's adapter_config.json of a LoRA on q_proj and v_proj, with `changes` applied.
  model::LoraConfig read(const nlohmann::json& changes = nlohmann::json::object()) const {
    nlohmann::json config = {{"peft_type", "LORA"},       {"task_type", "CAUSAL_LM"}, {"r", 8},
                             {"lora_alpha", 16},          {"lora_dropout", 0.05},     {"bias", "none"},
                             {"fan_in_fan_out", false},   {"use_rslora", false},      {"use_dora", false},
                             {"modules_to_save", nullptr}, {"layers_to_transform", nullptr},
                             {"rank_pattern", nlohmann::json::object()},
                             {"alpha_pattern", nlohmann::json::object()},
                             {"target_modules", {"v_proj", "q_proj"}}};
    config.update(changes);
    std::ofstream(dir / "adapter_config.json") << config.dump();
    return lora_from_peft_config(dir.string());
  }
  // The one error `changes` cause names the file and `field`.
  void expect_refused(const nlohmann::json& changes, const std::string& field) const {
    try {
      read(changes);
      ADD_FAILURE() << changes.dump() << " was accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find((dir / "adapter_config.json").string()), std::string::npos) << what;
      EXPECT_NE(what.find(field), std::string::npos) << what;
    }
  }
  testing::ScratchDir scratch{"spin_peft_config"};
  fs::path dir = scratch.path();
};

TEST_F(PeftConfigTest, ReadsRankAlphaRsloraAndTargets) {
  model::LoraConfig lora = read();
  EXPECT_EQ(lora.rank, 8);
  EXPECT_EQ(lora.alpha, 16.0);
  EXPECT_FALSE(lora.rslora);
  EXPECT_EQ(lora.targets_text(), "q_proj,v_proj");
  EXPECT_EQ(lora.scale(), 2.0f);
  lora = read({{"use_rslora", true}, {"target_modules", "all-linear"}, {"lora_alpha", 4.5}});
  EXPECT_TRUE(lora.rslora);
  EXPECT_EQ(lora.alpha, 4.5);
  // every target (a merge keeps the model's: lora_targets_of_model)
  EXPECT_EQ(lora.targets_text(),
            "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,q_a_proj,kv_a_proj_with_mqa,kv_b_proj");
  lora = read({{"target_modules", {"qkv_proj", "gate_up_proj"}}});  // Phi-3's fused modules
  EXPECT_EQ(lora.targets_text(), "q_proj,k_proj,v_proj,gate_proj,up_proj");
  // Absent optional fields and empty lists are PEFT's defaults.
  std::ofstream(dir / "adapter_config.json")
      << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "modules_to_save": []})";
  EXPECT_EQ(lora_from_peft_config(dir.string()).targets_text(), "o_proj");
  // A mixture's gates among the modules (PEFT's all-linear of Mixtral or Qwen2-MoE): apart from the
  // projections, to merge; the experts' modules by Mixtral's names.
  std::ofstream(dir / "adapter_config.json")
      << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["w2", "gate", "q_proj",
             "shared_expert_gate"]})";
  const PeftAdapter moe = peft_adapter(dir.string());
  EXPECT_EQ(moe.lora.targets_text(), "q_proj,down_proj");
  EXPECT_EQ(moe.gates, (std::vector<std::string>{"gate", "shared_expert_gate"}));
}

// rank_pattern / alpha_pattern resolved as LoraModel._create_and_replace does: the first key of
// rank_pattern then alpha_pattern (in the file's order) that re.match(rf".*\.{key}$", module)
// accepts, its rank and alpha from the patterns that hold that key, r and lora_alpha otherwise.
TEST_F(PeftConfigTest, ResolvesRankAndAlphaPatternsAsPeft) {
  std::ofstream(dir / "adapter_config.json") << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
      "target_modules": ["q_proj", "v_proj", "down_proj"],
      "rank_pattern": {"v_proj": 2, "layers.1.self_attn.q_proj": 6, "q_proj": 3},
      "alpha_pattern": {"q_proj": 5, "down_proj": 1.5, "layers\\.[23]\\.mlp\\.down_proj": 7}})";
  const PeftAdapter a = peft_adapter(dir.string());
  ASSERT_EQ(a.rank_pattern.size(), 3u);
  ASSERT_EQ(a.alpha_pattern.size(), 3u);
  using RankAlpha = std::pair<std::int64_t, double>;
  EXPECT_EQ(a.module_rank_alpha("model.layers.0.self_attn.v_proj"), (RankAlpha{2, 8.0}));
  // layer 1's q_proj: its own key first (rank 6), whose alpha is not in alpha_pattern: lora_alpha.
  EXPECT_EQ(a.module_rank_alpha("model.layers.1.self_attn.q_proj"), (RankAlpha{6, 8.0}));
  EXPECT_EQ(a.module_rank_alpha("model.layers.0.self_attn.q_proj"), (RankAlpha{3, 5.0}));
  EXPECT_EQ(a.module_rank_alpha("model.layers.11.self_attn.q_proj"), (RankAlpha{3, 5.0}));  // not layer 1's key
  EXPECT_EQ(a.module_rank_alpha("model.layers.0.mlp.down_proj"), (RankAlpha{4, 1.5}));
  // down_proj's key comes first in alpha_pattern, so layers 2 and 3 take 1.5 too, as PEFT gives them.
  EXPECT_EQ(a.module_rank_alpha("model.layers.2.mlp.down_proj"), (RankAlpha{4, 1.5}));
  EXPECT_EQ(a.module_rank_alpha("model.layers.0.self_attn.k_proj"), (RankAlpha{4, 8.0}));
  EXPECT_EQ(a.module_rank_alpha("model.layers.0.self_attn.xv_proj"), (RankAlpha{4, 8.0}));  // ".v_proj" must end it
  const PeftAdapter plain = peft_adapter((read(), dir.string()));  // empty objects: none
  EXPECT_TRUE(plain.rank_pattern.empty() && plain.alpha_pattern.empty());
}

TEST_F(PeftConfigTest, RefusesWhatIsNotPlainLoraNamingTheField) {
  expect_refused({{"peft_type", "IA3"}}, "peft_type");
  expect_refused({{"r", 0}}, "r must be");
  expect_refused({{"lora_alpha", "16"}}, "lora_alpha");
  expect_refused({{"use_dora", true}}, "use_dora");
  expect_refused({{"bias", "lora_only"}}, "bias");
  expect_refused({{"fan_in_fan_out", true}}, "fan_in_fan_out");
  expect_refused({{"modules_to_save", {"lm_head"}}}, "modules_to_save");
  expect_refused({{"layers_to_transform", {0, 1}}}, "layers_to_transform");
  expect_refused({{"rank_pattern", {{"q_proj", 0}}}}, "rank_pattern[\"q_proj\"] = 0");
  expect_refused({{"rank_pattern", {{"q_proj", 2.5}}}}, "rank_pattern[\"q_proj\"]");
  expect_refused({{"alpha_pattern", {{"q_proj", "4"}}}}, "alpha_pattern[\"q_proj\"]");
  expect_refused({{"alpha_pattern", {{"q_proj(", 4}}}}, "alpha_pattern key \"q_proj(\"");
  expect_refused({{"rank_pattern", {4}}}, "rank_pattern");
  expect_refused({{"target_modules", ".*proj"}}, "target_modules");
  expect_refused({{"target_modules", {"q_proj", "lm_head"}}}, "target_modules");
  expect_refused({{"use_rslora", "yes"}}, "use_rslora");
  fs::remove(dir / "adapter_config.json");
  EXPECT_THROW(lora_from_peft_config(dir.string()), Error);
}

}  // namespace
}  // namespace spin::app
