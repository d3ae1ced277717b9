// Element types of tensors and of checkpoint/safetensors payloads, with exact conversions:
// bf16/f16 -> f32 is exact; f32 -> bf16/f16 rounds to nearest even (as PyTorch's .to()).
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace spin {

enum class DType { F32, BF16, F16, F64, I32, I64, U64, U8 };

std::size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...
// Parses a safetensors dtype string; returns false for names spin does not read.
bool parse_dtype(std::string_view name, DType* out);

float bf16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_bf16(float value);
float f16_to_f32(std::uint16_t bits);
// OCP FP8 E4M3 ("e4m3fn": bias 7, no infinities, S.1111.111 NaN; up to 448), as FP8 checkpoints
// (DeepSeek-V3's F8_E4M3) store their weights: a file format spin reads (checkpoint/safetensors.h), not
// a tensor type. Exact.
float f8e4m3_to_f32(std::uint8_t bits);
// The E4M3 code nearest `value` (ties to the even code), saturating at +-448 as CUDA's satfinite
// conversion does -- the format has no infinity, and its S.1111.111 is NaN. NaN is the caller's to
// refuse (it returns the NaN code). Inline: a checkpoint export encodes every weight through it.
inline std::uint8_t f32_to_f8e4m3(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint8_t>((bits >> 24) & 0x80);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7f;   // NaN
  if (magnitude >= 0x43e00000u) return sign | 0x7e;  // 448 and up (infinity too): saturated
  if (magnitude < 0x3c800000u) {  // below 2^-6: the subnormal codes, mantissa x 2^-9, to the nearest (even) one
    return sign | static_cast<std::uint8_t>(std::nearbyint(std::bit_cast<float>(magnitude) * 512.0f));
  }
  // Normal: the 23 mantissa bits rounded to 3, ties to even (a carry moves into the exponent, as the next
  // code up), then float32's exponent bias of 127 made E4M3's 7: [exponent, 3 mantissa bits] minus 120 << 3.
  const std::uint32_t rounded = magnitude + 0x7ffffu + ((magnitude >> 20) & 1);
  return sign | static_cast<std::uint8_t>((rounded >> 20) - (120u << 3));
}
std::uint16_t f32_to_f16(float value);

// Converts `n` elements of `src` (of type `t`, little-endian, any alignment) to float.
// Only floating-point types are accepted.
void convert_to_f32(const void* src, DType t, std::size_t n, float* dst);

}  // namespace spin
