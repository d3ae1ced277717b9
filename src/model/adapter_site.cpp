#include "model/adapter_site.h"

namespace spin::model {

ColumnInput adapter_site_input(const ModelContext& ctx, const AdapterSite& site, const Tensor& x, const Tensor& x16,
                               std::int64_t n, std::int64_t in) {
  if (site.dropout == nullptr) return {x, x16};
  const AdapterDropout& d = *site.dropout;
  if (x16.defined()) {
    ctx.k.dropout_bf16(d.x16.bf16(), x16.bf16(), n, in, site.mask);
    return {Tensor(), d.x16};
  }
  ctx.k.dropout(d.x.f32(), x.f32(), n, in, site.mask, false);
  return {d.x, Tensor()};
}

void adapter_site_forward(const ModelContext& ctx, const AdapterSite& site, const Tensor& u32, const Tensor& x_in,
                          const Tensor& x16_in, float* y, std::uint16_t* y16, std::int64_t n, std::int64_t in,
                          std::int64_t out) {
  const auto [x, x16] = adapter_site_input(ctx, site, x_in, x16_in, n, in);
  const bool mixed = x16.defined();
  lora_forward(ctx.k, site.w, site.w16, site.scale, x, x16, mixed ? u32 : site.u, mixed ? site.u : Tensor(),
               y16 != nullptr ? nullptr : y, y16, n, in, out);
}

void adapter_site_backward(const ModelContext& ctx, const AdapterSite& site, float* da, float* db, const float* dy,
                           const Tensor& dy16, const Tensor& x_in, const Tensor& x16_in, const Tensor& du,
                           const Tensor& du16, float* dx, std::int64_t n, std::int64_t in, std::int64_t out) {
  const auto [x, x16] = adapter_site_input(ctx, site, x_in, x16_in, n, in);
  const bool masked = site.dropout != nullptr && dx != nullptr;
  const bool mixed = x16.defined();
  lora_backward(ctx.k, site.w, site.w16, site.scale, da, db, dy, dy16, x, x16, mixed ? Tensor() : site.u,
                mixed ? site.u : Tensor(), du, du16, masked ? site.dropout->x.f32() : dx, n, in, out, !masked);
  if (masked) ctx.k.dropout(dx, site.dropout->x.f32(), n, in, site.mask, true);
}

void adapter_site_input_backward(const ModelContext& ctx, const AdapterSite& site, const float* dy, const Tensor& dy16,
                                 const Tensor& du, const Tensor& du16, float* dx, std::int64_t first,
                                 std::int64_t count, std::int64_t in, std::int64_t out) {
  const auto& k = ctx.k;
  const std::int64_t r = site.w.a.shape()[0];
  const bool masked = site.dropout != nullptr;
  float* into = masked ? site.dropout->x.f32() : dx;  // under dropout, the unmasked gradient first
  const float beta = masked ? 0.0f : 1.0f;
  if (site.w16.a.defined()) {  // mixed precision: the projection's products' precision
    k.gemm_bf16(false, false, count, r, out, site.scale, dy16.bf16(), out, site.w16.b.bf16(), r, 0.0f, du.f32(), r);
    k.to_bf16(du16.bf16(), du.f32(), count * r);
    k.gemm_bf16(false, false, count, in, r, 1.0f, du16.bf16(), r, site.w16.a.bf16(), in, beta, into, in);
  } else {
    k.gemm(false, false, count, r, out, site.scale, dy, out, site.w.b.f32(), r, 0.0f, du.f32(), r);
    k.gemm(false, false, count, in, r, 1.0f, du.f32(), r, site.w.a.f32(), in, beta, into, in);
  }
  if (!masked) return;
  kernels::Kernels::DropoutMask rows = site.mask;
  rows.row_keys += first;
  k.dropout(dx, into, count, in, rows, true);
}

std::pair<float*, float*> adapter_grads(const LoraFactors& grad, LoraTarget t, const Tensor& replicated,
                                        std::int64_t slot, bool partial) {
  float* whole = partial ? replicated.f32() + slot * replicated.shape()[1] : nullptr;
  const bool row = lora_row_parallel(t);
  return {row || whole == nullptr ? grad.a.f32() : whole, !row || whole == nullptr ? grad.b.f32() : whole};
}

}  // namespace spin::model
