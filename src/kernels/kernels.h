// The compute kernels of the transformer, one interface for every device. Each layer is a pair
// of plain functions, forward and backward (llm.c style), over flat row-major buffers whose
// shapes are in the signature. Implementations: cpu/ (CBLAS + vectorised loops, float32, the
// reference) and cuda/. Nothing here communicates: tensor-parallel pieces compute their
// local part and the model combines them through parallel/.
//
// Memory: every array argument lives on device() (a CUDA implementation takes device pointers),
// except the per-sequence shape arrays that decide the work (cu_seqlens, row_begin, slots,
// first_position) and the optimizer kernels' ranges, which are host memory on every device.
//
// Conventions: weights are [out, in] as in torch.nn.Linear; "accumulates" means +=, so that
// gradients add up over micro-batches and over the several users of one activation.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/device.h"
#include "kernels/activation.h"

namespace spin::kernels {

using Index = std::int64_t;

// Number of floats of the attention probabilities: heads * sum_s len_s^2.
Index attention_probs_size(const Index* cu_seqlens, Index num_seqs, Index heads);

// The head sizes the CUDA path's fused attention kernels take (any other runs the cuBLAS path,
// which keeps the probabilities); spin plan counts by it.
constexpr bool fused_attention_head_dim(Index head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 96 || head_dim == 128 || head_dim == 192 || head_dim == 256;
}

// Which of a head's rotated dimensions turn together in rotary embeddings, pair i by inv_freq[i]:
// Hugging Face's rotate_half layout, (i, i + rotary_dim / 2) (Llama and most families), or
// interleaved neighbours, (2i, 2i + 1) (Cohere's, GPT-J's; the original RoFormer's).
enum class RopePairs { Halves, Interleaved };

// How attention scores are formed from a query and a key: s = scale q.k, then with softcap > 0
// s = softcap tanh(s / softcap) (Gemma 2's attn_logit_softcapping), before the causal softmax;
// the backward multiplies dS by ds/d(scale q.k) = 1 - (s / softcap)^2 (cpu/vec_math.h's softcap
// and softcap_slope; cuda/device_helpers.cuh's on the device). Which keys a query sees: those at
// positions j <= i, and with a sliding window (Mistral, the local layers of Gemma 2) only the
// `window` last of them, i - window < j <= i -- Hugging Face's current convention, xFormers' and
// vLLM's (device_helpers.cuh's window_start on the device).
struct AttentionScores {
  float scale = 1.0f;
  float softcap = 0.0f;     // 0: none
  std::int64_t window = 0;  // 0: none (every earlier key)
  // Llama's: 1/sqrt(head_dim), no cap, no window.
  static AttentionScores standard(std::int64_t head_dim) {
    return {1.0f / std::sqrt(static_cast<float>(head_dim)), 0.0f, 0};
  }
  // The first position the query at `position` sees.
  std::int64_t first_key(std::int64_t position) const {
    return window > 0 && position >= window ? position - window + 1 : 0;
  }
};

// The cached positions a run of `rows` query rows from position `first` reads,
// [first_key, first_key + keys), in a KV cache slot of `capacity` rows holding position p at row
// p mod capacity (Kernels::cached_attention_forward): `head` rows from row `start`, then the
// `tail` that wrapped around from row 0. Throws spin::Error where they number more than capacity.
struct CachedSpan {
  std::int64_t first_key, keys, start, head, tail;
};
CachedSpan cached_span(const AttentionScores& scores, std::int64_t first, std::int64_t rows, std::int64_t capacity);

class Kernels {
 public:
  virtual ~Kernels() = default;

  // Where the buffers these kernels read and write live.
  virtual Device device() const = 0;
  // Returns once every kernel queued so far has finished (timing; the CPU's are synchronous).
  virtual void synchronize() const {}

  // C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, row-major, leading dimensions in elements.
  virtual void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                    const float* a, Index lda, const float* b, Index ldb, float beta, float* c,
                    Index ldc) const = 0;

