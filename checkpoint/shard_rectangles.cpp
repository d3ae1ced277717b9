#include "checkpoint/shard_rectangles.h"

#include <algorithm>

#include "core/error.h"

namespace spin::ckpt {

std::vector<ShardRectangle> shard_rectangles(const ShardedTensor& t, std::int64_t begin,
                                             std::int64_t end) {
  const Shape& local = t.local.shape();
  std::vector<ShardRectangle> out;
  if (begin >= end) return out;
  if (local.size() == 1) {
    // 1-D tensors, replicated (norms) or split (biases): the range is the rectangle, moved to
    // the shard's offset and cut at its valid length.
    if (t.replicated()) {
      out.push_back({{begin}, {end - begin}, begin});
    } else if (begin < t.length) {
      out.push_back({{t.offset + begin}, {std::min(end, t.length) - begin}, begin});
    }
    return out;
  }
  require(local.size() == 2, t.name, ": tensors of rank ", local.size(), " are not supported");
  const std::int64_t cols = local[1];
  // Rows beyond the valid length are vocabulary padding.
  const std::int64_t valid_rows = t.split_dim == 0 ? t.length : local[0];
  const auto to_global = [&](std::int64_t row, std::int64_t col, std::int64_t rows, std::int64_t width) {
    Shape start = {row, col};
    if (t.split_dim == 0) start[0] += t.offset;
    if (t.split_dim == 1) start[1] += t.offset;
    out.push_back({start, {rows, width}, row * cols + col});
  };
  const auto add = [&](std::int64_t row, std::int64_t col, std::int64_t rows, std::int64_t width) {
    rows = std::min(rows, valid_rows - row);
    if (rows > 0 && width > 0) to_global(row, col, rows, width);
  };
  const std::int64_t r0 = begin / cols, c0 = begin % cols;
  const std::int64_t r1 = (end - 1) / cols, c1 = (end - 1) % cols + 1;
  if (r0 == r1) {
    add(r0, c0, 1, c1 - c0);
    return out;
  }
  std::int64_t first_full = r0;
  if (c0 > 0) {
    add(r0, c0, 1, cols - c0);
    first_full = r0 + 1;
  }
  const std::int64_t last_full = c1 == cols ? r1 : r1 - 1;
  if (last_full >= first_full) add(first_full, 0, last_full - first_full + 1, cols);
  if (c1 < cols) add(r1, 0, 1, c1);
  return out;
}

}  // namespace spin::ckpt
