// Whole tensors from the shards of one model replica, one tensor at a time. The model-parallel
// group (TP x PP ranks of one data-parallel replica) agrees on the model's tensors (names, whole
// shapes, in the model's order); its rank 0 then pulls them one by one, each from the ranks that
// hold its primary shards, while the others serve -- so no rank holds more than one whole tensor
// beside its own shards (a 70B model's per-iteration save needs no 280 GB rank).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sharded_tensor.h"
#include "parallel/communicator.h"

namespace spin::ckpt {

struct WholeTensor {
  std::string name;
  Shape shape;
};

class ModelGather {
 public:
  // Collective over `mp`: its ranks' shard descriptions merged on rank 0 into the model's order (a
  // name first seen on rank r goes right before the next name of r's already placed: the stages
  // follow each other, and under expert parallelism a TP rank's experts fall between the router and
  // what follows them) and sent back. A tensor with no primary shard is an error on every rank.
  // `local` must outlive the gather.
  ModelGather(const std::vector<ShardedTensor>& local, parallel::Communicator& mp);

  // On every rank of the group, in the model's order.
  const std::vector<WholeTensor>& tensors() const { return tensors_; }

  // mp rank 0, while the others serve(): tensor i whole (tensors()[i].shape, row-major), valid until
  // the next call. Any order; a tensor may be pulled again.
  const float* pull(std::size_t i);
  // mp rank 0: ends the others' serve(). Call it once, whether the pulls went well or not.
  void finish();
  // The other ranks: sends this rank's primary shards of each tensor rank 0 pulls, until it finishes.
  void serve();

 private:
  struct Shard {  // one rank's primary piece of a tensor, as rank 0 places it
    int rank;
    std::size_t local;  // rank 0's own: its index in `local_`
    Shape local_shape;
    int dim;
    std::int64_t offset, length;
  };
  static bool tile(const std::vector<Shard>& shards, const Shape& shape);
  const std::vector<ShardedTensor>& local_;
  parallel::Communicator& mp_;
  std::vector<WholeTensor> tensors_;
  std::vector<std::vector<std::size_t>> mine_;  // by tensor: this rank's primary shards of it (indices in local_)
  std::vector<std::vector<Shard>> shards_;      // rank 0, by tensor: every primary shard, in rank order
  std::vector<float> whole_, received_;
};

struct FullTensor {
  std::string name;
  Shape shape;
  std::vector<float> data;
};

// Collective over `mp`. Returns every tensor of the model, in model order, on mp rank 0 (the whole model
// in its memory: for tests and small models), and nothing on the other ranks.
std::vector<FullTensor> gather_model(const std::vector<ShardedTensor>& local, parallel::Communicator& mp);

}  // namespace spin::ckpt