  // y[n, out] = x[n, in] W[out, in]^T
  virtual void linear_forward(float* y, const float* x, const float* w, Index n, Index in,
                              Index out) const = 0;
  // dx[n, in] (= or +=, per accumulate_dx) dy W;  dW[out, in] += dy^T x.  dx may be null, and
  // dW (a frozen weight: LoRA's base).
  virtual void linear_backward(float* dx, float* dw, const float* dy, const float* x,
                               const float* w, Index n, Index in, Index out,
                               bool accumulate_dx) const = 0;

  // ---- mixed precision: bf16 operands, float32 accumulation and outputs ------------------
  // (torch.autocast(dtype=torch.bfloat16) for linear layers.) bf16 values travel as their 16
  // bits, rounded to nearest, ties to even, exactly as core/dtype.h's f32_to_bf16.
  virtual void to_bf16(std::uint16_t* out, const float* in, Index n) const = 0;
  // The bf16 values widened to float32 (exact).
  virtual void from_bf16(float* out, const std::uint16_t* in, Index n) const = 0;
  // y[n, out] = x W^T with x [n, in] and W [out, in] in bf16, y float32.
  virtual void linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w,
                                   Index n, Index in, Index out) const = 0;
  // With dy16 = bf16(dy) (written here; scratch of n * out): dx (= or +=) dy16 W (dx may be
  // null), dW += dy16^T x (dW may be null), dx and dW float32.
  virtual void linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16,
                                    const std::uint16_t* x, const std::uint16_t* w, Index n,
                                    Index in, Index out, bool accumulate_dx) const = 0;
  // gemm with bf16 A and B: C[M,N] (float32) = alpha * op(A)[M,K] op(B)[K,N] + beta * C,
  // float32 accumulation (LoRA's low-rank products, scaled and accumulated).
  virtual void gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                         const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                         float* c, Index ldc) const = 0;
  // The same into a bf16 C, read (beta != 0) and written rounded: C = bf16(alpha op(A) op(B) + beta C).
  virtual void gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                         const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                         std::uint16_t* c, Index ldc) const = 0;
  // linear_forward_bf16 with its float32 result rounded to bf16 as it is written (cuBLAS: a
  // bf16 C): y16[n, out] = bf16(x W^T + bias), for outputs only bf16-reading kernels consume.
  // `bias` ([out], float32) may be null; it is added before the one rounding.
  virtual void linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x,
                                       const std::uint16_t* w, const float* bias, Index n,
                                       Index in, Index out) const = 0;
  // rmsnorm_forward with a bf16 output -- the rounding of what it computes in float32 -- for an
  // output only products read: no float32 copy is kept.
  virtual void rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x,
                                    const float* w, Index n, Index dim, float eps, float w_offset) const = 0;
  // The same over a bf16 x (widened as read): Qwen3's head norms of the bf16 q and k products.
  virtual void rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w,
                                       Index n, Index dim, float eps, float w_offset) const = 0;
  // rmsnorm_backward over a bf16 x (widened as read).
  virtual void rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x,
                                        const float* w, const float* rstd, Index n, Index dim, float w_offset) const = 0;
  // glu_forward / glu_backward over bf16 gate and up (widened as read, then the float32
  // arithmetic): the forward's output rounded to bf16, the backward's gradients float32.
  virtual void glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate,
                                const std::uint16_t* up, Index n, Activation act) const = 0;
  virtual void glu_backward_bf16(float* dgate, float* dup, const float* dout,
                                 const std::uint16_t* gate, const std::uint16_t* up,
                                 Index n, Activation act) const = 0;

  // Vocab-parallel embedding: this rank holds rows [vocab_start, vocab_start + rows) of the
  // table. out[i] = scale * table[ids[i] - vocab_start] for ids inside that range, 0 otherwise
  // (scale: Gemma's sqrt(hidden_size), else 1).
  virtual void embedding_forward(float* out, const std::int32_t* ids, const float* table,
                                 Index n, Index hidden, Index vocab_start, Index rows, float scale) const = 0;
  // dtable[ids[i] - vocab_start] += scale * dout[i] for ids inside the range.
  virtual void embedding_backward(float* dtable, const std::int32_t* ids, const float* dout,
                                  Index n, Index hidden, Index vocab_start,
                                  Index rows, float scale) const = 0;

  // out = x / sqrt(mean(x^2) + eps) * (w_offset + w) over rows of `dim`; saves rstd[n] for the
  // backward. w_offset is 0, or 1 for Gemma's norms, whose weights are stored as the scale minus
  // one (Megatron's apply_layernorm_1p); the sum is formed in float32 as Hugging Face's Gemma does.
  virtual void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, Index n,
                               Index dim, float eps, float w_offset) const = 0;
  // dx += d/dx, dw += d/dw.
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x,
                                const float* w, const float* rstd, Index n,
                                Index dim, float w_offset) const = 0;
  // RMSNorm over rows spread across the tensor-parallel group (OLMo 2's q and k norms span every
  // head): this rank holds `dim` of each row's `total` columns and w's matching slice; the caller
  // sums the per-row partial statistics over the group between the two steps of each direction --
  //   forward:  row_dot(sums, x, x, null), summed; rmsnorm_forward_from_sums;
  //   backward: row_dot(dots, dout, x, w), summed; rmsnorm_backward_from_dots.
  // out[i] = sum_j a[i, j] b[i, j] (times w[j] where w is given) over rows of `dim`.
  virtual void row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const = 0;
  // out = x r w with r = 1 / sqrt(sums / total + eps) per row, saved in rstd (which may be `sums`).
  virtual void rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w, const float* sums,
                                         Index n, Index dim, Index total, float eps) const = 0;
  // The same with out rounded to bf16 as it is written (an output only products read).
  virtual void rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                              const float* sums, Index n, Index dim, Index total, float eps) const = 0;
  // dx += r (dout w - x r^2 dots / total), dw += sum over rows of dout x r (dw null: a frozen weight).
  virtual void rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                          const float* rstd, const float* dots, Index n, Index dim,
                                          Index total) const = 0;
  // LayerNorm (torch's nn.LayerNorm: F.layer_norm in float32): out = xhat w + b over rows of
  // `dim`, xhat = (x - mean) r, r = 1 / sqrt(var + eps) with the biased variance, saved in rstd[n].
  // w and b may each be null: OLMo's OlmoLayerNorm has neither (w 1, b 0), StableLM's both. The
  // mean is not kept: the backward forms it again from x, in the same order.
  virtual void layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b, Index n,
                                 Index dim, float eps) const = 0;
  // The same with out rounded to bf16 as it is written (an output only products read).
  virtual void layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, const float* b,
                                      Index n, Index dim, float eps) const = 0;
  // With g = dout w (dout where w is null): dx += r (g - mean(g) - xhat mean(g xhat)); dw += the
  // column sums of dout xhat, db += those of dout (each null: no such parameter, or a frozen one).
  virtual void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                                  const float* rstd, Index n, Index dim) const = 0;
  // LayerNorm of every head with a weight of its own, no bias (Cohere's use_qk_norm, StableLM 2
  // 12B's qk_layernorm): x [n, heads, dim], w [heads, dim], rstd [n heads] -- layernorm_* over the
  // n heads rows of dim, row i scaled by w's row i % heads; the backward's dw [heads, dim] likewise
  // (null: frozen).
  virtual void head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index heads,
                                      Index dim, float eps) const = 0;
  virtual void head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                           Index heads, Index dim, float eps) const = 0;
  virtual void head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                       const float* rstd, Index n, Index heads, Index dim) const = 0;

  // Rotary embedding in place on x[n, heads, head_dim] over each head's first rotary_dim
  // dimensions (head_dim but for a partial rotary factor, as Phi-4-mini's 3/4; the rest pass
  // through): for i < half = rotary_dim/2, angle = positions[row] * inv_freq[i] and, with (a, b)
  // the pair `pairs` names -- (x_i, x_{i+half}), Hugging Face's "rotate half"; or (x_2i, x_2i+1) --
  //   (a, b) <- (a cos - b sin, b cos + a sin).
  // cos/sin are tables [max_position, half] (see model/rope.h).
  virtual void rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                            Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const = 0;
  // The transpose (rotation by -angle), in place on the gradient.
  virtual void rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                             Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const = 0;
  // Attention's q [n, heads, head_dim] and k [n, kv_heads, head_dim] rotated alike: rope_forward of
  // each (the default), in one launch on a GPU (a decode step is launch-bound: one a layer saved).
  virtual void rope_qk_forward(float* q, float* k, const std::int32_t* positions, const float* cos, const float* sin,
                               Index n, Index heads, Index kv_heads, Index head_dim, Index rotary_dim,
                               RopePairs pairs) const;

  // Causal self-attention over packed variable-length sequences: sequence s occupies rows
  // [cu_seqlens[s], cu_seqlens[s+1]) and attends only within itself (no padding is computed);
  // the scores and the keys each row sees (a sliding window) as `scores` says
  // (AttentionScores::standard(head_dim) for Llama).
  // q/out: [rows, heads, head_dim]; k/v: [rows, kv_heads, head_dim]; query head h reads kv head
  // h / (heads / kv_heads) (grouped-query attention). probs: what the backward needs,
  // attention_saved_size() floats -- the softmax itself on the CPU (attention_probs_size), a
  // log-sum-exp per row and head for a fused kernel.
  virtual void attention_forward(float* out, float* probs, const float* q, const float* k,
                                 const float* v, const Index* cu_seqlens, Index num_seqs,
                                 Index heads, Index kv_heads, Index head_dim,
                                 AttentionScores scores) const = 0;
  // Floats attention_forward saves for these sequences.
  virtual Index attention_saved_size(const Index* cu_seqlens, Index num_seqs, Index heads,
                                     Index head_dim) const {
    (void)head_dim;
    return attention_probs_size(cu_seqlens, num_seqs, heads);
  }
  // dq, dk, dv are overwritten.
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const float* probs, const Index* cu_seqlens, Index num_seqs,
                                  Index heads, Index kv_heads, Index head_dim,
                                  AttentionScores scores) const = 0;

  // ---- attention in mixed precision: q, k, v and the output in bf16 -----------------------
  // (torch.autocast keeps them so; the products' operands are bf16 on a GPU.) rope_forward in
  // place on bf16 values: widened, rotated in float32, rounded back.
  virtual void rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos, const float* sin,
                                 Index n, Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const = 0;
  // rope_qk_forward on bf16 q and k: rope_forward_bf16 of each.
  virtual void rope_qk_forward_bf16(std::uint16_t* q, std::uint16_t* k, const std::int32_t* positions, const float* cos,
                                    const float* sin, Index n, Index heads, Index kv_heads, Index head_dim,
                                    Index rotary_dim, RopePairs pairs) const;
  // attention_forward / attention_backward over bf16 q, k and v, widened exactly as read (the
  // scores, softmax and sums in float32): the forward's output rounded to bf16 as written, the
  // backward's gradients float32 (they feed bf16 products that round them). `saved` is what
  // attention_saved_size() says, as in float32; `out` is the forward's output (a fused backward
  // takes D = rowsum(dout * out) from it; the CPU's reads the saved probabilities instead).
  virtual void attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                                      const std::uint16_t* k, const std::uint16_t* v,
                                      const Index* cu_seqlens, Index num_seqs, Index heads,
                                      Index kv_heads, Index head_dim, AttentionScores scores) const = 0;
  virtual void attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout,
                                       const std::uint16_t* q, const std::uint16_t* k,
                                       const std::uint16_t* v, const std::uint16_t* out,
                                       const float* saved, const Index* cu_seqlens,
                                       Index num_seqs, Index heads, Index kv_heads,
                                       Index head_dim, AttentionScores scores) const = 0;

  // Causal attention of new query rows against a KV cache (generation). Run r covers query
  // rows [row_begin[r], row_begin[r+1]) of cache slot slots[r]; its first row sits at position
  // first_position[r] and row i of the run attends to the slot's positions [0, first + i] (from
  // scores.first_key(first + i) under a sliding window). The cache holds, per slot, `capacity`
  // rows of [kv_heads, head_dim] keys (and values), the new rows' included: position p at row
  // p mod capacity -- row p where the cache keeps every position, a ring under a sliding window
  // (model/kv_cache.h), where a run's positions [first_key(first), first + rows) must number at
  // most `capacity`. q/out: [rows, heads, head_dim]. No probabilities are kept.
  virtual void cached_attention_forward(float* out, const float* q, const float* k_cache,
                                        const float* v_cache, const Index* row_begin,
                                        const Index* slots, const Index* first_position,
                                        Index runs, Index capacity, Index heads, Index kv_heads,
                                        Index head_dim, AttentionScores scores) const = 0;

  // The same in mixed precision: q, the cache and out in bf16 (the cache's rows written by
  // scatter_rows_bf16 from bf16 keys and values), widened exactly as read, the scores, softmax
  // and sums in float32, the output rounded as written.
  virtual void cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                             const std::uint16_t* k_cache,
                                             const std::uint16_t* v_cache, const Index* row_begin,
                                             const Index* slots, const Index* first_position,
                                             Index runs, Index capacity, Index heads,
                                             Index kv_heads, Index head_dim,
                                             AttentionScores scores) const = 0;
  // scatter_rows for rows of `width` bf16 values.
  virtual void scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows,
                                 Index n, Index width) const = 0;

  // dst[rows[i], :] = src[i, :] for i < n, rows of `width` floats (writes into a KV cache).
  virtual void scatter_rows(float* dst, const float* src, const Index* rows, Index n,
                            Index width) const = 0;
  // A call's keys k and values v into the KV cache's rows: scatter_rows of each (the default), in
  // one launch on a GPU.
  virtual void scatter_kv_rows(float* keys, float* values, const float* k, const float* v, const Index* rows, Index n,
                               Index width) const;
  virtual void scatter_kv_rows_bf16(std::uint16_t* keys, std::uint16_t* values, const std::uint16_t* k,
                                    const std::uint16_t* v, const Index* rows, Index n, Index width) const;

  // dst[i, :] = src[rows[i], :] for i < n, rows of `width` floats (each sequence's last row; a
  // mixture of experts' inputs, each row once for every expert it goes to).
  virtual void gather_rows(float* dst, const float* src, const Index* rows, Index n,
                           Index width) const = 0;
  // gather_rows for rows of `width` bf16 values.
  virtual void gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                Index width) const = 0;

  // A mixture of experts' outputs joined (model/moe.h), over n rows of `width`: out[i, :] = the
  // sum over j < k, in that order, of weights[i * k + j] y[slots[i * k + j], :] (weights null: 1
  // each), overwriting out. y holds each row's k expert outputs, grouped by expert; a slot of -1 is
  // an output another rank computes (expert parallelism), left out of the sum.
  virtual void moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n, Index k,
                           Index width) const = 0;
  // Its backward: dy[slots[i * k + j], :] = weights[i * k + j] dout[i, :] (each of the n k slots
  // written once) and dweights[i * k + j] = dout[i, :] . y[slots[i * k + j], :], a float32 sum (0
  // where the slot is -1, dy not written for it).
  virtual void moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y, const Index* slots,
                                    const float* weights, Index n, Index k, Index width) const = 0;

  // out = act(gate) * up, element-wise over n values; with up null out = act(gate) (a plain MLP's
  // activation: GPT-NeoX's).
  virtual void glu_forward(float* out, const float* gate, const float* up, Index n, Activation act) const = 0;
  // dgate, dup overwritten (with up null, dup is null too and dgate = dout act'(gate)).
  virtual void glu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                            const float* up, Index n, Activation act) const = 0;

  // Local parts of the vocab-parallel log-softmax. logits: [n, ld]; this rank holds vocabulary
  // entries [vocab_start, vocab_start + valid) in its first `valid` columns (the rest is padding
  // and is ignored). Combined across ranks as: max (all-reduce max) -> sum exp(l - max) and the
  // target logit (all-reduce sum) -> logprob = target_logit - max - log(sumexp).
  virtual void logits_max(float* row_max, const float* logits, Index n, Index ld,
                          Index valid) const = 0;
  // sumexp[i] = sum_v exp(logits[i, v] - row_max[i]); target_logit[i] = logits[i, target - start]
  // if this rank holds the target, else 0.
  virtual void logits_sumexp_target(float* sumexp, float* target_logit, const float* logits,
                                    const float* row_max, const std::int32_t* targets, Index n,
                                    Index ld, Index valid, Index vocab_start) const = 0;
  // dlogits[i, v] = dlogprob[i] * (1[v is the target] - exp(logits[i, v] - lse[i])); padding
  // columns, and rows without a target (targets[i] < 0), get 0. dlogits may alias logits.
  // softcap > 0: the logits are softcap_forward's output, and the gradient is taken through it
  // (times the cap's slope 1 - (logits[i, v] / softcap)^2: d loss / d of the products' logits).
  virtual void logprob_backward(float* dlogits, const float* logits, const float* lse,
                                const std::int32_t* targets, const float* dlogprob, Index n,
                                Index ld, Index valid, Index vocab_start, float softcap) const = 0;
  // x = cap tanh(x / cap) in place over n values (Gemma 2's final_logit_softcapping).
  virtual void softcap_forward(float* x, Index n, float cap) const = 0;

  // The last step of the vocab-parallel log-softmax, from the all-reduced row max (in lse) and
  // sums [sumexp | target logit] ([2, n]): lse[i] = row_max[i] + log(sumexp[i]), then
  // logprob[i] = target_logit[i] - lse[i], or 0 where targets[i] < 0.
  virtual void logprob_from_sums(float* logprob, float* lse, const float* sums,
                                 const std::int32_t* targets, Index n) const = 0;

  // y += x
  virtual void add_inplace(float* y, const float* x, Index n) const = 0;
  // A strided copy (cudaMemcpy2D's): `rows` rows of `width` bytes from src, its rows `src_pitch`
  // bytes apart, to dst, `dst_pitch` apart -- a block of columns of one row-major matrix into
  // another's (latent attention's heads: model/latent_attention.h). Any element type.
  virtual void copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width, Index rows) const = 0;
  // dst[r, c] += src[r, c] for r < rows, c < cols, dst's rows dst_ld floats apart and src's src_ld.
  virtual void add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const = 0;
  // y = alpha x over n values; y may alias x (Granite's residual multiplier and logit scaling).
  virtual void scale(float* y, const float* x, float alpha, Index n) const = 0;
  // OLMo 1.7's clip_qkv (torch.clamp): out = x below -limit set to -limit, above limit to limit,
  // NaN kept; out may be x. In bf16 as torch clamps a bf16 tensor: x compared with the float32
  // bound, the result rounded as it is stored.
  virtual void clamp(float* out, const float* x, Index n, float limit) const = 0;
  virtual void clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const = 0;
  // Its backward, as torch's: dx = dy where -limit <= x <= limit (the bounds pass it), else 0;
  // x is the clamp's input (float32, or bf16 widened as read); dx may be dy.
  virtual void clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const = 0;
  virtual void clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n,
                                      float limit) const = 0;
  // LoRA's dropout (PEFT's lora_dropout; inverted dropout): over `rows` rows of `cols` columns,
  // y = x (keep ? 1 / (1 - p) : 0) -- a dropped x times 0, as PyTorch's -- or y += that with
  // `accumulate` (the backward's). Column c is column
  // mask.col_offset + c of the whole input (a row-parallel adapter's shard), keep(i, c) is
  // core/philox_rounds.h's dropout_keeps for row key mask.row_keys[i] and that global column: a pure
  // function of the row's identity, the site and the column, so every layout draws the same mask.
  struct DropoutMask {
    const std::int64_t* row_keys = nullptr;  // [rows], on the kernels' device
    std::uint64_t seed = 0;
    std::uint32_t site = 0;
    float p = 0.0f;
    Index col_offset = 0;
    // The kept values' factor, every implementation the same.
    float scale() const { return 1.0f / (1.0f - p); }
  };
  virtual void dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
                       bool accumulate) const = 0;
  // The same over bf16 x and y (y = bf16(x keep / (1 - p)): one rounding).
  virtual void dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                            const DropoutMask& mask) const = 0;
  // A linear layer's bias (Qwen2's q, k, v projections): y[i, j] += bias[j] over y [n, width].
  virtual void add_bias(float* y, const float* bias, Index n, Index width) const = 0;
  // Its gradient: dbias[j] += sum over i of dy[i, j], each column summed in row order in
  // float32 (so every device gives the same bits).
  virtual void bias_backward(float* dbias, const float* dy, Index n, Index width) const = 0;

  // ---- optimizer: whole flat buffers in one pass (multi-tensor) ---------------------------
  // Elements [offset, offset + length) of a flat buffer.
  struct Range {
    Index offset = 0;
    Index length = 0;
  };
  // sum of x_i^2 over every range (`count` of them), accumulated in double (the global gradient norm over all
  // of a rank's tensors: one pass, one value back to the host).
  virtual double sum_squares(const float* x, const Range* ranges, Index count) const = 0;

  // One AdamW step with PyTorch's semantics (torch.optim.AdamW): with g = grad_scale * grad,
  //   p -= lr * weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  //   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
  // t the 1-based step. Decoupled weight decay, bias correction, eps outside the sqrt.
  struct AdamW {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    std::int64_t step;
    // The update's factors, every implementation the same: bias corrections in double, then
    // float -- p <- p * decay - step_size * m / (sqrt(v) / bias2_sqrt + eps).
    float step_size() const {
      return lr / static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
    }
    float bias2_sqrt() const {
      return static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step))));
    }
    float decay() const { return 1.0f - lr * weight_decay; }
  };
  // A run of parameters and whether weight decay applies to it (not to norms, say): the
  // optimizers' update tables.
  struct UpdateRange {
    Index offset = 0;
    Index length = 0;
    bool decay = true;
  };
  // The step over every range (`count` of them) of the flat buffers param, grad, m and v (one index for all
  // four), in one pass. With param_bf16 (mixed precision; may be null) the bf16 rounding of
  // each updated parameter is written there too, at the same index: the products' copy is
  // refreshed without a second pass.
  virtual void adamw_update(float* param, std::uint16_t* param_bf16, const float* grad, float* m,
                            float* v, const UpdateRange* ranges, Index count,
                            const AdamW& h) const = 0;

  // One RMSprop step with PyTorch's semantics (torch.optim.RMSprop, not centered, no momentum;
  // the SPIN code's optimizer): with g = grad_scale * grad + weight_decay * p (L2 weight decay,
  // on the ranges that decay),
  //   v = alpha v + (1 - alpha) g^2;  p -= lr * g / (sqrt(v) + eps).
  struct RmsProp {
    float lr, alpha, eps, weight_decay, grad_scale;
  };
  // The step over every range of param, grad and v, in one pass; param_bf16 as adamw_update's.
  virtual void rmsprop_update(float* param, std::uint16_t* param_bf16, const float* grad, float* v,
                              const UpdateRange* ranges, Index count, const RmsProp& h) const = 0;

  // The sampler's processed logits (generate/sampling.h): z[r, v] for v < valid from this
  // shard's logits [n, ld] -- the repetition penalty (x / penalty if x > 0, else x * penalty;
  // once per distinct token) on the tokens of row r's history, history[offsets[r] ..
  // offsets[r + 1]) (ids outside the shard ignored), -inf for the `eos` ids when ban_eos[r], then
  // times inv_temperature. z is [n, valid].
  virtual void sampling_logits(float* z, const float* logits, Index n, Index ld, Index valid,
                               Index vocab_start, const std::int32_t* history,
                               const Index* offsets, float penalty, const std::uint8_t* ban_eos,
                               const std::int32_t* eos, Index eos_count,
                               float inv_temperature) const = 0;

  // Row statistics of the sampler (generate/sampling.h), in double, over the first `valid`
  // columns of each row of x [n, ld]; with finite_only, infinite entries (banned tokens) are
  // left out. row_max_f64: -inf for a row with nothing to count; row_sumexp_f64: out[r] = sum
  // of exp(x - shift[r]) over the entries counted.
  virtual void row_max_f64(double* out, const float* x, Index n, Index ld, Index valid, bool finite_only) const = 0;
  virtual void row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                              bool finite_only) const = 0;
  // A round of the top-p search (generate/sampling.cpp): out [n, kMassBuckets], for row r of
  // x [n, ld] (its first `valid` columns, finite entries only), the sum of mass_weight(exp(x -
  // shift[r])) of the entries whose key = float_order_key(x) (core/mass_histogram.h) has
  // prefix[r] as its top `bits` bits (every entry when bits is 0), by the key's next byte:
  // bucket (key >> (24 - bits)) & 255. bits is 0, 8, 16 or 24. Integers: exact, in any order.
  virtual void row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid,
                                  const double* shift, const std::uint64_t* prefix, int bits) const = 0;

  // The top-k offer of this rank's vocabulary shard (generate/sampling.h). For row r of z
  // [n, valid]: its k largest finite entries, largest first, ties to the smaller column, as
  // (value, vocab_start + column) pairs in out[r, 0 .. 2k); the pairs past the row's finite
  // entries are (-inf, -inf). k >= 1.
  virtual void row_top_k(double* out, const float* z, Index n, Index valid, Index k,
                         Index vocab_start) const = 0;

  // Gumbel-max over this rank's vocabulary shard (generate/sampling.h). z: [n, valid] processed
  // logits. For row r, among the columns v with z >= threshold[r] and z finite, the best
  // candidate (score, id) = (z + g, vocab_start + v), g = gumbel_noise(seed, sample_ids[r],
  // positions[r], id) (core/philox_rounds.h) when `noisy`, else 0 -- best meaning the higher
  // score, then the smaller id. Rows with no eligible column get (-inf, -1).
  virtual void gumbel_argmax(double* best_score, double* best_id, const float* z, Index n,
                             Index valid, const double* threshold, bool noisy,
                             std::uint64_t seed, const std::uint64_t* sample_ids,
                             const std::int64_t* positions, Index vocab_start) const = 0;

  // The chosen candidates' raw logits (generate/sampling.cpp), so that they travel with the
  // candidates. For row r of x [n, ld] and its `count` global token ids ids[(r * count + i) *
  // stride] (doubles, as gumbel_argmax and row_top_k give them): out[r * count + i] = x[r, id -
  // vocab_start] when this shard holds the id (vocab_start <= id < vocab_start + valid), else
  // -inf (an empty slot's -1 or -inf included).
  virtual void logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids,
                             Index count, Index stride, Index vocab_start) const = 0;
};


}  // namespace spin::kernels
