// The vocab-parallel LM head and token log-probabilities (Megatron's parallel LM logits +
// _VocabParallelCrossEntropy, without the loss reduction). Each rank multiplies by its rows of
// the head and never sees the full logits; per token only three scalars cross ranks, in two
// all-reduces: the row max (max), then sum exp(logit - max) and the target's logit (sum). The
// final norm sits before a column-parallel region like the layers' norms: under sequence
// parallelism it normalises this rank's rows and gathers them (model/tp_regions.h).
// With logits chunks (HeadActivations::allocate's `chunk_rows`) the logits exist for one chunk
// of rows at a time: the forward keeps only each row's log-sum-exp, the backward computes each
// chunk's logits again (one more head product; a large vocabulary's logits are otherwise the
// largest activation).
#pragma once

#include "core/tensor.h"
#include "core/workspace.h"
#include "model/context.h"
#include "model/linear.h"

namespace spin::model {

// Rows as BatchGeometry counts them: x, normed and rstd hold the residual rows, d_normed the
// gathered rows, the rest one entry per row of the batch.
struct HeadActivations {
  Tensor x;         // [rows, hidden]: the last layer's output (input of the final norm)
  Tensor normed;    // [rows, hidden]; undefined in mixed precision (normed_bf16 alone)
  Tensor rstd;      // [rows]
  Tensor logits;    // [rows, vocab_rows], this rank's vocabulary shard (with chunks: a chunk's rows)
  Tensor lse;       // [rows]: global log-sum-exp of each row
  Tensor sums;      // [2, rows]: sum of exp(logit - max) and the target logit, all-reduced
  Tensor logprob;   // [rows]: log p(target), 0 where there is none
  Tensor dlogprob;  // [rows]: d loss / d logprob (backward input)
  Tensor d_normed;  // [rows, hidden]: backward scratch
  Tensor
      d_norm_weight;  // sequence parallelism: [2, hidden], the norm's weight and bias gradients from this rank's rows
  std::int64_t chunk = 0;  // rows of logits at a time; every row in one go when >= the rows
  // Mixed precision: the final norm's output in bf16 (the product's input, written by the norm)
  // and the bf16 of the logits' gradient.
  Tensor normed_bf16, dlogits_bf16;

  // On `device`; reuses the previous allocation when it is large enough.
  // `chunk_rows` > 0: logits for that many rows at a time.
  void allocate(const TpDims& d, const BatchGeometry& b, Device device, bool mixed = false,
                std::int64_t chunk_rows = 0);
  std::size_t bytes() const { return workspace_.bytes() + workspace_bf16_.bytes(); }

 private:
  Workspace workspace_, workspace_bf16_;
};

// The head's weights: the final norm, the LM head, (mixed precision) its bf16 copy and (Phi's) its
// bias.
struct HeadWeights {
  NormParams norm;
  const Tensor& head;
  const Tensor& head_bf16;  // undefined: float32 products
  const Tensor& bias;       // [vocab_rows], this rank's shard; undefined: none
};

// acts.logits = lm_head(rmsnorm(acts.x)): this rank's vocabulary shard of the logits of the b.rows
// rows.
void lm_head_logits(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b, HeadActivations& acts);

// lm_head_logits, then acts.logprob[i] = log softmax(logits_i)[targets[i]], and 0 where
// targets[i] < 0. Identical on every TP rank. `targets` is on the kernels' device.
void lm_head_forward(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b,
                     const std::int32_t* targets, HeadActivations& acts);

// From acts.dlogprob[i] = d loss / d logprob[i]: accumulates the head's, its bias's (`bias_grad`,
// undefined: none or frozen) and the norm's gradients and writes d loss / d x into dx (the residual
// rows). Overwrites acts.logits with its gradient.
void lm_head_backward(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b,
                      const NormParams& norm_grad, Tensor& head_grad, const Tensor& bias_grad,
                      const std::int32_t* targets, HeadActivations& acts, const Tensor& dx);

}  // namespace spin::model
