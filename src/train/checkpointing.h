// Training checkpoints (HDF5, checkpoint/sharded_checkpoint.h) of a model split over TP x PP x
// DP ranks. Who writes what:
//   - DP rank 0 of every (TP, PP) position writes its primary shards of the policy ("policy"
//     group) and, when given, of the reference ("reference") into shard_tp<t>_pp<p>_dp0.h5,
//     and, without the distributed optimizer, its AdamW moments;
//   - with the distributed optimizer every DP rank writes the moments it owns into
//     shard_tp<t>_pp<p>_dp<d>.h5.
// Loading reads each rank's own rectangles by global tensor name, whatever the layout, DP size
// or optimizer mode of the run that saved: resharding needs no conversion step.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "checkpoint/sharded_checkpoint.h"
#include "model/weights.h"
#include "parallel/process_grid.h"
#include "train/optimizer.h"

namespace spin::train {

// Collective over the grid's world. Writes <save_dir>/step_<step> with `attributes` in its
// index; keeps the newest `keep_last` (0: all). `distributed_optimizer` says whether every DP
// rank holds a different part of the optimizer state.
void save_checkpoint(const std::string& save_dir, std::int64_t step,
                     const parallel::ProcessGrid& grid, const model::ModelWeights& policy,
                     const model::ModelWeights* reference, const Optimizer* optimizer,
                     bool distributed_optimizer,
                     const std::map<std::string, std::string>& attributes, int keep_last,
                     const std::vector<std::string>& extra_files = {});

// This rank's shards of group `group` ("policy", "reference") into `weights`.
void load_weights(const ckpt::CheckpointReader& reader, const std::string& group,
                  model::ModelWeights& weights);

}  // namespace spin::train
