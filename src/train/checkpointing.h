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

#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/sharded_checkpoint.h"
#include "model/weights.h"
#include "parallel/process_grid.h"
#include "train/optimizer.h"

namespace spin::train {

// Collective over the grid's world. Writes <save_dir>/step_<step> with `attributes` in its
// index; keeps the newest `keep_last` (0: all). `distributed_optimizer` says whether every DP
// rank holds a different part of the optimizer state. `extra_pieces`: more pieces this rank
// writes into its file (the trainer's own state; their data need live only during the call).
void save_checkpoint(const std::string& save_dir, std::int64_t step,
                     const parallel::ProcessGrid& grid, const model::ModelWeights& policy,
                     const model::ModelWeights* reference, const Optimizer* optimizer,
                     bool distributed_optimizer,
                     const std::map<std::string, std::string>& attributes, int keep_last,
                     const std::vector<std::string>& extra_files = {},
                     const std::vector<ckpt::PieceWrite>& extra_pieces = {});

// save_checkpoint, optionally in the background (Megatron's --async-save). save() snapshots this
// rank's pieces into host memory it owns (the caller may change the weights and moments at once),
// creates the checkpoint's temporary directory (collective) and writes this rank's file on a
// thread while training goes on; finish() -- collective; save() calls it first, and the run calls
// it before it ends -- waits for every rank's file and commits the index: only then does the
// checkpoint exist and `latest` point to it, so a crash in between leaves the previous one.
// Without `async` save() is save_checkpoint. Errors of the background write surface in finish()
// on every rank.
class CheckpointSaver {
 public:
  explicit CheckpointSaver(bool async) : async_(async) {}
  ~CheckpointSaver();  // waits for the thread; an unfinished checkpoint stays uncommitted
  CheckpointSaver(const CheckpointSaver&) = delete;
  CheckpointSaver& operator=(const CheckpointSaver&) = delete;

  // The arguments of save_checkpoint.
  void save(const std::string& save_dir, std::int64_t step, const parallel::ProcessGrid& grid,
            const model::ModelWeights& policy, const model::ModelWeights* reference, const Optimizer* optimizer,
            bool distributed_optimizer, const std::map<std::string, std::string>& attributes, int keep_last,
            const std::vector<std::string>& extra_files = {}, const std::vector<ckpt::PieceWrite>& extra_pieces = {});
  // Commits the pending checkpoint, if any, and returns its directory. Collective.
  std::optional<std::string> finish();
  bool pending() const { return writer_ != nullptr; }

 private:
  bool async_;
  const parallel::ProcessGrid* grid_ = nullptr;
  std::unique_ptr<ckpt::CheckpointWriter> writer_;
  std::string dir_;
  std::vector<float> snapshot_;  // every piece's values, back to back
  std::vector<ckpt::PieceWrite> pieces_;
  std::map<std::string, std::string> attributes_;
  int keep_last_ = 0;
  std::vector<std::string> extra_files_;
  std::thread thread_;
  std::exception_ptr error_;
};

// Pieces of w's primary shards as group `group`, pointing into `host`: w's values on the host
// (ModelWeights::values_on_host), alive until they are written.
std::vector<ckpt::PieceWrite> weight_pieces(const std::string& group, const model::ModelWeights& w,
                                            const Tensor& host);

// What a LoRA run (spin train, spin sft) adds to a checkpoint, on DP rank 0 -- the writer of
// weights -- and nothing on the other ranks: the merged model to write as the policy (so that
// every tool reads the checkpoint as a model's), and the adapters' pieces (group "lora", which a
// resumed run trains on), pointing into a host copy this object keeps.
struct AdapterCheckpoint {
  AdapterCheckpoint(const parallel::ProcessGrid& grid, const model::ModelConfig& config, const model::TpDims& dims,
                    std::span<const model::StageLayers> chunks, std::int64_t pad_multiple,
                    const model::ModelWeights& base, const model::ModelWeights& adapters);
  // The policy to save: the merged model on DP rank 0, else `policy` (which that rank does not write).
  const model::ModelWeights& policy_or(const model::ModelWeights& policy) const { return merged ? *merged : policy; }

  std::optional<model::ModelWeights> merged;
  Tensor host;
  std::vector<ckpt::PieceWrite> pieces;
};

// This rank's shards of group `group` ("policy", "reference", "lora") into `weights`.
void load_weights(const ckpt::CheckpointReader& reader, const std::string& group,
                  model::ModelWeights& weights);

}  // namespace spin::train
