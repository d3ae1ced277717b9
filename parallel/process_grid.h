// ProcessGrid: the tensor-, pipeline- and data-parallel groups, built once from the world
// communicator and passed by reference everywhere (picotron's process-group manager, Megatron's
// parallel_state without the globals). Rank order is TP fastest, then DP, then PP:
//   world_rank = pp_rank * (dp * tp) + dp_rank * tp + tp_rank
// so a TP group is `tp` consecutive ranks (inside one node with the usual launch).
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace spin::parallel {

struct Layout {
  int tp = 1;
  int pp = 1;
  int dp = 0;  // 0: world_size / (tp * pp)
  // A mixture's expert-parallel size, folded onto the TP group (MoE parallel folding: the expert-parallel
  // groups are tp / ep consecutive TP ranks each, model::TpDims): no communicator of its own -- every TP
  // rank sees every row, so no dispatch -- but part of the layout the model is sharded by.
  int ep = 1;
};

// Returns `layout` with dp filled in, or throws spin::Error saying what does not divide what.
Layout resolve_layout(int world_size, Layout layout);

class ProcessGrid {
 public:
  // Collective over `world`: every rank must call it with the same layout.
  ProcessGrid(Communicator& world, Layout layout);

  Communicator& world() const { return world_; }
  Communicator& tp() const { return *tp_; }
  Communicator& pp() const { return *pp_; }
  Communicator& dp() const { return *dp_; }
  Communicator& mp() const { return *mp_; }  // model parallel: TP x PP, one replica
  // Megatron's embedding group: the first and the last stage of this rank's pipeline (same TP
  // and DP ranks), which hold the two copies of tied embeddings. A group of one on middle
  // stages and when pp = 1.
  Communicator& embedding() const { return *embedding_; }

  int world_rank() const { return world_.rank(); }
  int world_size() const { return world_.size(); }
  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return layout_.tp; }
  int pp_rank() const { return pp_rank_; }
  int pp_size() const { return layout_.pp; }
  int dp_rank() const { return dp_rank_; }
  int dp_size() const { return layout_.dp; }
  int ep_size() const { return layout_.ep; }
  const Layout& layout() const { return layout_; }

  bool is_first_stage() const { return pp_rank_ == 0; }
  bool is_last_stage() const { return pp_rank_ == layout_.pp - 1; }
  // Ranks within pp() of the neighbouring stages; -1 at the ends of the pipeline.
  int prev_stage() const { return is_first_stage() ? -1 : pp_rank_ - 1; }
  int next_stage() const { return is_last_stage() ? -1 : pp_rank_ + 1; }

  // "tp 1/2, pp 0/1, dp 0/2": for log lines.
  std::string describe() const;

 private:
  Communicator& world_;
  Layout layout_;
  int tp_rank_, pp_rank_, dp_rank_;
  std::unique_ptr<Communicator> tp_, pp_, dp_, mp_, embedding_;
};

}  // namespace spin::parallel
