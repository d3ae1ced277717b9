// train::update_router_biases: DeepSeek-V3's auxiliary-loss-free balancing of a sigmoid router's
// correction biases (GLM-4.5's), against its rule worked by hand.
#include <gtest/gtest.h>

#include <vector>

#include "common/tiny_model.h"
#include "train/pipeline_trainer.h"

namespace spin::train {
namespace {

// A GLM-4.5 of three layers (layer 0 dense, 4 experts a layer after): with loads [3, 1, 2, 2] in
// layer 1 (mean 2) expert 0's bias falls by the rate, expert 1's rises, experts 2 and 3 (at the mean)
// keep theirs; layer 2's [0, 8, 0, 0] (mean 2) raises three and lowers one. A stage of layers 1-2
// alone moves the same layers' biases from the same whole-model loads.
TEST(RouterBias, MovesEachExpertTowardTheLayersMeanLoad) {
  testing::TinyShape shape;
  shape.family = testing::TinyFamily::Glm4Moe;
  shape.layers = 3;
  model::ModelConfig config = testing::tiny_config(shape);
  config.router_bias_update_rate = 0.25f;
  const std::vector<double> load = {0, 0, 0, 0, 3, 1, 2, 2, 0, 8, 0, 0};
  for (const model::StageLayers stage : {model::StageLayers::whole(3), model::StageLayers{1, 3, false, true}}) {
    model::ModelWeights w(config, model::tp_dims(config, 0, 1), stage);
    testing::init_tiny_weights(w, 5);
    const auto bias = [&](std::int64_t layer) {
      return to_host<float>(w.layers[static_cast<std::size_t>(layer - stage.begin)].router_bias);
    };
    EXPECT_FALSE(w.layers[0].router_bias.defined() && stage.begin == 0) << "layer 0 is dense";
    const std::vector<float> before1 = bias(1), before2 = bias(2);
    update_router_biases(w, stage, config, load);
    const std::vector<float> after1 = bias(1), after2 = bias(2);
    const std::vector<float> step1 = {-0.25f, 0.25f, 0.0f, 0.0f}, step2 = {0.25f, -0.25f, 0.25f, 0.25f};
    for (std::size_t e = 0; e < 4; ++e) {
      EXPECT_EQ(after1[e], before1[e] + step1[e]) << "layer 1 expert " << e;
      EXPECT_EQ(after2[e], before2[e] + step2[e]) << "layer 2 expert " << e;
    }
  }
}

// StepMetrics::expert_rank_load_max: 4 experts over 2 expert-parallel groups. A dense layer (all 0)
// is skipped; layer 1's [3, 1, 2, 2]: groups 4 and 4, balanced; layer 2's [0, 8, 0, 0]: 8 and 0, the busiest
// twice the mean -- the largest over the layers. Over 4 groups (one expert each) layer 2's busiest is 4x.
TEST(RouterBias, ExpertGroupLoadIsTheBusiestGroupOverTheMean) {
  const std::vector<double> load = {0, 0, 0, 0, 3, 1, 2, 2, 0, 8, 0, 0};
  EXPECT_EQ(expert_group_load_max(load, 4, 2), 2.0);
  EXPECT_EQ(expert_group_load_max(load, 4, 4), 4.0);
  EXPECT_EQ(expert_group_load_max({3, 1, 2, 2}, 4, 2), 1.0);
  EXPECT_EQ(expert_group_load_max({0, 0, 0, 0}, 4, 2), 0.0);
}

}  // namespace
}  // namespace spin::train
