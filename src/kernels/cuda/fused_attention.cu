// Launches of the fused SIMT attention kernels (fused_attention_kernels.cuh).
#include <cmath>
#include <type_traits>

#include <cuda_bf16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fused_attention.h"
#include "kernels/cuda/fused_attention_kernels.cuh"

namespace spin::kernels::cuda_detail {

namespace {

using namespace simt;

// The kernels' element type: bf16 or float32, as the arguments say.
template <class T>
const T* as(const void* p) {
  return static_cast<const T*>(p);
}

template <int HD, class T>
void launch_cached(const FusedCachedArgs& a, void* out, cudaStream_t stream) {
  if (a.longest_run == 1 && a.heads > a.kv_heads) {  // a decode step of grouped-query attention
    decode_kernel<HD, T><<<dim3(static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(a.num_runs)),
                           dim3(32, kWarps), 0, stream>>>(static_cast<T*>(out), as<T>(a.q), as<T>(a.k_cache),
                                                          as<T>(a.v_cache), a.runs, a.num_runs, a.capacity, a.heads,
                                                          a.kv_heads, a.scale, a.softcap, a.window);
    SPIN_CUDA_CHECK_LAUNCH("fused decode attention");
    return;
  }
  const dim3 grid(static_cast<unsigned>((a.longest_run + kWarps - 1) / kWarps), static_cast<unsigned>(a.heads),
                  static_cast<unsigned>(a.num_runs));
  cached_kernel<HD, T><<<grid, dim3(32, kWarps), 0, stream>>>(static_cast<T*>(out), as<T>(a.q), as<T>(a.k_cache),
                                                              as<T>(a.v_cache), a.runs, a.num_runs, a.capacity,
                                                              a.heads, a.kv_heads, a.scale, a.softcap, a.window);
  SPIN_CUDA_CHECK_LAUNCH("fused cached attention");
}

template <int HD, class T>
void launch_forward(const FusedAttentionArgs& a, void* out, float* lse, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.longest + kWarps - 1) / kWarps), static_cast<unsigned>(a.heads),
                  static_cast<unsigned>(a.num_seqs));
  forward_kernel<HD, T><<<grid, dim3(32, kWarps), 0, stream>>>(static_cast<T*>(out), lse, as<T>(a.q), as<T>(a.k),
                                                               as<T>(a.v), a.cu_seqlens, a.heads, a.kv_heads, a.scale,
                                                               a.softcap, a.window);
  SPIN_CUDA_CHECK_LAUNCH("fused attention forward");
}

template <int HD, class T>
void launch_backward(const FusedAttentionArgs& a, float* dq, float* dk, float* dv, const float* dout,
                     const float* lse, float* delta, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((a.longest + kWarps - 1) / kWarps);
  dq_kernel<HD, T><<<dim3(blocks, static_cast<unsigned>(a.heads), static_cast<unsigned>(a.num_seqs)),
                     dim3(32, kWarps), 0, stream>>>(dq, delta, dout, as<T>(a.q), as<T>(a.k), as<T>(a.v), lse,
                                                    a.cu_seqlens, a.heads, a.kv_heads, a.scale, a.softcap, a.window);
  SPIN_CUDA_CHECK_LAUNCH("fused attention dQ");
  dkv_kernel<HD, T><<<dim3(blocks, static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(a.num_seqs)),
                      dim3(32, kWarps), 0, stream>>>(dk, dv, dout, as<T>(a.q), as<T>(a.k), as<T>(a.v), lse, delta,
                                                     a.cu_seqlens, a.heads, a.kv_heads, a.scale, a.softcap, a.window);
  SPIN_CUDA_CHECK_LAUNCH("fused attention dK dV");
}

// Calls launch(hd, element) with the head size as std::integral_constant and the element type
// as Element<T>::type.
template <class T>
struct Element {
  using type = T;
};
template <class Launch>
void dispatch(long long head_dim, bool bf16, Launch&& launch) {
  const auto with = [&](auto hd) {
    if (bf16) {
      launch(hd, Element<__nv_bfloat16>());
    } else {
      launch(hd, Element<float>());
    }
  };
  switch (head_dim) {
    case 32: return with(std::integral_constant<int, 32>());
    case 64: return with(std::integral_constant<int, 64>());
    case 96: return with(std::integral_constant<int, 96>());
    case 128: return with(std::integral_constant<int, 128>());
    case 192: return with(std::integral_constant<int, 192>());  // DeepSeek-V3
    case 256: return with(std::integral_constant<int, 256>());
    default: fail("fused attention: head_dim ", head_dim, " is not 32, 64, 96, 128, 192 or 256");
  }
}

}  // namespace

void fused_attention_forward(const FusedAttentionArgs& a, void* out, float* lse, cudaStream_t stream) {
  dispatch(a.head_dim, a.bf16, [&](auto hd, auto element) {
    launch_forward<decltype(hd)::value, typename decltype(element)::type>(a, out, lse, stream);
  });
}

void fused_cached_attention(const FusedCachedArgs& a, void* out, cudaStream_t stream) {
  dispatch(a.head_dim, a.bf16, [&](auto hd, auto element) {
    launch_cached<decltype(hd)::value, typename decltype(element)::type>(a, out, stream);
  });
}

void fused_attention_backward(const FusedAttentionArgs& a, float* dq, float* dk, float* dv, const float* dout,
                              const float* lse, float* delta, cudaStream_t stream) {
  dispatch(a.head_dim, a.bf16, [&](auto hd, auto element) {
    launch_backward<decltype(hd)::value, typename decltype(element)::type>(a, dq, dk, dv, dout, lse, delta, stream);
  });
}

}  // namespace spin::kernels::cuda_detail
