#include "io/ggml_types.h"

#include <cctype>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_quants.h"
#include "kernels/gemm_half.h"

namespace tq {

static void f32_to_f32(const uint8_t* s, float* d, int64_t n) { std::memcpy(d, s, sizeof(float) * n); }
static void f16_row(const uint8_t* s, float* d, int64_t n) {
  if ((uintptr_t)s % 2 == 0) return half_to_f32((const uint16_t*)s, d, n, Half::f16);
  for (int64_t i = 0; i < n; i++) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    d[i] = f16_to_f32(h);
  }
}
static void bf16_row(const uint8_t* s, float* d, int64_t n) {
  if ((uintptr_t)s % 2 == 0) return half_to_f32((const uint16_t*)s, d, n, Half::bf16);
  for (int64_t i = 0; i < n; i++) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    d[i] = bf16_to_f32(h);
  }
}
static void f64_row(const uint8_t* s, float* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v;
    std::memcpy(&v, s + 8 * i, 8);
    d[i] = (float)v;
  }
}
static void f32_from(const float* s, uint8_t* d, int64_t n) { std::memcpy(d, s, sizeof(float) * n); }
static void f16_from(const float* s, uint8_t* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint16_t h = f32_to_f16(s[i]);
    std::memcpy(d + 2 * i, &h, 2);
  }
}

static void bf16_from(const float* s, uint8_t* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint16_t h = f32_to_bf16(s[i]);
    std::memcpy(d + 2 * i, &h, 2);
  }
}

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  static const GgmlTypeInfo f32{"F32", 1, 4, f32_to_f32, f32_from}, f16{"F16", 1, 2, f16_row, f16_from},
      bf16{"BF16", 1, 2, bf16_row, bf16_from}, f64{"F64", 1, 8, f64_row, nullptr},
      q4_0{"Q4_0", 32, 18, dequantize_q4_0, quantize_q4_0}, q4_1{"Q4_1", 32, 20, dequantize_q4_1, quantize_q4_1},
      q5_0{"Q5_0", 32, 22, dequantize_q5_0, quantize_q5_0}, q5_1{"Q5_1", 32, 24, dequantize_q5_1, quantize_q5_1},
      q8_0{"Q8_0", 32, 34, dequantize_q8_0, quantize_q8_0}, q8_1{"Q8_1", 32, 36, nullptr, nullptr},
      q2_k{"Q2_K", 256, 84, dequantize_q2_k, quantize_q2_k}, q3_k{"Q3_K", 256, 110, dequantize_q3_k, quantize_q3_k},
      q4_k{"Q4_K", 256, 144, dequantize_q4_k, quantize_q4_k}, q5_k{"Q5_K", 256, 176, dequantize_q5_k, quantize_q5_k},
      q6_k{"Q6_K", 256, 210, dequantize_q6_k, quantize_q6_k}, q8_k{"Q8_K", 256, 292, nullptr, nullptr},
      i8{"I8", 1, 1, nullptr, nullptr}, i16{"I16", 1, 2, nullptr, nullptr}, i32{"I32", 1, 4, nullptr, nullptr},
      i64{"I64", 1, 8, nullptr, nullptr};
  switch (type) {
    case ggml_f32: return &f32;
    case ggml_f16: return &f16;
    case ggml_bf16: return &bf16;
    case ggml_f64: return &f64;
    case ggml_q4_0: return &q4_0;
    case ggml_q4_1: return &q4_1;
    case ggml_q5_0: return &q5_0;
    case ggml_q5_1: return &q5_1;
    case ggml_q8_0: return &q8_0;
    case ggml_q8_1: return &q8_1;
    case ggml_q2_k: return &q2_k;
    case ggml_q3_k: return &q3_k;
    case ggml_q4_k: return &q4_k;
    case ggml_q5_k: return &q5_k;
    case ggml_q6_k: return &q6_k;
    case ggml_q8_k: return &q8_k;
    case ggml_i8: return &i8;
    case ggml_i16: return &i16;
    case ggml_i32: return &i32;
    case ggml_i64: return &i64;
  }
  return nullptr;
}

uint32_t ggml_type_from_name(const std::string& name) {
  std::string up;
  for (char c : name) up += (char)std::toupper((unsigned char)c);
  std::string written;
  for (uint32_t t = 0; t <= ggml_bf16; t++) {
    const GgmlTypeInfo* ti = ggml_type_info(t);
    if (!ti || !ti->from_f32) continue;
    if (up == ti->name) return t;
    written += (written.empty() ? "" : ", ") + std::string(ti->name);
  }
  bad_input("ggml type '{}' is not one tquant writes ({})", name, written);
}

}  // namespace tq
