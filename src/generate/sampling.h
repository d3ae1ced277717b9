// Vocab-parallel sampling: every TP rank holds a shard of each row's logits and all ranks agree
// on the chosen token without gathering the logits. The choice is Gumbel-max,
//   token = argmax_v (z_v + g_v),  z = processed logits,  g_v = -log(-log u_v),
// with u_v a Philox draw keyed by (seed, sample id, position, v): the noise of token v does not
// depend on which rank holds v, nor on the batch, so the same seed gives the same tokens for any
// TP / PP / DP layout and any batch composition. Processing, in NeMo / Hugging Face order:
// repetition penalty, EOS ban (min_new_tokens), temperature, top-k (each rank contributes at
// most k candidates; all ranks then hold the same candidate list), top-p (on the candidates, or
// without top-k by a radix search for the threshold logit -- top_p_floor: four rounds of one
// all-reduce of a per-row histogram; no logits move), min-p (a threshold below the row's largest
// logit: it keeps the most probable token, so its place in the order does not matter). Greedy is
// the argmax of the penalised logits.
// The log-probability reported for a token is under the model's full softmax (raw logits). What
// the ranks combine -- each row's raw log-sum-exp statistics and each rank's candidates with their
// raw logits -- comes back from the device in one copy and is all-gathered once a step (twice
// around top-p's search rounds without top-k).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "core/workspace.h"
#include "kernels/kernels.h"
#include "model/tp_dims.h"
#include "parallel/communicator.h"

namespace spin::generate {

struct SamplingParams {
  bool greedy = false;
  float temperature = 1.0f;
  std::int64_t top_k = 0;           // 0: off
  float top_p = 1.0f;               // 1: off
  float repetition_penalty = 1.0f;  // 1: off (CTRL / Hugging Face: logit / p if > 0, else * p)
  // 0: off. Keeps the tokens at least min_p times as probable as the most probable one (after
  // the penalty and temperature; Hugging Face's and vLLM's min_p): z_v >= z_max + log(min_p).
  float min_p = 0.0f;

  void validate() const;  // throws spin::Error naming the bad value
};

// One row to choose a token for.
struct SampleRow {
  std::uint64_t sample_id = 0;  // stable id of the prompt (its index in the input)
  std::int64_t position = 0;    // position the chosen token will take
  std::span<const std::int32_t> history;  // tokens so far (prompt + response), for the penalty
  bool ban_eos = false;                   // min_new_tokens not reached yet
};

struct Sampled {
  std::int32_t token = -1;
  float logprob = 0.0f;  // log softmax(raw logits)[token]
};

// Top-p's floor of each row: the smallest processed logit l whose strictly larger entries hold
// less than top_p of the row's probability mass; the nucleus is {v : z_v >= l}. z: this rank's
// shard [n, valid] of the processed logits, on the kernels' device; zmax: each row's largest finite
// entry over the TP group. A radix search over the floats' ordered 32-bit keys, a byte a round from
// the top: 4 rounds, each one histogram of the rows' mass by the next byte among the entries whose
// higher bytes are those fixed so far (Kernels::row_mass_histogram; fixed-point integers, so the
// sums are exact: the same floor on every device and TP layout) and one all-reduce of 256 integers
// a row. Collective over TP; every rank returns the same floors.
// `buffers`: the device buffers to keep from one call to the next (none: the call's own).
struct TopPBuffers {
  Workspace histogram;       // [n, kMassBuckets] integers
  PackedUpload first_round;  // the shifts (zmax) and the first round's prefixes
  UploadBuffer prefixes;     // a later round's
};
std::vector<double> top_p_floor(const kernels::Kernels& kernels, parallel::Communicator& tp, const float* z,
                                std::int64_t n, std::int64_t valid, std::span<const double> zmax, float top_p,
                                TopPBuffers* buffers = nullptr);

class VocabParallelSampler {
 public:
  // The per-token noise-and-argmax loop runs on `kernels` (Kernels::gumbel_argmax).
  VocabParallelSampler(const model::TpDims& dims, parallel::Communicator& tp,
                       const kernels::Kernels& kernels, const SamplingParams& params,
                       std::uint64_t seed, std::vector<std::int32_t> eos_ids);

  // logits: this rank's shard, [rows.size(), dims.vocab_rows], row-major, on the kernels'
  // device. Collective over TP;
  // every rank returns the same choices.
  std::vector<Sampled> sample(const float* logits, std::span<const SampleRow> rows) const;

 private:
  class Step;  // one call of sample()

  // The Gumbel noise of token v for `row` (double precision).
  double gumbel(const SampleRow& row, std::int64_t v) const;

  model::TpDims dims_;
  parallel::Communicator& tp_;
  const kernels::Kernels& kernels_;
  SamplingParams params_;
  std::uint64_t seed_;
  std::vector<std::int32_t> eos_;
  Tensor eos_device_;  // eos_ on the kernels' device
  // Device buffers kept from one step to the next: once they fit, a step allocates (and zeroes)
  // nothing -- the per-row arrays' upload, the processed logits, the exchanged doubles, the
  // thresholds, top-p's search rounds'.
  mutable PackedUpload rows_upload_;
  mutable Workspace z_storage_, exchange_storage_;
  mutable UploadBuffer threshold_upload_;
  mutable TopPBuffers top_p_;
};

}  // namespace spin::generate
