#include "model/batch.h"

#include <algorithm>
#include <tuple>

#include "core/error.h"
#include "core/philox.h"

namespace spin::model {

namespace {
constexpr int kPositionBits = 24;  // of a row key
constexpr std::uint64_t kDropoutSeedStream = 0xD50Dull << 48;
}  // namespace

std::uint64_t TokenBatch::step_dropout_seed(std::uint64_t seed, std::uint64_t step) {
  const PhiloxCounter bits = philox_bits(seed, kDropoutSeedStream, step);
  return (static_cast<std::uint64_t>(bits[1]) << 32) | bits[0];
}

TokenBatch TokenBatch::pack(const std::vector<Sequence>& sequences) {
  TokenBatch b;
  b.cu_seqlens.push_back(0);
  const bool keyed = !sequences.empty() &&
                     std::all_of(sequences.begin(), sequences.end(), [](const Sequence& s) { return s.key >= 0; });
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const Sequence& seq = sequences[s];
    const auto len = static_cast<std::int64_t>(seq.tokens.size());
    require(len >= 1, "sequence ", s, " of the batch is empty");
    require(seq.position >= 0, "sequence ", s, ": negative position");
    require(seq.position > 0 || (seq.mask_from >= 1 && seq.mask_from <= len), "sequence ", s,
            ": mask_from ", seq.mask_from, " must be in [1, ", len, "]");
    require(seq.extent == 0 || seq.extent >= seq.position + len, "sequence ", s, ": extent ", seq.extent,
            " short of its end ", seq.position + len);
    b.extents.push_back(seq.extent > 0 ? seq.extent : seq.position + len);
    for (std::int64_t p = 0; p < len; ++p) {
      const bool last = p + 1 == len;
      b.tokens.push_back(seq.tokens[static_cast<std::size_t>(p)]);
      b.positions.push_back(static_cast<std::int32_t>(seq.position + p));
      b.targets.push_back(last ? -1 : seq.tokens[static_cast<std::size_t>(p + 1)]);
      b.loss_mask.push_back(!last && seq.position == 0 && p + 1 >= seq.mask_from ? 1.0f : 0.0f);
      b.sequence_of.push_back(static_cast<std::int32_t>(s));
      if (keyed) b.row_keys.push_back((seq.key << kPositionBits) + seq.position + p);
    }
    require(
        !keyed || (seq.key < (std::int64_t{1} << (62 - kPositionBits)) && seq.position + len <= (1 << kPositionBits)),
        "sequence ", s, ": key ", seq.key, " or length ", seq.position + len, " too large for a dropout key");
    b.cu_seqlens.push_back(b.cu_seqlens.back() + len);
  }
  return b;
}

void BatchArrays::upload(const TokenBatch& batch, Device device, std::span<const std::int32_t> rope_rows_of,
                         const Generation& generation) {
  const bool own_rope_rows = !rope_rows_of.empty();
  std::tie(tokens, positions, targets, rope_rows, row_keys, cache_rows, last_rows) =
      buffer_.upload(device, batch.tokens, batch.positions, batch.targets, rope_rows_of, batch.row_keys,
                     generation.cache_rows, generation.last_rows);
  if (!own_rope_rows) rope_rows = positions;
  if (batch.row_keys.empty()) row_keys = nullptr;
}

}  // namespace spin::model
