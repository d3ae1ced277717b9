// Launches of the tensor-core attention kernels (tensor_core_attention_kernels.cuh).
#include <cmath>

#include <cuda_bf16.h>
#include <mma.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fused_attention.h"
#include "kernels/cuda/tensor_core_attention_kernels.cuh"

namespace spin::kernels::cuda_detail {

namespace {

using namespace tensor_core;

// Launches Kernel with its shared-memory struct's size, above the default 48 KiB: opted in at
// its first launch.
template <class Shared, auto Kernel, class... Args>
void launch(const char* name, dim3 grid, cudaStream_t stream, Args... args) {
  static const bool opted_in = [] {
    SPIN_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(sizeof(Shared))));
    return true;
  }();
  (void)opted_in;
  Kernel<<<grid, kBlockThreads, sizeof(Shared), stream>>>(args...);
  ::spin::cuda::check(cudaGetLastError(), name, __FILE__, __LINE__);
}

template <int HD>
void forward(const FusedAttentionArgs& a, bf16* out, float* lse, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.longest + kBlock - 1) / kBlock), static_cast<unsigned>(a.heads),
                  static_cast<unsigned>(a.num_seqs));
  const auto q = static_cast<const bf16*>(a.q), k = static_cast<const bf16*>(a.k), v = static_cast<const bf16*>(a.v);
  launch<ForwardShared<HD>, tc_forward_kernel<HD>>("tensor-core attention forward launch", grid, stream, out, lse, q,
                                                   k, v, a.cu_seqlens, a.kv_starts, a.heads, a.kv_heads, a.scale,
                                                   a.softcap, a.window);
}

template <int HD>
void backward(const FusedAttentionArgs& a, float* dq, float* dk, float* dv, const float* dout, const float* lse,
              const float* delta, cudaStream_t stream) {
  const auto q = static_cast<const bf16*>(a.q), k = static_cast<const bf16*>(a.k), v = static_cast<const bf16*>(a.v);
  const auto blocks = static_cast<unsigned>((a.longest + kBlock - 1) / kBlock);
  const auto seqs = static_cast<unsigned>(a.num_seqs);
  launch<DqShared<HD>, tc_dq_kernel<HD>>("tensor-core attention dQ launch",
                                         dim3(blocks, static_cast<unsigned>(a.heads), seqs), stream, dq, dout, q, k,
                                         v, lse, delta, a.cu_seqlens, a.heads, a.kv_heads, a.scale, a.softcap, a.window);
  const dim3 dkv_grid(blocks, static_cast<unsigned>(a.kv_heads), seqs);
  if constexpr (kSplitDkv<HD>) {
    launch<DkvShared<HD>, tc_dkv_kernel<HD, DkvPart::Values>>("tensor-core attention dV launch", dkv_grid, stream,
                                                              dk, dv, dout, q, k, v, lse, delta, a.cu_seqlens,
                                                              a.heads, a.kv_heads, a.scale, a.softcap, a.window);
    launch<DkvShared<HD>, tc_dkv_kernel<HD, DkvPart::Keys>>("tensor-core attention dK launch", dkv_grid, stream, dk,
                                                            dv, dout, q, k, v, lse, delta, a.cu_seqlens, a.heads,
                                                            a.kv_heads, a.scale, a.softcap, a.window);
  } else {
    launch<DkvShared<HD>, tc_dkv_kernel<HD, DkvPart::Both>>("tensor-core attention dK dV launch", dkv_grid, stream,
                                                            dk, dv, dout, q, k, v, lse, delta, a.cu_seqlens,
                                                            a.heads, a.kv_heads, a.scale, a.softcap, a.window);
  }
}

}  // namespace

bool tensor_core_attention_supports(long long head_dim) { return head_dim == 64 || head_dim == 128 || head_dim == 256; }

void tensor_core_attention_forward(const FusedAttentionArgs& a, void* out, float* lse, cudaStream_t stream) {
  require(a.bf16, "tensor-core attention: q, k, v must be bf16");
  switch (a.head_dim) {
    case 64: return forward<64>(a, static_cast<bf16*>(out), lse, stream);
    case 128: return forward<128>(a, static_cast<bf16*>(out), lse, stream);
    case 256: return forward<256>(a, static_cast<bf16*>(out), lse, stream);
    default: fail("tensor-core attention: head_dim ", a.head_dim, " is not 64, 128 or 256");
  }
}

void tensor_core_attention_backward(const FusedAttentionArgs& a, float* dq, float* dk, float* dv, const float* dout,
                                    const void* out, const float* lse, float* delta, cudaStream_t stream) {
  require(a.bf16, "tensor-core attention: q, k, v must be bf16");
  const long long rows_heads = a.rows * a.heads;
  if (rows_heads > 0) {
    constexpr int kWarpsPerBlock = kThreads / 32;
    const auto blocks =
        static_cast<unsigned>(std::min<long long>((rows_heads + kWarpsPerBlock - 1) / kWarpsPerBlock, kMaxBlocks));
    tc_delta_kernel<<<blocks, kThreads, 0, stream>>>(delta, dout, static_cast<const bf16*>(out), rows_heads,
                                                     static_cast<int>(a.head_dim));
    SPIN_CUDA_CHECK_LAUNCH("tensor-core attention delta");
  }
  switch (a.head_dim) {
    case 64: return backward<64>(a, dq, dk, dv, dout, lse, delta, stream);
    case 128: return backward<128>(a, dq, dk, dv, dout, lse, delta, stream);
    case 256: return backward<256>(a, dq, dk, dv, dout, lse, delta, stream);
    default: fail("tensor-core attention: head_dim ", a.head_dim, " is not 64, 128 or 256");
  }
}

}  // namespace spin::kernels::cuda_detail
