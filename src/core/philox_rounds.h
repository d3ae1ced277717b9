// The Philox4x32-10 rounds as one inline function for host and device code alike (the CPU
// generator in core/philox.cpp and the CUDA sampling kernel both call this, so the two cannot
// drift apart). Plain arrays, no std:: types: usable from __device__ code.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace spin {

// counter: 4 words in, the 4 random words out; key: 2 words (not modified).
SPIN_HOST_DEVICE inline void philox4x32_10_rounds(std::uint32_t c[4], const std::uint32_t key[2]) {
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;  // Weyl constants: golden ratio, sqrt(3) - 1
      k1 += 0xBB67AE85u;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * c[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * c[2];
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    const std::uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k1;
    c[3] = lo0;
  }
}

// Philox block (seed; stream; counter) in spin's layout -- counter words (counter lo, counter hi,
// stream lo, stream hi), key = seed -- written to c: core/philox.h's philox_bits, for host and
// device code alike.
SPIN_HOST_DEVICE inline void philox_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter,
                                          std::uint32_t c[4]) {
  c[0] = static_cast<std::uint32_t>(counter);
  c[1] = static_cast<std::uint32_t>(counter >> 32);
  c[2] = static_cast<std::uint32_t>(stream);
  c[3] = static_cast<std::uint32_t>(stream >> 32);
  const std::uint32_t key[2] = {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  philox4x32_10_rounds(c, key);
}

// The Gumbel noise of token `token` at `position` of sample `sample_id` (generate/sampling.h):
// Philox block (counter = position << 32 | token, stream = sample_id, key = seed), u from its
// first word in (0, 1), g = -log(-log u), in double.
template <class Log>
SPIN_HOST_DEVICE inline double gumbel_noise(std::uint64_t seed, std::uint64_t sample_id, std::int64_t position,
                                            std::int64_t token, Log log) {
  std::uint32_t c[4];
  philox_block(seed, sample_id, (static_cast<std::uint64_t>(position) << 32) | static_cast<std::uint64_t>(token), c);
  const double u = (static_cast<double>(c[0]) + 0.5) / 4294967296.0;  // in (0, 1)
  return -log(-log(u));
}

// LoRA dropout's mask (Kernels::dropout): the four keep decisions of global columns 4 g .. 4 g + 3 of
// the row keyed `row_key` at dropout site `site` (layer x target) of the step seeded `seed`, as bits
// 0..3 -- Philox block (counter = site << 32 | g, stream = row_key, key = seed), a column kept when
// the top 24 bits of its word, as a fraction of 2^24, are at least p (probability 1 - p to within
// 2^-24). Integers and one exact float comparison: every device decides the same.
SPIN_HOST_DEVICE inline unsigned dropout_keeps(std::uint64_t seed, std::uint64_t row_key, std::uint32_t site,
                                               std::uint64_t g, float p) {
  std::uint32_t c[4];
  philox_block(seed, row_key, (static_cast<std::uint64_t>(site) << 32) | (g & 0xFFFFFFFFull), c);
  const float threshold = p * 16777216.0f;  // exact: p times 2^24
  return static_cast<unsigned>(static_cast<float>(c[0] >> 8) >= threshold) |
         static_cast<unsigned>(static_cast<float>(c[1] >> 8) >= threshold) << 1 |
         static_cast<unsigned>(static_cast<float>(c[2] >> 8) >= threshold) << 2 |
         static_cast<unsigned>(static_cast<float>(c[3] >> 8) >= threshold) << 3;
}

// The Philox blocks (groups of four global columns, 4 g .. 4 g + 3) that columns
// [col_offset, col_offset + cols) touch: from col_offset / 4 on, this many (cols > 0).
SPIN_HOST_DEVICE inline long long dropout_groups(long long col_offset, long long cols) {
  return (col_offset + cols - 1) / 4 - col_offset / 4 + 1;
}

}  // namespace spin
