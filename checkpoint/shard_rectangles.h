// Where a range of a shard's elements sits in its global tensor. A rank's shard of a tensor is
// a rectangle of it (ShardedTensor); a contiguous range of the shard's elements (a distributed
// optimizer's partition cuts shards anywhere) is at most three rectangles: the rest of a first
// row, a block of whole rows, the start of a last row (1-D: one range). Padding rows of a
// vocabulary shard are left out.
#pragma once

#include <cstdint>
#include <vector>

#include "core/sharded_tensor.h"

namespace spin::ckpt {

struct ShardRectangle {
  Shape start, count;         // in the global tensor
  std::int64_t local_offset;  // of its first element in the shard (row-major)
};

// Elements [begin, end) of t.local, as rectangles of the global tensor (1-D or 2-D tensors).
std::vector<ShardRectangle> shard_rectangles(const ShardedTensor& t, std::int64_t begin,
                                             std::int64_t end);

// The whole valid part of the shard: one rectangle at local offset 0. Needs only the
// description (name, global shape, split), not t.local.
inline ShardRectangle shard_rectangle(const ShardedTensor& t) {
  Shape start(t.global_shape.size(), 0), count = t.global_shape;
  if (!t.replicated()) {
    start[static_cast<std::size_t>(t.split_dim)] = t.offset;
    count[static_cast<std::size_t>(t.split_dim)] = t.length;
  }
  return {start, count, 0};
}

}  // namespace spin::ckpt
