// A Kernels decorator for benchmarks: forwards every call to another implementation and adds
// its wall time to a per-kernel total, so a benchmark can print where a step's time goes.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "kernels/kernels.h"

namespace spin::bench {

class TimedKernels final : public kernels::Kernels {
 public:
  using Index = kernels::Index;
  using Activation = kernels::Activation;
  using AttentionScores = kernels::AttentionScores;
  explicit TimedKernels(const kernels::Kernels& inner) : inner_(inner) {}

  const std::map<std::string, double>& seconds() const { return seconds_; }
  void reset() { seconds_.clear(); }

  Device device() const override { return inner_.device(); }
  void synchronize() const override { inner_.synchronize(); }
  void gemm(bool ta, bool tb, Index m, Index n, Index k, float alpha, const float* a, Index lda,
            const float* b, Index ldb, float beta, float* c, Index ldc) const override {
    time("gemm (attention)", [&] { inner_.gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
  }
  void linear_forward(float* y, const float* x, const float* w, Index n, Index in,
                      Index out) const override {
    time("linear forward", [&] { inner_.linear_forward(y, x, w, n, in, out); });
  }
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                       Index n, Index in, Index out, bool acc) const override {
    time("linear backward", [&] { inner_.linear_backward(dx, dw, dy, x, w, n, in, out, acc); });
  }
  void embedding_forward(float* out, const std::int32_t* ids, const float* table, Index n,
                         Index hidden, Index start, Index rows, float scale) const override {
    time("embedding", [&] { inner_.embedding_forward(out, ids, table, n, hidden, start, rows, scale); });
  }
  void embedding_backward(float* dtable, const std::int32_t* ids, const float* dout, Index n,
                          Index hidden, Index start, Index rows, float scale) const override {
    time("embedding", [&] { inner_.embedding_backward(dtable, ids, dout, n, hidden, start, rows, scale); });
  }
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, Index n,
                       Index dim, float eps, float w_offset) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_forward(out, rstd, x, w, n, dim, eps, w_offset); });
  }
  void rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n, Index dim,
                            float eps, float w_offset) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_forward_bf16(out, rstd, x, w, n, dim, eps, w_offset); });
  }
  void rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w, Index n,
                               Index dim, float eps, float w_offset) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_forward_bf16_in(out, rstd, x, w, n, dim, eps, w_offset); });
  }
  void rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x, const float* w,
                                const float* rstd, Index n, Index dim, float w_offset) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_backward_bf16_in(dx, dw, dout, x, w, rstd, n, dim, w_offset); });
  }
  void glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate, const std::uint16_t* up,
                        Index n, Activation act) const override {
    time("glu", [&] { inner_.glu_forward_bf16(out, gate, up, n, act); });
  }
  void glu_backward_bf16(float* dgate, float* dup, const float* dout, const std::uint16_t* gate,
                         const std::uint16_t* up, Index n, Activation act) const override {
    time("glu", [&] { inner_.glu_backward_bf16(dgate, dup, dout, gate, up, n, act); });
  }
  void linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x, const std::uint16_t* w, const float* bias,
                               Index n, Index in, Index out) const override {
    time("linear forward", [&] { inner_.linear_forward_bf16_out(y16, x, w, bias, n, in, out); });
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                        const float* rstd, Index n, Index dim, float w_offset) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_backward(dx, dw, dout, x, w, rstd, n, dim, w_offset); });
  }
  void row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const override {
    time("rmsnorm", [&] { inner_.row_dot(out, a, b, w, n, dim); });
  }
  void rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w, const float* sums, Index n,
                                 Index dim, Index total, float eps) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_forward_from_sums(out, rstd, x, w, sums, n, dim, total, eps); });
  }
  void rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                      const float* sums, Index n, Index dim, Index total, float eps) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_forward_from_sums_bf16(out, rstd, x, w, sums, n, dim, total, eps); });
  }
  void rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                  const float* rstd, const float* dots, Index n, Index dim,
                                  Index total) const override {
    time("rmsnorm", [&] { inner_.rmsnorm_backward_from_dots(dx, dw, dout, x, w, rstd, dots, n, dim, total); });
  }
  void layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b, Index n, Index dim,
                         float eps) const override {
    time("rmsnorm", [&] { inner_.layernorm_forward(out, rstd, x, w, b, n, dim, eps); });
  }
  void layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, const float* b, Index n,
                              Index dim, float eps) const override {
    time("rmsnorm", [&] { inner_.layernorm_forward_bf16(out, rstd, x, w, b, n, dim, eps); });
  }
  void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                          const float* rstd, Index n, Index dim) const override {
    time("rmsnorm", [&] { inner_.layernorm_backward(dx, dw, db, dout, x, w, rstd, n, dim); });
  }
  void head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index heads, Index dim,
                              float eps) const override {
    time("rmsnorm", [&] { inner_.head_layernorm_forward(out, rstd, x, w, n, heads, dim, eps); });
  }
  void head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                   Index heads, Index dim, float eps) const override {
    time("rmsnorm", [&] { inner_.head_layernorm_forward_bf16(out, rstd, x, w, n, heads, dim, eps); });
  }
  void head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                               const float* rstd, Index n, Index heads, Index dim) const override {
    time("rmsnorm", [&] { inner_.head_layernorm_backward(dx, dw, dout, x, w, rstd, n, heads, dim); });
  }
  void rope_forward(float* x, const std::int32_t* pos, const float* cos, const float* sin, Index n, Index heads,
                    Index hd, Index rotary, kernels::RopePairs pairs) const override {
    time("rope", [&] { inner_.rope_forward(x, pos, cos, sin, n, heads, hd, rotary, pairs); });
  }
  void rope_backward(float* dx, const std::int32_t* pos, const float* cos, const float* sin, Index n, Index heads,
                     Index hd, Index rotary, kernels::RopePairs pairs) const override {
    time("rope", [&] { inner_.rope_backward(dx, pos, cos, sin, n, heads, hd, rotary, pairs); });
  }
  void attention_forward(float* out, float* probs, const float* q, const float* k,
                         const float* v, const Index* cu, Index seqs, Index heads, Index kvh,
                         Index hd, AttentionScores scores) const override {
    time("attention forward", [&] { inner_.attention_forward(out, probs, q, k, v, cu, seqs, heads, kvh, hd, scores); });
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                          const float* k, const float* v, const float* probs, const Index* cu,
                          Index seqs, Index heads, Index kvh, Index hd, AttentionScores scores) const override {
    time("attention backward", [&] {
      inner_.attention_backward(dq, dk, dv, dout, q, k, v, probs, cu, seqs, heads, kvh, hd, scores);
    });
  }
  void cached_attention_forward(float* out, const float* q, const float* kc, const float* vc,
                                const Index* rb, const Index* slots, const Index* first,
                                Index runs, Index cap, Index heads, Index kvh,
                                Index hd, AttentionScores scores) const override {
    time("cached attention", [&] {
      inner_.cached_attention_forward(out, q, kc, vc, rb, slots, first, runs, cap, heads, kvh, hd, scores);
    });
  }
  void scatter_rows(float* dst, const float* src, const Index* rows, Index n,
                    Index width) const override {
    time("kv cache write", [&] { inner_.scatter_rows(dst, src, rows, n, width); });
  }
  Index attention_saved_size(const Index* cu, Index seqs, Index heads, Index hd) const override {
    return inner_.attention_saved_size(cu, seqs, heads, hd);
  }
  void cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                     const std::uint16_t* kc, const std::uint16_t* vc, const Index* rb,
                                     const Index* slots, const Index* first, Index runs, Index cap,
                                     Index heads, Index kvh, Index hd, AttentionScores scores) const override {
    time("cached attention", [&] {
      inner_.cached_attention_forward_bf16(out, q, kc, vc, rb, slots, first, runs, cap, heads, kvh, hd, scores);
    });
  }
  void scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                         Index width) const override {
    time("kv cache write", [&] { inner_.scatter_rows_bf16(dst, src, rows, n, width); });
  }
  void rope_forward_bf16(std::uint16_t* x, const std::int32_t* pos, const float* cos, const float* sin, Index n,
                         Index heads, Index hd, Index rotary, kernels::RopePairs pairs) const override {
    time("rope", [&] { inner_.rope_forward_bf16(x, pos, cos, sin, n, heads, hd, rotary, pairs); });
  }
  void attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                              const std::uint16_t* k, const std::uint16_t* v, const Index* cu, Index seqs,
                              Index heads, Index kvh, Index hd, AttentionScores scores) const override {
    time("attention forward",
         [&] { inner_.attention_forward_bf16(out, saved, q, k, v, cu, seqs, heads, kvh, hd, scores); });
  }
  void attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout,
                               const std::uint16_t* q, const std::uint16_t* k, const std::uint16_t* v,
                               const std::uint16_t* out, const float* saved, const Index* cu,
                               Index seqs, Index heads, Index kvh, Index hd, AttentionScores scores) const override {
    time("attention backward", [&] {
      inner_.attention_backward_bf16(dq, dk, dv, dout, q, k, v, out, saved, cu, seqs, heads, kvh, hd, scores);
    });
  }
  void gather_rows(float* dst, const float* src, const Index* rows, Index n,
                   Index width) const override {
    time("lm head", [&] { inner_.gather_rows(dst, src, rows, n, width); });
  }
  void gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                        Index width) const override {
    time("moe routing", [&] { inner_.gather_rows_bf16(dst, src, rows, n, width); });
  }
  void moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n, Index k,
                   Index width) const override {
    time("moe routing", [&] { inner_.moe_combine(out, y, slots, weights, n, k, width); });
  }
  void moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y, const Index* slots,
                            const float* weights, Index n, Index k, Index width) const override {
    time("moe routing", [&] { inner_.moe_combine_backward(dy, dweights, dout, y, slots, weights, n, k, width); });
  }
  void glu_forward(float* out, const float* gate, const float* up, Index n, Activation act) const override {
    time("glu", [&] { inner_.glu_forward(out, gate, up, n, act); });
  }
  void glu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                    const float* up, Index n, Activation act) const override {
    time("glu", [&] { inner_.glu_backward(dgate, dup, dout, gate, up, n, act); });
  }
  void logits_max(float* m, const float* logits, Index n, Index ld, Index valid) const override {
    time("log-softmax", [&] { inner_.logits_max(m, logits, n, ld, valid); });
  }
  void logits_sumexp_target(float* s, float* t, const float* logits, const float* m,
                            const std::int32_t* targets, Index n, Index ld, Index valid,
                            Index start) const override {
    time("log-softmax", [&] { inner_.logits_sumexp_target(s, t, logits, m, targets, n, ld, valid, start); });
  }
  void logprob_backward(float* d, const float* logits, const float* lse,
                        const std::int32_t* targets, const float* g, Index n, Index ld,
                        Index valid, Index start, float softcap) const override {
    time("log-softmax", [&] { inner_.logprob_backward(d, logits, lse, targets, g, n, ld, valid, start, softcap); });
  }
  void softcap_forward(float* x, Index n, float cap) const override {
    time("log-softmax", [&] { inner_.softcap_forward(x, n, cap); });
  }
  void logprob_from_sums(float* logprob, float* lse, const float* sums,
                         const std::int32_t* targets, Index n) const override {
    time("log-softmax", [&] { inner_.logprob_from_sums(logprob, lse, sums, targets, n); });
  }
  void row_top_k(double* out, const float* z, Index n, Index valid, Index k,
                 Index start) const override {
    time("sampling", [&] { inner_.row_top_k(out, z, n, valid, k, start); });
  }
  void to_bf16(std::uint16_t* out, const float* in, Index n) const override {
    time("bf16 conversion", [&] { inner_.to_bf16(out, in, n); });
  }
  void from_bf16(float* out, const std::uint16_t* in, Index n) const override {
    time("bf16 conversion", [&] { inner_.from_bf16(out, in, n); });
  }
  void linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w, Index n,
                           Index in, Index out) const override {
    time("linear forward", [&] { inner_.linear_forward_bf16(y, x, w, n, in, out); });
  }
  void linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16,
                            const std::uint16_t* x, const std::uint16_t* w, Index n, Index in,
                            Index out, bool acc) const override {
    time("linear backward", [&] { inner_.linear_backward_bf16(dx, dw, dy, dy16, x, w, n, in, out, acc); });
  }
  void gemm_bf16(bool ta, bool tb, Index m, Index n, Index k, float alpha, const std::uint16_t* a, Index lda,
                 const std::uint16_t* b, Index ldb, float beta, float* c, Index ldc) const override {
    time("gemm (LoRA)", [&] { inner_.gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
  }
  void gemm_bf16(bool ta, bool tb, Index m, Index n, Index k, float alpha, const std::uint16_t* a, Index lda,
                 const std::uint16_t* b, Index ldb, float beta, std::uint16_t* c, Index ldc) const override {
    time("gemm (LoRA)", [&] { inner_.gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
  }
  void add_inplace(float* y, const float* x, Index n) const override {
    time("residual add", [&] { inner_.add_inplace(y, x, n); });
  }
  void copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width, Index rows) const override {
    time("strided copy", [&] { inner_.copy_2d(dst, dst_pitch, src, src_pitch, width, rows); });
  }
  void add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const override {
    time("strided add", [&] { inner_.add_2d(dst, dst_ld, src, src_ld, rows, cols); });
  }
  void scale(float* y, const float* x, float alpha, Index n) const override {
    time("scale", [&] { inner_.scale(y, x, alpha, n); });
  }
  void clamp(float* out, const float* x, Index n, float limit) const override {
    time("clamp", [&] { inner_.clamp(out, x, n, limit); });
  }
  void clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const override {
    time("clamp", [&] { inner_.clamp_bf16(out, x, n, limit); });
  }
  void clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const override {
    time("clamp", [&] { inner_.clamp_backward(dx, dy, x, n, limit); });
  }
  void clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n, float limit) const override {
    time("clamp", [&] { inner_.clamp_backward_bf16_in(dx, dy, x, n, limit); });
  }
  void dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
               bool accumulate) const override {
    time("dropout", [&] { inner_.dropout(y, x, rows, cols, mask, accumulate); });
  }
  void dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                    const DropoutMask& mask) const override {
    time("dropout", [&] { inner_.dropout_bf16(y, x, rows, cols, mask); });
  }
  void add_bias(float* y, const float* bias, Index n, Index width) const override {
    time("bias", [&] { inner_.add_bias(y, bias, n, width); });
  }
  void bias_backward(float* dbias, const float* dy, Index n, Index width) const override {
    time("bias", [&] { inner_.bias_backward(dbias, dy, n, width); });
  }
  double sum_squares(const float* x, const Range* ranges, Index count) const override {
    double r = 0;
    time("optimizer", [&] { r = inner_.sum_squares(x, ranges, count); });
    return r;
  }
  void adamw_update(float* p, std::uint16_t* p16, const float* g, float* m, float* v, const UpdateRange* ranges,
                    Index count, const AdamW& h) const override {
    time("optimizer", [&] { inner_.adamw_update(p, p16, g, m, v, ranges, count, h); });
  }
  void rmsprop_update(float* p, std::uint16_t* p16, const float* g, float* v, const UpdateRange* ranges, Index count,
                      const RmsProp& h) const override {
    time("optimizer", [&] { inner_.rmsprop_update(p, p16, g, v, ranges, count, h); });
  }
  void sampling_logits(float* z, const float* logits, Index n, Index ld, Index valid, Index vocab_start,
                       const std::int32_t* history, const Index* offsets, float penalty, const std::uint8_t* ban_eos,
                       const std::int32_t* eos, Index eos_count, float inv_temperature) const override {
    time("sampling", [&] {
      inner_.sampling_logits(z, logits, n, ld, valid, vocab_start, history, offsets, penalty, ban_eos, eos, eos_count,
                             inv_temperature);
    });
  }
  void row_max_f64(double* out, const float* x, Index n, Index ld, Index valid, bool finite_only) const override {
    time("sampling", [&] { inner_.row_max_f64(out, x, n, ld, valid, finite_only); });
  }
  void row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                      bool finite_only) const override {
    time("sampling", [&] { inner_.row_sumexp_f64(out, x, n, ld, valid, shift, finite_only); });
  }
  void row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                          const std::uint64_t* prefix, int bits) const override {
    time("sampling", [&] { inner_.row_mass_histogram(out, x, n, ld, valid, shift, prefix, bits); });
  }
  void gumbel_argmax(double* score, double* id, const float* z, Index n, Index valid, const double* threshold,
                     bool noisy, std::uint64_t seed, const std::uint64_t* sample_ids, const std::int64_t* positions,
                     Index vocab_start) const override {
    time("sampling", [&] {
      inner_.gumbel_argmax(score, id, z, n, valid, threshold, noisy, seed, sample_ids, positions, vocab_start);
    });
  }
  void logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids, Index count,
                     Index stride, Index vocab_start) const override {
    time("sampling", [&] { inner_.logits_at_ids(out, x, n, ld, valid, ids, count, stride, vocab_start); });
  }

 private:
  template <class Fn>
  void time(const char* name, Fn fn) const {
    inner_.synchronize();  // on a GPU, each kernel is timed to completion (serialised)
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    inner_.synchronize();
    seconds_[name] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  const kernels::Kernels& inner_;
  mutable std::map<std::string, double> seconds_;
};

}  // namespace spin::bench
