// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator. A value is a pure function of (seed, stream, counter), with no
// state to carry, so every rank can draw exactly the number another layout would have drawn for
// the same (sample, position, token): the basis of spin's layout-invariant sampling and init.
#pragma once

#include <array>
#include <cstdint>

namespace spin {

using PhiloxCounter = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

// The bijection itself, as published (Random123's philox4x32 with 10 rounds).
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// Four 32-bit random words for (seed, stream, counter): key = seed, counter words =
// (counter lo, counter hi, stream lo, stream hi).
PhiloxCounter philox_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter);

// A float uniform in the open interval (0, 1) from 32 random bits: (k + 0.5) / 2^23 with k the
// top 23 bits, exactly representable from 2^-24 to 1 - 2^-24, so both log(u) and log(1 - u)
// are finite (Gumbel and Box-Muller need that).
inline float uniform_open(std::uint32_t bits) {
  return (static_cast<float>(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

// A standard normal draw keyed by (seed, stream, counter), by Box-Muller on one Philox block.
float philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter);

}  // namespace spin
