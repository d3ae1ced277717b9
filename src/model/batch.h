// TokenBatch: a micro-batch of variable-length sequences packed end to end (no padding is ever
// computed). Row i holds one token; its target is the next token of the same sequence, or -1 at
// a sequence's last token. loss_mask[i] = 1 when target i counts towards the sequence's sum
// (a response token: position >= mask_from of its sequence).
#pragma once

#include <cstdint>
#include <vector>

namespace spin::model {

struct Sequence {
  std::vector<std::int32_t> tokens;
  std::int64_t mask_from = 1;  // first position whose log-probability is summed (>= 1)
  // Position of tokens[0]: > 0 when the tokens continue a prefix held in a KV cache
  // (generation); its targets are then not known and not scored.
  std::int64_t position = 0;
};

struct TokenBatch {
  std::vector<std::int32_t> tokens;
  std::vector<std::int64_t> cu_seqlens;  // num_seqs + 1 row offsets
  std::vector<std::int32_t> positions;   // position of each row within its sequence
  std::vector<std::int32_t> targets;
  std::vector<float> loss_mask;
  std::vector<std::int32_t> sequence_of;  // sequence index of each row

  std::int64_t rows() const { return static_cast<std::int64_t>(tokens.size()); }
  std::int64_t num_seqs() const { return static_cast<std::int64_t>(cu_seqlens.size()) - 1; }

  // Sequences must be non-empty with 1 <= mask_from <= length (when position is 0).
  static TokenBatch pack(const std::vector<Sequence>& sequences);
};

}  // namespace spin::model
