#include "train/checkpointing.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string_view>

#include "checkpoint/shard_rectangles.h"
#include "kernels/cpu/cpu_kernels.h"
#include "core/error.h"
#include "parallel/job_errors.h"

namespace spin::train {

namespace {

// This rank's pieces of a checkpoint: they point into `hosts` (host copies of device buffers,
// kept alive by the caller) or into the CPU path's live buffers.
std::vector<ckpt::PieceWrite> checkpoint_pieces(const parallel::ProcessGrid& grid, const model::ModelWeights& policy,
                                                const model::ModelWeights* reference, const Optimizer* optimizer,
                                                bool distributed_optimizer, std::vector<Tensor>& hosts,
                                                const std::vector<ckpt::PieceWrite>& extra) {
  std::vector<ckpt::PieceWrite> pieces = extra;
  if (grid.dp_rank() == 0) {
    hosts.push_back(policy.values_on_host());
    for (ckpt::PieceWrite& p : weight_pieces("policy", policy, hosts.back())) pieces.push_back(std::move(p));
    if (reference) {
      hosts.push_back(reference->values_on_host());
      for (ckpt::PieceWrite& p : weight_pieces("reference", *reference, hosts.back())) pieces.push_back(std::move(p));
    }
  }
  if (optimizer && (distributed_optimizer || grid.dp_rank() == 0)) {
    for (ckpt::PieceWrite& p : optimizer->state_pieces()) pieces.push_back(std::move(p));
  }
  return pieces;
}

std::string shard_file(const parallel::ProcessGrid& grid) {
  return cat("shard_tp", grid.tp_rank(), "_pp", grid.pp_rank(), "_dp", grid.dp_rank(), ".h5");
}

// LoRA: `base` with `adapters` merged (W + scale B A) in host memory, of base's layout (the
// arguments it was made with).
model::ModelWeights merged_on_host(const model::ModelConfig& config, const model::TpDims& dims,
                                   std::span<const model::StageLayers> chunks, std::int64_t pad_multiple,
                                   const model::ModelWeights& base, const model::ModelWeights& adapters) {
  model::ModelWeights merged(config, dims, chunks, pad_multiple, Device::Cpu);
  merged.copy_from(base);
  model::ModelWeights host_adapters =
      model::ModelWeights::adapters(config, adapters.lora(), dims, chunks, pad_multiple, Device::Cpu);
  host_adapters.copy_from(adapters);
  host_adapters.merge_into(merged, kernels::CpuKernels());
  return merged;
}

}  // namespace

std::vector<ckpt::PieceWrite> weight_pieces(const std::string& group, const model::ModelWeights& w,
                                            const Tensor& host) {
  std::vector<ckpt::PieceWrite> pieces;
  for (std::size_t i = 0; i < w.sharded_state_dict().size(); ++i) {
    const ShardedTensor& t = w.sharded_state_dict()[i];
    if (!t.primary) continue;
    const ckpt::ShardRectangle r = ckpt::shard_rectangle(t);
    pieces.push_back(
        {group, t.name, t.global_shape, r.start, r.count, host.f32() + w.layout_offsets()[i] + r.local_offset});
  }
  return pieces;
}

AdapterCheckpoint::AdapterCheckpoint(const parallel::ProcessGrid& grid, const model::ModelConfig& config,
                                     const model::TpDims& dims, std::span<const model::StageLayers> chunks,
                                     std::int64_t pad_multiple, const model::ModelWeights& base,
                                     const model::ModelWeights& adapters) {
  if (grid.dp_rank() != 0) return;
  merged.emplace(merged_on_host(config, dims, chunks, pad_multiple, base, adapters));
  host = adapters.values_on_host();
  pieces = weight_pieces("lora", adapters, host);
}

void save_checkpoint(const std::string& save_dir, std::int64_t step,
                     const parallel::ProcessGrid& grid, const model::ModelWeights& policy,
                     const model::ModelWeights* reference, const Optimizer* optimizer,
                     bool distributed_optimizer,
                     const std::map<std::string, std::string>& attributes, int keep_last,
                     const std::vector<std::string>& extra_files, const std::vector<ckpt::PieceWrite>& extra_pieces) {
  ckpt::CheckpointWriter writer(grid.world(), ckpt::checkpoint_dir(save_dir, step));
  std::vector<Tensor> hosts;  // alive until the file is written
  const std::vector<ckpt::PieceWrite> pieces =
      checkpoint_pieces(grid, policy, reference, optimizer, distributed_optimizer, hosts, extra_pieces);
  if (!pieces.empty()) writer.write_file(shard_file(grid), pieces);
  writer.commit(attributes, keep_last, extra_files);
}

CheckpointSaver::~CheckpointSaver() {
  if (thread_.joinable()) thread_.join();
}

void CheckpointSaver::save(const std::string& save_dir, std::int64_t step, const parallel::ProcessGrid& grid,
                           const model::ModelWeights& policy, const model::ModelWeights* reference,
                           const Optimizer* optimizer, bool distributed_optimizer,
                           const std::map<std::string, std::string>& attributes, int keep_last,
                           const std::vector<std::string>& extra_files,
                           const std::vector<ckpt::PieceWrite>& extra_pieces) {
  finish();
  if (!async_) {
    save_checkpoint(save_dir, step, grid, policy, reference, optimizer, distributed_optimizer, attributes, keep_last,
                    extra_files, extra_pieces);
    return;
  }
  grid_ = &grid;
  dir_ = ckpt::checkpoint_dir(save_dir, step);
  writer_ = std::make_unique<ckpt::CheckpointWriter>(grid.world(), dir_);
  // The snapshot: every piece's values copied now, so that training may go on.
  std::vector<Tensor> hosts;
  pieces_ = checkpoint_pieces(grid, policy, reference, optimizer, distributed_optimizer, hosts, extra_pieces);
  std::size_t total = 0;
  for (const ckpt::PieceWrite& p : pieces_) total += static_cast<std::size_t>(shape_numel(p.count));
  snapshot_.resize(total);
  float* at = snapshot_.data();
  for (ckpt::PieceWrite& p : pieces_) {
    const auto n = static_cast<std::size_t>(shape_numel(p.count));
    std::copy(p.data, p.data + n, at);
    p.data = at;
    at += n;
  }
  attributes_ = attributes;
  keep_last_ = keep_last;
  extra_files_ = extra_files;
  error_ = nullptr;
  if (pieces_.empty()) return;
  // Test hooks: hold the write back, so that training surely changes the live buffers first;
  // fail rank 1's write, as a full disk would.
  const char* fault_env = std::getenv("SPIN_FAULT");
  const std::string_view fault = fault_env != nullptr ? fault_env : "";
  const bool fail = fault == "async-save-fail" && grid.world().rank() == 1;
  thread_ = std::thread([this, file = shard_file(grid), delay = fault == "async-save-delay", fail] {
    try {
      if (delay) std::this_thread::sleep_for(std::chrono::seconds(1));
      require(!fail, dir_, ": ", file, ": write failed (SPIN_FAULT=async-save-fail)");
      writer_->write_file(file, pieces_);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

std::optional<std::string> CheckpointSaver::finish() {
  if (!writer_) return std::nullopt;
  parallel::run_collectively(grid_->world(), [&] {
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(error_);
  });
  writer_->commit(attributes_, keep_last_, extra_files_);
  writer_.reset();
  std::vector<float>().swap(snapshot_);  // the host memory back until the next save
  pieces_.clear();
  return dir_;
}

void load_weights(const ckpt::CheckpointReader& reader, const std::string& group,
                  model::ModelWeights& weights) {
  // A tensor at a time: read into its host memory (the CPU path's float32 values in place), or into
  // a host buffer of its size and moved to the device -- rounded where the model holds it in bf16
  // (FrozenBf16) -- so that no more than one tensor is staged.
  for (const ShardedTensor& t : weights.sharded_state_dict()) {
    require(reader.has(group, t.name), reader.dir(), ": no ", group, " tensor ", t.name,
            " (a checkpoint of another model?)");
    require(reader.shape(group, t.name) == t.global_shape, reader.dir(), ": ", group, "/", t.name, " has shape ",
            shape_text(reader.shape(group, t.name)), "; the model expects ", shape_text(t.global_shape));
    const ckpt::ShardRectangle r = ckpt::shard_rectangle(t);
    const bool in_place = t.local.device() == Device::Cpu && t.local.dtype() == DType::F32;
    const Tensor host = in_place ? t.local : Tensor::zeros(t.local.shape());
    reader.read(group, t.name, r.start, r.count, host.f32() + r.local_offset);
    if (!in_place) assign_from_float32(t.local, host);
  }
  weights.refresh_bf16_on_host();  // a Float32 model's copy (none yet where a run loads: Runtime::prepare follows)
}

}  // namespace spin::train
