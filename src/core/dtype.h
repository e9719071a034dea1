// Storage dtypes of model files and their conversion to f32.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tq {

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even f32 -> f16, with overflow to inf and subnormals.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
  if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // rounds to >= 65520: inf
  if (ax < 0x38800000) {                                   // f16 subnormal: units of 2^-24
    if (ax < 0x33000000) return (uint16_t)sign;            // below half the smallest: zero
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;  // may carry into the smallest normal
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax + 0xc8000000u;  // rebias exponent: (e - 127 + 15) << 23
  uint32_t mant_round = r + 0xfff + ((r >> 13) & 1);
  return (uint16_t)(sign | (mant_round >> 13));
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

// ggml tensor types, one row per type (block size, bytes per block, conversion
// to and from f32), the way ggml describes its formats: the storage of tensors
// that stay in their file's type (Tensor::stored). The table is io/ggml_types.h.
enum GgmlType : uint32_t {
  ggml_f32 = 0, ggml_f16 = 1, ggml_q4_0 = 2, ggml_q4_1 = 3, ggml_q5_0 = 6, ggml_q5_1 = 7, ggml_q8_0 = 8,
  ggml_q8_1 = 9, ggml_q2_k = 10, ggml_q3_k = 11, ggml_q4_k = 12, ggml_q5_k = 13, ggml_q6_k = 14, ggml_q8_k = 15,
  ggml_i8 = 24, ggml_i16 = 25, ggml_i32 = 26, ggml_i64 = 27, ggml_f64 = 28, ggml_bf16 = 30,
};

struct GgmlTypeInfo {
  const char* name;
  int block;          // elements per block
  int bytes;          // bytes per block
  // Converts n elements (a multiple of block) from src to f32; null if not readable.
  void (*to_f32)(const uint8_t* src, float* dst, int64_t n);
  // Encodes n elements (a multiple of block) from f32; null if tquant does not write the type.
  void (*from_f32)(const float* src, uint8_t* dst, int64_t n);
};

}  // namespace tq
