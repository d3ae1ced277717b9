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

// The per-row arrays the kernels read, copied to their device in one copy (PackedUpload; the
// shape arrays, cu_seqlens, stay in the TokenBatch on the host). The buffer is kept from one batch
// to the next; the pointers are valid until the next upload.
class BatchArrays {
 public:
  const std::int32_t* tokens = nullptr;     // [rows]
  const std::int32_t* positions = nullptr;  // [rows]
  const std::int32_t* targets = nullptr;    // [rows]
  // [rows]: each row's row of the RoPE table (RopeTable): its position, or for a sequence on
  // LongRoPE's long factors, RopeTable::long_row of it (the positions where no row differs).
  const std::int32_t* rope_rows = nullptr;
  const std::int64_t* row_keys = nullptr;    // [rows] (TokenBatch::row_keys); null when the batch has none
  const std::int64_t* cache_rows = nullptr;  // generation: where each row goes in the KV cache
  const std::int64_t* last_rows = nullptr;   // generation [num_seqs]: each sequence's last row

  // Generation's arrays, when the batch feeds a KV cache.
  struct Generation {
    std::span<const std::int64_t> cache_rows, last_rows;
  };
  // `rope_rows`: as rope_rows above, one a row (empty: the positions).
  void upload(const TokenBatch& batch, Device device, std::span<const std::int32_t> rope_rows = {},
              const Generation& generation = {});

 private:
  PackedUpload buffer_;
};

}  // namespace spin::model
