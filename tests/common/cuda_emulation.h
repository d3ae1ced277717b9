// Runs CUDA kernel source on the CPU, for kernels no lent GPU has run yet: every thread of a
// block is an OS thread (reused from block to block), __syncthreads / __syncwarp are barriers,
// warp shuffles go through a per-warp exchange buffer, blocks run one after another (so a
// kernel's static `__shared__` arrays are the block's, as on a GPU), and a WMMA fragment is its
// whole 16x16 tile, held and worked on by lane 0 of the warp (the real layout is opaque to the
// kernels anyway; the products are exact in float32, as the tensor cores' are). What it checks:
// indexing, masks, tile bounds, barriers in the right places (the threads really run
// concurrently, and dynamic shared memory starts as NaNs, so a missing barrier or a read of
// unwritten shared memory shows), WMMA's pointer alignment and leading-dimension rules
// (asserted). What it cannot: speed, the hardware's limits (registers, shared-memory size),
// memory-model subtleties.
//
// Include it after the standard and test headers and before the kernels' header, in a test that
// nvcc does not compile.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/dtype.h"

// ---- the language -----------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) alignas(n)
#define __launch_bounds__(...)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

struct uint4 {
  unsigned x, y, z, w;
};
struct float4 {
  float x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
using std::max;
using std::min;

struct __nv_bfloat16 {
  std::uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
inline __nv_bfloat16 __float2bfloat16_rn(float v) { return {spin::f32_to_bf16(v)}; }
inline __nv_bfloat16 __float2bfloat16(float v) { return {spin::f32_to_bf16(v)}; }
inline float __bfloat162float(__nv_bfloat16 v) { return spin::bf16_to_f32(v.bits); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}

namespace cuda_emulation {

// The running block's synchronisation, shared by its threads.
struct Block {
  explicit Block(unsigned threads) : all(threads), exchange(threads) {
    for (unsigned w = 0; w < (threads + 31) / 32; ++w) warps.push_back(std::make_unique<std::barrier<>>(32));
  }
  std::barrier<> all;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<double> exchange;  // one value per thread for the shuffles
};
inline Block* block = nullptr;
inline std::vector<unsigned char>& dynamic_shared() {
  static std::vector<unsigned char> memory;
  return memory;
}

inline unsigned linear_thread() {
  return threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
}
inline std::barrier<>& warp_barrier() { return *block->warps[linear_thread() / 32]; }

// Runs kernel() on every thread of every block of `grid`, blocks one at a time; `shared_bytes`
// of dynamic shared memory, NaN-filled before each block. One OS thread per CUDA thread of a
// block, reused from block to block.
inline void launch(dim3 grid, dim3 threads, std::size_t shared_bytes, const std::function<void()>& kernel) {
  gridDim = grid;
  blockDim = threads;
  const unsigned count = threads.x * threads.y * threads.z;
  if (count % 32 != 0) throw std::logic_error("cuda_emulation: blocks of whole warps only");
  const unsigned blocks = grid.x * grid.y * grid.z;
  std::unique_ptr<Block> current;
  unsigned next = 0;
  // Between blocks (every thread done with the last one): the next block's barriers and memory.
  const auto start_block = [&]() noexcept {
    current = std::make_unique<Block>(count);
    block = current.get();
    dynamic_shared().assign(shared_bytes + 128, 0xFF);  // 0xFFFF... floats and bf16s are NaNs
    ++next;
  };
  std::barrier between(static_cast<std::ptrdiff_t>(count), start_block);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < count; ++t) {
    pool.emplace_back([&, t] {
      threadIdx = {t % threads.x, t / threads.x % threads.y, t / (threads.x * threads.y)};
      for (unsigned b = 0; b < blocks; ++b) {
        between.arrive_and_wait();  // the completion step has set up block b
        blockIdx = {b % grid.x, b / grid.x % grid.y, b / (grid.x * grid.y)};
        kernel();
        // An exited thread no longer holds its block or warp back (as on a GPU since Volta).
        block->all.arrive_and_drop();
        warp_barrier().arrive_and_drop();
      }
    });
  }
  for (auto& th : pool) th.join();
  block = nullptr;
  if (next != blocks) throw std::logic_error("cuda_emulation: a block did not start");
}

}  // namespace cuda_emulation

inline void __syncthreads() { cuda_emulation::block->all.arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_emulation::warp_barrier().arrive_and_wait(); }
template <class T>
T __shfl_xor_sync(unsigned, T value, int lane_mask) {
  auto& exchange = cuda_emulation::block->exchange;
  const unsigned me = cuda_emulation::linear_thread();
  exchange[me] = static_cast<double>(value);
  __syncwarp();
  const T other = static_cast<T>(exchange[(me & ~31u) | ((me & 31u) ^ static_cast<unsigned>(lane_mask))]);
  __syncwarp();
  return other;
}

// Atomic additions: one lock for all (the emulation's threads are few, and correctness is the
// point).
template <class T>
T atomicAdd(T* address, T value) {
  static std::mutex lock;
  const std::lock_guard<std::mutex> hold(lock);
  const T old = *address;
  *address = old + value;
  return old;
}
using std::isinf;
using std::isnan;

#define SPIN_DYNAMIC_SHARED(name)                         \
  unsigned char* name = reinterpret_cast<unsigned char*>( \
      (reinterpret_cast<std::uintptr_t>(cuda_emulation::dynamic_shared().data()) + 127) / 128 * 128)

// ---- WMMA: the 16x16x16 shapes --------------------------------------------------------------------
// Fragments are opaque to the kernels, which only load, multiply and store them; so lane 0 of
// the warp holds the whole tile and does the work, and the other lanes' copies stay unused.
namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "cuda_emulation: 16x16x16 only");
  float x[256];  // [row][column] of the fragment's matrix (A: M x K, B: K x N, C: M x N)
};

