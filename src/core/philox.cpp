#include "core/philox.h"
#include "core/philox_rounds.h"

#include <cmath>
#include <numbers>

namespace spin {

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  philox4x32_10_rounds(c.data(), k.data());
  return c;
}

PhiloxCounter philox_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter) {
  PhiloxCounter c;
  philox_block(seed, stream, counter, c.data());
  return c;
}

float philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter) {
  const PhiloxCounter r = philox_bits(seed, stream, counter);
  const double u1 = uniform_open(r[0]);
  const double u2 = uniform_open(r[1]);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                            std::cos(2.0 * std::numbers::pi * u2));
}

}  // namespace spin
