#include "train/checkpointing.h"

#include "checkpoint/shard_rectangles.h"
#include "core/error.h"

namespace spin::train {

namespace {

// Pieces pointing into `host`, a host copy of w's flat buffer (w's own on the CPU path).
void add_weights(std::vector<ckpt::PieceWrite>& pieces, const std::string& group,
                 const model::ModelWeights& w, const Tensor& host) {
  for (const ShardedTensor& t : w.sharded_state_dict()) {
    if (!t.primary) continue;
    const ckpt::ShardRectangle r = ckpt::shard_rectangle(t);
    pieces.push_back({group, t.name, t.global_shape, r.start, r.count,
                      host.f32() + w.offset_of(t.local) + r.local_offset});
  }
}

}  // namespace

void save_checkpoint(const std::string& save_dir, std::int64_t step,
                     const parallel::ProcessGrid& grid, const model::ModelWeights& policy,
                     const model::ModelWeights* reference, const Optimizer* optimizer,
                     bool distributed_optimizer,
                     const std::map<std::string, std::string>& attributes, int keep_last,
                     const std::vector<std::string>& extra_files) {
  ckpt::CheckpointWriter writer(grid.world(), ckpt::checkpoint_dir(save_dir, step));
  std::vector<ckpt::PieceWrite> pieces;
  Tensor policy_host, reference_host;  // alive until the file is written
  if (grid.dp_rank() == 0) {
    policy_host = host_readable(policy.flat());
    add_weights(pieces, "policy", policy, policy_host);
    if (reference) {
      reference_host = host_readable(reference->flat());
      add_weights(pieces, "reference", *reference, reference_host);
    }
  }
  if (optimizer && (distributed_optimizer || grid.dp_rank() == 0)) {
    for (ckpt::PieceWrite& p : optimizer->state_pieces()) pieces.push_back(std::move(p));
  }
  if (!pieces.empty()) {
    writer.write_file(cat("shard_tp", grid.tp_rank(), "_pp", grid.pp_rank(), "_dp", grid.dp_rank(), ".h5"),
                      pieces);
  }
  writer.commit(attributes, keep_last, extra_files);
}

void load_weights(const ckpt::CheckpointReader& reader, const std::string& group,
                  model::ModelWeights& weights) {
  const Tensor host = host_readable(weights.flat());
  for (const ShardedTensor& t : weights.sharded_state_dict()) {
    require(reader.has(group, t.name), reader.dir(), ": no ", group, " tensor ", t.name,
            " (a checkpoint of another model?)");
    require(reader.shape(group, t.name) == t.global_shape, reader.dir(), ": ", group, "/", t.name,
            " has shape ", shape_str(reader.shape(group, t.name)), "; the model expects ",
            shape_str(t.global_shape));
    const ckpt::ShardRectangle r = ckpt::shard_rectangle(t);
    reader.read(group, t.name, r.start, r.count, host.f32() + weights.offset_of(t.local) + r.local_offset);
  }
  weights.flat().copy_from(host);
  weights.refresh_bf16_on_host();
}

}  // namespace spin::train