inline float widen(float v) { return v; }
inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

// WMMA's rules: a 256-bit aligned pointer, ldm a multiple of 16 bytes.
template <class T>
void check(const T* p, unsigned ldm) {
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0) throw std::logic_error("wmma: pointer not 32-byte aligned");
  if (ldm * sizeof(T) % 16 != 0) throw std::logic_error("wmma: ldm not a multiple of 16 bytes");
}

inline bool lane0() { return threadIdx.x % 32 == 0; }

template <class Use, class T, class Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float v) {
  for (float& e : f.x) e = v;
}
// Element (r, c) of the fragment's matrix at p: row-major p[r * ldm + c], column-major
// p[r + c * ldm].
template <class Use, class T, class Layout, class P>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const P* p, unsigned ldm) {
  check(p, ldm);
  __syncwarp();  // the warp's earlier shared-memory writes are visible
  if (!lane0()) return;
  constexpr bool row = std::is_same_v<Layout, row_major>;
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = widen(row ? p[r * ldm + c] : p[r + c * ldm]);
  }
}
template <class T>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, T>& f, const float* p, unsigned ldm, layout_t layout) {
  check(p, ldm);
  __syncwarp();
  if (!lane0()) return;
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = layout == mem_row_major ? p[r * ldm + c] : p[r + c * ldm];
  }
}
template <class T>
void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, T>& f, unsigned ldm, layout_t layout) {
  check(p, ldm);
  __syncwarp();
  if (lane0()) {
    for (int r = 0; r < 16; ++r) {
      for (int c = 0; c < 16; ++c) (layout == mem_row_major ? p[r * ldm + c] : p[r + c * ldm]) = f.x[r * 16 + c];
    }
  }
  __syncwarp();
}
template <class A, class B, class T>
void mma_sync(fragment<accumulator, 16, 16, 16, T>& d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, A>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, B>& b,
              const fragment<accumulator, 16, 16, 16, T>& c) {
  if (!lane0()) return;
  float out[256];
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      float sum = c.x[i * 16 + j];
      for (int k = 0; k < 16; ++k) sum += a.x[i * 16 + k] * b.x[k * 16 + j];
      out[i * 16 + j] = sum;
    }
  }
  std::memcpy(d.x, out, sizeof(out));
}

}  // namespace nvcuda::wmma
