// The sampler's kernels on the GPU against the CPU's (tests/gpu/cuda_kernels_test.cpp says how):
// the logits' penalties, EOS ban and temperature, the rows' statistics in double, top-k's
// candidates and the Gumbel-max choice with the same noise.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gpu/cuda_test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"

namespace spin::kernels {
namespace {

using namespace gpu_testing;  // the fixture and helpers the CUDA tests share
using cuda::device_allocator;

TEST_F(Fixture, SamplingLogitsPenaltyEosBanAndTemperature) {
  const Index n = 9, ld = 1030, valid = 1000, start = 2000;
  auto logits = random(n * ld, -5.0f, 5.0f);
  std::vector<std::int32_t> history;
  std::vector<Index> offsets = {0};
  std::vector<std::uint8_t> ban(n);
  for (Index r = 0; r < n; ++r) {
    // Repeats, ids below / inside / above the shard; row 3 has an empty history.
    const auto h = random_ints(r == 3 ? 0 : 50 + 40 * r, 1900, 3100);
    history.insert(history.end(), h.begin(), h.end());
    history.push_back(static_cast<std::int32_t>(start + 5));  // the same token twice in every row
    history.push_back(static_cast<std::int32_t>(start + 5));
    offsets.push_back(static_cast<Index>(history.size()));
    ban[r] = r % 2;
  }
  const std::vector<std::int32_t> eos = {2001, 2999, 5};  // two in the shard, one not
  Dev glogits(logits), gz = poisoned(n * valid);
  PooledBuffer ghistory = cuda::upload(history), goffsets = cuda::upload(offsets), gban = cuda::upload(ban),
               geos = cuda::upload(eos);
  std::vector<float> z(n * valid);
  cpu.sampling_logits(z.data(), logits.data(), n, ld, valid, start, history.data(), offsets.data(), 1.3f, ban.data(),
                      eos.data(), 3, 1.0f / 0.7f);
  gpu.sampling_logits(gz.f(), glogits.f(), n, ld, valid, start, ghistory.as<std::int32_t>(), goffsets.as<Index>(), 1.3f,
                      gban.as<std::uint8_t>(), geos.as<std::int32_t>(), 3, 1.0f / 0.7f);
  EXPECT_EQ(gz.get(gpu), z);  // the same float operations element by element: bitwise
}

TEST_F(Fixture, SamplerRowStatisticsInDouble) {
  const Index n = 23, ld = 3000, valid = 2900;
  auto x = random(n * ld, -20.0f, 20.0f);
  for (Index i = 0; i < n * ld; i += 11) x[i] = -INFINITY;  // banned tokens
  std::vector<float> above(n);
  for (Index r = 0; r < n; ++r) above[r] = r == 0 ? INFINITY : -20.0f + 2.0f * static_cast<float>(r);
  Dev gx(x);
  PooledBuffer gabove = cuda::upload(above);
  const auto compare = [&](const std::vector<double>& ref, const PooledBuffer& got, const char* what) {
    gpu.synchronize();
    const auto g = cuda::download<double>(got, n);
    for (Index r = 0; r < n; ++r) {
      if (std::isinf(ref[r])) {
        EXPECT_EQ(g[r], ref[r]) << what << " row " << r;
      } else {
        EXPECT_NEAR(g[r], ref[r], 1e-12 * std::max(1.0, std::abs(ref[r]))) << what << " row " << r;
      }
    }
  };
  for (bool finite_only : {false, true}) {
    std::vector<double> mx(n), mn(n), sum(n), mass(n);
    PooledBuffer gmx(device_allocator(), n * 8), gmn(device_allocator(), n * 8), gsum(device_allocator(), n * 8),
        gmass(device_allocator(), n * 8);
    cpu.row_max_f64(mx.data(), x.data(), n, ld, valid, finite_only);
    gpu.row_max_f64(gmx.as<double>(), gx.f(), n, ld, valid, finite_only);
    compare(mx, gmx, "max");
    cpu.row_min_f64(mn.data(), x.data(), n, ld, valid, finite_only);
    gpu.row_min_f64(gmn.as<double>(), gx.f(), n, ld, valid, finite_only);
    compare(mn, gmn, "min");
    if (!finite_only) continue;  // with the -inf entries the shift must be the finite max
    cpu.row_sumexp_f64(sum.data(), x.data(), n, ld, valid, mx.data(), nullptr, true);
    gpu.row_sumexp_f64(gsum.as<double>(), gx.f(), n, ld, valid, gmx.as<double>(), nullptr, true);
    compare(sum, gsum, "sumexp");
    cpu.row_sumexp_f64(mass.data(), x.data(), n, ld, valid, mx.data(), above.data(), true);
    gpu.row_sumexp_f64(gmass.as<double>(), gx.f(), n, ld, valid, gmx.as<double>(), gabove.as<float>(), true);
    compare(mass, gmass, "mass above");
  }
}

TEST_F(Fixture, RowTopKOffersTheCpusCandidatesExactly) {
  const Index n = 9, valid = 3000, start = 500;
  auto z = random(n * valid, -4.0f, 4.0f);
  for (Index i = 0; i < n * valid; i += 5) z[i] = -INFINITY;            // banned tokens
  for (Index v = 0; v < valid; ++v) z[1 * valid + v] = v % 3 ? -INFINITY : 0.5f;  // ties everywhere
  for (Index v = 2; v < valid; ++v) z[2 * valid + v] = -INFINITY;        // fewer finite than k
  Dev gz(z);
  for (Index k : {1, 7, 40}) {
    std::vector<double> want(static_cast<std::size_t>(n * 2 * k));
    cpu.row_top_k(want.data(), z.data(), n, valid, k, start);
    PooledBuffer gout(device_allocator(), want.size() * sizeof(double));
    cuda::fill_bytes(gout.data(), 0xFF, want.size() * sizeof(double));  // NaN: unwritten fails
    gpu.row_top_k(gout.as<double>(), gz.f(), n, valid, k, start);
    gpu.synchronize();
    const auto got = cuda::download<double>(gout, want.size());
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "k " << k << ", element " << i;
  }
}

TEST_F(Fixture, GumbelArgmaxPicksTheCpusTokensWithTheSameNoise) {
  const Index n = 37, valid = 5000, start = 10000;
  auto z = random(n * valid, -4.0f, 4.0f);
  for (Index i = 0; i < n * valid; i += 7) z[i] = -INFINITY;  // banned tokens
  std::vector<double> threshold(n);
  std::vector<std::uint64_t> ids(n);
  std::vector<std::int64_t> positions(n);
  for (Index r = 0; r < n; ++r) {
    threshold[r] = r % 3 == 0 ? -INFINITY : (r % 3 == 1 ? 2.0 : 3.99);  // all, a nucleus, maybe none
    ids[r] = 1000003ull * static_cast<std::uint64_t>(r);
    positions[r] = 17 + r;
  }
  Dev gz(z);
  PooledBuffer gthreshold = cuda::upload(threshold), gids = cuda::upload(ids), gpositions = cuda::upload(positions);
  for (bool noisy : {false, true}) {
    std::vector<double> score(n), id(n);
    cpu.gumbel_argmax(score.data(), id.data(), z.data(), n, valid, threshold.data(), noisy, 42, ids.data(),
                      positions.data(), start);
    PooledBuffer gscore(device_allocator(), n * sizeof(double)), gid(device_allocator(), n * sizeof(double));
    gpu.gumbel_argmax(gscore.as<double>(), gid.as<double>(), gz.f(), n, valid, gthreshold.as<double>(), noisy, 42,
                      gids.as<std::uint64_t>(), gpositions.as<std::int64_t>(), start);
    gpu.synchronize();
    const auto got_score = cuda::download<double>(gscore, n), got_id = cuda::download<double>(gid, n);
    for (Index r = 0; r < n; ++r) {
      EXPECT_EQ(got_id[r], id[r]) << "row " << r << (noisy ? " noisy" : " greedy");
      if (id[r] >= 0) {
        EXPECT_NEAR(got_score[r], score[r], 1e-12 * std::abs(score[r])) << "row " << r;
      }
    }
  }
}

// ---- mixed precision --------------------------------------------------------------------------

}  // namespace
}  // namespace spin::kernels
