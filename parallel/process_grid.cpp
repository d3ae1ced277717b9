#include "parallel/process_grid.h"

#include "core/error.h"

namespace spin::parallel {

Layout resolve_layout(int world_size, Layout layout) {
  require(layout.tp >= 1 && layout.pp >= 1 && layout.dp >= 0, "invalid parallel layout: tp ",
          layout.tp, ", pp ", layout.pp, ", dp ", layout.dp, " (each must be at least 1)");
  require(layout.ep >= 1 && layout.tp % layout.ep == 0, "invalid parallel layout: expert-parallel size ", layout.ep,
          " does not divide tp ", layout.tp, " (the expert-parallel groups are carved from the TP group)");
  const int model_parallel = layout.tp * layout.pp;
  if (layout.dp == 0) {
    require(world_size % model_parallel == 0, "world size ", world_size,
            " is not divisible by tp (", layout.tp, ") x pp (", layout.pp,
            ") = ", model_parallel);
    layout.dp = world_size / model_parallel;
  }
  require(model_parallel * layout.dp == world_size, "tp (", layout.tp, ") x pp (", layout.pp,
          ") x dp (", layout.dp, ") = ", model_parallel * layout.dp,
          " does not match the world size ", world_size);
  return layout;
}

ProcessGrid::ProcessGrid(Communicator& world, Layout layout)
    : world_(world), layout_(resolve_layout(world.size(), layout)) {
  const int rank = world.rank();
  const int tp = layout_.tp;
  const int dp = layout_.dp;
  tp_rank_ = rank % tp;
  dp_rank_ = (rank / tp) % dp;
  pp_rank_ = rank / (tp * dp);
  // Colours identify the group (the coordinates a rank shares with its group), keys order it.
  tp_ = world.split(pp_rank_ * dp + dp_rank_, tp_rank_);
  dp_ = world.split(pp_rank_ * tp + tp_rank_, dp_rank_);
  pp_ = world.split(dp_rank_ * tp + tp_rank_, pp_rank_);
  mp_ = world.split(dp_rank_, pp_rank_ * tp + tp_rank_);
  const bool holds_embedding = layout_.pp > 1 && (is_first_stage() || is_last_stage());
  embedding_ = world.split(holds_embedding ? dp_rank_ * tp + tp_rank_ : tp * dp + rank, pp_rank_);
}

std::string ProcessGrid::describe() const {
  return cat("tp ", tp_rank_, "/", layout_.tp, ", pp ", pp_rank_, "/", layout_.pp, ", dp ", dp_rank_, "/", layout_.dp,
             layout_.ep > 1 ? cat(", ep ", layout_.ep) : std::string());
}

}  // namespace spin::parallel
