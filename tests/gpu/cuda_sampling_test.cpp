// The sampler's kernels on the GPU against the CPU's (tests/gpu/cuda_kernels_test.cpp says how):
// the logits' penalties, EOS ban and temperature, the rows' statistics in double, top-p's mass
// histograms, top-k's candidates, the Gumbel-max choice with the same noise, and the chosen
// candidates' raw logits.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/mass_histogram.h"
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

// The row maxima and sums of exponentials of n rows of `valid` of `ld` random entries, every 11th banned (-inf),
// against the CPU's, the outputs poisoned (NaN) before each run.
void expect_row_statistics_as_cpu(const CpuKernels& cpu, const CudaKernels& gpu, Index n, Index ld, Index valid) {
  auto x = random(n * ld, -20.0f, 20.0f);
  for (Index i = 0; i < n * ld; i += 11) x[i] = -INFINITY;  // banned tokens
  Dev gx(x);
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
    std::vector<double> mx(n), sum(n);
    PooledBuffer gmx(device_allocator(), n * 8), gsum(device_allocator(), n * 8);
    cuda::fill_bytes(gmx.data(), 0xFF, n * 8);
    cuda::fill_bytes(gsum.data(), 0xFF, n * 8);
    cpu.row_max_f64(mx.data(), x.data(), n, ld, valid, finite_only);
    gpu.row_max_f64(gmx.as<double>(), gx.f(), n, ld, valid, finite_only);
    compare(mx, gmx, "max");
    if (!finite_only) continue;  // with the -inf entries the shift must be the finite max
    cpu.row_sumexp_f64(sum.data(), x.data(), n, ld, valid, mx.data(), true);
    gpu.row_sumexp_f64(gsum.as<double>(), gx.f(), n, ld, valid, gmx.as<double>(), true);
    compare(sum, gsum, "sumexp");
  }
}

// Rows of one chunk (2,900 entries: one launch) and of three (9,900: the chunks' partial results, then a row's).
TEST_F(Fixture, SamplerRowStatisticsInDouble) {
  for (const Index valid : {Index{2900}, Index{9900}}) {
    SCOPED_TRACE(valid);
    expect_row_statistics_as_cpu(cpu, gpu, 23, valid + 100, valid);
  }
}

// The top-p search's histograms over a 128 Ki vocabulary (32 blocks a row), each round's prefix
// that of the row's largest entry or of another of its entries: integers, so the same as the
// CPU's exactly -- but for a weight whose exp differs in its last bit at a rounding boundary
// (counted, and at most a unit in a bucket).
TEST_F(Fixture, MassHistogramsAreTheCpusIntegers) {
  const Index n = 5, ld = 131072, valid = 131000;
  auto x = random(n * ld, -25.0f, 5.0f);
  for (Index i = 0; i < n * ld; i += 13) x[i] = -INFINITY;  // banned tokens
  std::vector<double> shift(n);
  cpu.row_max_f64(shift.data(), x.data(), n, ld, valid, true);
  Dev gx(x);
  PooledBuffer gshift = cuda::upload(shift);
  int off_by_one = 0;
  for (bool follow_max : {true, false}) {
    for (int bits = 0; bits < 32; bits += kMassBucketBits) {
      std::vector<std::uint64_t> prefix(n);
      for (Index r = 0; r < n; ++r) {
        const float pick = follow_max ? static_cast<float>(shift[r]) : x[r * ld + 1 + r];
        prefix[r] = bits == 0 ? 0 : float_order_key(pick) >> (32 - bits);
      }
      std::vector<std::uint64_t> want(static_cast<std::size_t>(n * kMassBuckets));
      cpu.row_mass_histogram(want.data(), x.data(), n, ld, valid, shift.data(), prefix.data(), bits);
      PooledBuffer gprefix = cuda::upload(prefix), gout(device_allocator(), want.size() * 8);
      cuda::fill_bytes(gout.data(), 0xFF, want.size() * 8);  // the kernels must zero it first
      gpu.row_mass_histogram(gout.as<std::uint64_t>(), gx.f(), n, ld, valid, gshift.as<double>(),
                             gprefix.as<std::uint64_t>(), bits);
      gpu.synchronize();
      const auto got = cuda::download<std::uint64_t>(gout, want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        const std::uint64_t apart = got[i] > want[i] ? got[i] - want[i] : want[i] - got[i];
        off_by_one += apart == 1 ? 1 : 0;
        ASSERT_LE(apart, 1u) << "bits " << bits << ", row " << i / kMassBuckets << ", bucket " << i % kMassBuckets;
      }
    }
  }
  EXPECT_LT(off_by_one, 10) << "buckets a unit apart (exp's last bit)";
}

// Rows of 10,000 entries: three chunks of the first launch (kernels/cuda/sampling_kernels.cuh).
TEST_F(Fixture, RowTopKOffersTheCpusCandidatesExactly) {
  const Index n = 9, valid = 10000, start = 500;
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

// Rows of 5,000 tokens: two chunks of the first launch.
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

// The chosen candidates' raw logits, ids at stride 2 as in a top-k offer: ids in the shard, before
// and past it, and empty slots (-inf) -- the CPU's values exactly, the output poisoned.
TEST_F(Fixture, LogitsAtIdsAreTheHoldersRawLogits) {
  const Index n = 37, ld = 5030, valid = 5000, start = 10000, count = 9;
  const auto logits = random(n * ld, -8.0f, 8.0f);
  const auto columns = random_ints(static_cast<std::size_t>(n * count), -100, static_cast<int>(valid) + 100);
  std::vector<double> pairs(static_cast<std::size_t>(2 * n * count), 0.0);  // (value, id); the values unread
  for (std::size_t j = 0; j < columns.size(); ++j) pairs[2 * j + 1] = j % 10 == 9 ? -INFINITY : start + columns[j];
  std::vector<double> want(columns.size());
  cpu.logits_at_ids(want.data(), logits.data(), n, ld, valid, pairs.data() + 1, count, 2, start);
  Dev glogits(logits);
  PooledBuffer gpairs = cuda::upload(pairs), gout(device_allocator(), want.size() * sizeof(double));
  cuda::fill_bytes(gout.data(), 0xFF, want.size() * sizeof(double));
  gpu.logits_at_ids(gout.as<double>(), glogits.f(), n, ld, valid, gpairs.as<double>() + 1, count, 2, start);
  gpu.synchronize();
  const auto got = cuda::download<double>(gout, want.size());
  for (std::size_t j = 0; j < want.size(); ++j) EXPECT_EQ(got[j], want[j]) << "id " << pairs[2 * j + 1];
}

// ---- mixed precision --------------------------------------------------------------------------

}  // namespace
}  // namespace spin::kernels
