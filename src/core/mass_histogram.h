// The top-p search's arithmetic (generate/sampling.cpp, Kernels::row_mass_histogram), for host
// and device code alike: floats as 32-bit keys in the same order, and the fixed-point weight of
// a token's probability mass -- integers, so a histogram's sums are exact in any order: the same
// on every device, in every TP layout, whatever order the threads add in.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace spin {

// A float's bits as an unsigned integer that orders as the floats do (-inf < ... < -0 < +0 < ...
// < +inf), and back.
SPIN_HOST_DEVICE inline std::uint32_t float_order_key(float f) {
  std::uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}
SPIN_HOST_DEVICE inline float float_from_order_key(std::uint32_t key) {
  const std::uint32_t bits = (key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

// A histogram round sorts by one byte of the key: 256 buckets, 4 rounds for the 32 bits.
constexpr int kMassBuckets = 256;
constexpr int kMassBucketBits = 8;

// exp(x - shift) for x <= shift (shift: the row's largest logit), in units of 2^-40, rounded:
// a row of up to 2^24 entries sums below 2^64. A weight is within 2^-41 of its exact value, so
// a row's sum within (entries) x 2^-41 -- a few parts in 10^8 of the row's mass (at least 1,
// its largest entry's) at a vocabulary of 128 Ki.
SPIN_HOST_DEVICE inline std::uint64_t mass_weight(double e) {
  return static_cast<std::uint64_t>(e * 1099511627776.0 + 0.5);
}

}  // namespace spin
