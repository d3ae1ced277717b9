// TokenBatch: a micro-batch of variable-length sequences packed end to end (no padding is ever
// computed). Row i holds one token; its target is the next token of the same sequence, or -1 at
// a sequence's last token. loss_mask[i] = 1 when target i counts towards the sequence's sum
// (a response token: position >= mask_from of its sequence).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/workspace.h"

namespace spin::model {

struct Sequence {
  std::vector<std::int32_t> tokens;
  std::int64_t mask_from = 1;  // first position whose log-probability is summed (>= 1)
  // Position of tokens[0]: > 0 when the tokens continue a prefix held in a KV cache
  // (generation); its targets are then not known and not scored.
  std::int64_t position = 0;
  // The sequence's global identity in training (a sample's index, and which of its sequences),
  // which keys its dropout masks (LoRA's): the same whatever batch or rank it lands in. -1: none.
  std::int64_t key = -1;
  // The length of the whole sequence these tokens belong to, where it is more than their end
  // (position + tokens): a prompt prefilled in chunks, whose length decides LongRoPE's factors
  // from its first chunk on (ModelConfig::long_rope_context). 0: their end.
  std::int64_t extent = 0;
};

struct TokenBatch {
  std::vector<std::int32_t> tokens;
  std::vector<std::int64_t> cu_seqlens;  // num_seqs + 1 row offsets
  std::vector<std::int32_t> positions;   // position of each row within its sequence
  std::vector<std::int32_t> targets;
  std::vector<float> loss_mask;
  std::vector<std::int32_t> sequence_of;  // sequence index of each row
  std::vector<std::int64_t> extents;      // per sequence: Sequence::extent, or its end where that is 0
  // Dropout (LoRA's): each row's key, its sequence's key x 2^24 + its position (empty unless every
  // sequence has a key), and the step's seed (the masks differ from step to step).
  std::vector<std::int64_t> row_keys;
  std::uint64_t dropout_seed = 0;

  // The dropout seed of training step `step` (any number that names the step in a run: the same
  // after a resume) of a run seeded `seed`: 64 bits of its own Philox stream.
  static std::uint64_t step_dropout_seed(std::uint64_t seed, std::uint64_t step);

  std::int64_t rows() const { return static_cast<std::int64_t>(tokens.size()); }
  std::int64_t num_seqs() const { return static_cast<std::int64_t>(cu_seqlens.size()) - 1; }

  // Sequences must be non-empty with 1 <= mask_from <= length (when position is 0).
  static TokenBatch pack(const std::vector<Sequence>& sequences);
};

// The per-row arrays the kernels read, copied to their device (the shape arrays, cu_seqlens,
// stay in the TokenBatch on the host). Buffers are kept from one batch to the next.
class BatchArrays {
 public:
  Tensor tokens, positions, targets;  // int32 [rows]
  // int32 [rows]: each row's row of the RoPE table (RopeTable): its position, or for a sequence
  // on LongRoPE's long factors, RopeTable::long_row of it (the same tensor as positions where no
  // row differs).
  Tensor rope_rows;
  Tensor row_keys;                    // int64 [rows] (TokenBatch::row_keys), when the batch has them
  Tensor cache_rows;                  // int64 [rows]: generation, where each row goes in the cache
  Tensor last_rows;                   // int64 [num_seqs]: generation, each sequence's last row

  // `rope_rows`: as rope_rows above, one a row (empty: the positions).
  void upload(const TokenBatch& batch, Device device, std::span<const std::int32_t> rope_rows = {});
  void upload_generation(std::span<const std::int64_t> cache_row_of,
                         std::span<const std::int64_t> last_row_of, Device device);

 private:
  UploadBuffer tokens_, positions_, rope_rows_, targets_, row_keys_, cache_rows_, last_rows_;
};

}  // namespace spin::model
