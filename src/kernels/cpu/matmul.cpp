// Matrix products through CBLAS sgemm (row-major), and the linear layer built on them.
#include <cblas.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {
int blas_int(Index v) {
  require(v >= 0 && v <= INT_MAX, "matrix dimension ", v, " does not fit a BLAS int");
  return static_cast<int>(v);
}
}  // namespace

std::string blas_kernel_warning(std::string_view corename, bool avx2, bool avx512) {
  // OpenBLAS's kernel sets below AVX2 (the x86-64 baseline and the SSE generations).
  const bool pre_avx2 = corename == "Prescott" || corename == "Core2" || corename == "Penryn" ||
                        corename == "Dunnington" || corename == "Nehalem" || corename == "Sandybridge";
  if (!avx2 || !pre_avx2) return "";
  return cat("OpenBLAS runs its ", corename, " kernels on this CPU, which has AVX2", avx512 ? " and AVX-512" : "",
             " (a CPU newer than this OpenBLAS knows): float32 matrix products run at a fraction of the machine's "
             "rate; set OPENBLAS_CORETYPE=", avx512 ? "SkylakeX" : "Haswell",
             " before starting spin (docs/performance.md)");
}

std::string blas_kernel_warning() {
#ifdef SPIN_OPENBLAS
  return blas_kernel_warning(openblas_get_corename(), __builtin_cpu_supports("avx2"),
                             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"));
#else
  return "";
#endif
}

void CpuKernels::gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                      const float* a, Index lda, const float* b, Index ldb, float beta, float* c,
                      Index ldc) const {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, blas_int(m), blas_int(n), blas_int(k), alpha,
              a, blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

void CpuKernels::linear_forward(float* y, const float* x, const float* w, Index n, Index in,
                                Index out) const {
  gemm(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

void CpuKernels::linear_backward(float* dx, float* dw, const float* dy, const float* x,
                                 const float* w, Index n, Index in, Index out,
                                 bool accumulate_dx) const {
  if (dx != nullptr) gemm(false, false, n, in, out, 1.0f, dy, out, w, in,
                          accumulate_dx ? 1.0f : 0.0f, dx, in);
  if (dw != nullptr) gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

// The bf16 products on the CPU: the operands widened to float32 (exact), then sgemm, which
// accumulates in float32 -- the arithmetic of cuBLAS's bf16 GEMM with float32 compute, up to
// the order of the sums. A reference, not a fast path.
using cpu::widen;

void CpuKernels::to_bf16(std::uint16_t* out, const float* in, Index n) const {
  for (Index i = 0; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

void CpuKernels::from_bf16(float* out, const std::uint16_t* in, Index n) const {
  for (Index i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

void CpuKernels::linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w,
                                     Index n, Index in, Index out) const {
  linear_forward(y, widen(x, n * in).data(), widen(w, out * in).data(), n, in, out);
}

void CpuKernels::gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                           const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                           float* c, Index ldc) const {
  if (m == 0 || n == 0) return;
  // The stored extents of op(A) [m, k] and op(B) [k, n], row-major with their leading dimensions.
  const auto stored = [](Index rows, Index cols, Index ld) { return rows == 0 ? 0 : (rows - 1) * ld + cols; };
  const std::vector<float> wa = widen(a, trans_a ? stored(k, m, lda) : stored(m, k, lda));
  const std::vector<float> wb = widen(b, trans_b ? stored(n, k, ldb) : stored(k, n, ldb));
  gemm(trans_a, trans_b, m, n, k, alpha, wa.data(), lda, wb.data(), ldb, beta, c, ldc);
}

void CpuKernels::gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                           const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                           std::uint16_t* c, Index ldc) const {
  if (m == 0 || n == 0) return;
  const Index extent = (m - 1) * ldc + n;
  std::vector<float> wc = widen(c, extent);
  gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, wc.data(), ldc);
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) c[i * ldc + j] = f32_to_bf16(wc[static_cast<std::size_t>(i * ldc + j)]);
  }
}

void CpuKernels::linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x,
                                         const std::uint16_t* w, const float* bias, Index n,
                                         Index in, Index out) const {
  std::vector<float> y(static_cast<std::size_t>(n * out));
  linear_forward_bf16(y.data(), x, w, n, in, out);
  if (bias != nullptr) add_bias(y.data(), bias, n, out);
  cpu::round_into(y16, y);
}

void CpuKernels::linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16,
                                      const std::uint16_t* x, const std::uint16_t* w, Index n,
                                      Index in, Index out, bool accumulate_dx) const {
  to_bf16(dy16, dy, n * out);
  linear_backward(dx, dw, widen(dy16, n * out).data(), widen(x, n * in).data(),
                  widen(w, out * in).data(), n, in, out, accumulate_dx);
}

void CpuKernels::add_inplace(float* y, const float* x, Index n) const {
#pragma omp simd
  for (Index i = 0; i < n; ++i) y[i] += x[i];
}

void CpuKernels::copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width, Index rows) const {
  for (Index r = 0; r < rows; ++r) {
    std::memcpy(static_cast<char*>(dst) + r * dst_pitch, static_cast<const char*>(src) + r * src_pitch,
                static_cast<std::size_t>(width));
  }
}

void CpuKernels::add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const {
  for (Index r = 0; r < rows; ++r) add_inplace(dst + r * dst_ld, src + r * src_ld, cols);
}

void CpuKernels::scale(float* y, const float* x, float alpha, Index n) const {
#pragma omp simd
  for (Index i = 0; i < n; ++i) y[i] = alpha * x[i];
}

namespace {

// torch.clamp's arithmetic on float32 or bf16 values (widened as read, rounded as stored: compared
// with the float32 bound, as torch clamps a bf16 tensor); NaN compares false and passes through.
template <class T>
void clamp_values(T* out, const T* x, Index n, float limit) {
  for (Index i = 0; i < n; ++i) {
    const float v = cpu::load(x + i);
    cpu::store(out + i, v < -limit ? -limit : v > limit ? limit : v);
  }
}

// Its gradient: dy where the input lay within the bounds, the bounds included.
template <class T>
void clamp_gradient(float* dx, const float* dy, const T* x, Index n, float limit) {
  for (Index i = 0; i < n; ++i) {
    const float v = cpu::load(x + i);
    dx[i] = v >= -limit && v <= limit ? dy[i] : 0.0f;
  }
}

}  // namespace

void CpuKernels::clamp(float* out, const float* x, Index n, float limit) const { clamp_values(out, x, n, limit); }

void CpuKernels::clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const {
  clamp_values(out, x, n, limit);
}

void CpuKernels::clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const {
  clamp_gradient(dx, dy, x, n, limit);
}

void CpuKernels::clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n,
                                        float limit) const {
  clamp_gradient(dx, dy, x, n, limit);
}

void CpuKernels::add_bias(float* y, const float* bias, Index n, Index width) const {
  for (Index i = 0; i < n; ++i) add_inplace(y + i * width, bias, width);
}

void CpuKernels::bias_backward(float* dbias, const float* dy, Index n, Index width) const {
  std::vector<float> sum(static_cast<std::size_t>(width), 0.0f);
  for (Index i = 0; i < n; ++i) add_inplace(sum.data(), dy + i * width, width);
  add_inplace(dbias, sum.data(), width);
}

}  // namespace spin::kernels
