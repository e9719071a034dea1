// ggml tensor types as a table, one row per type (block size, bytes per
// block, conversion to and from f32), the way ggml describes its formats.
// The block formats themselves are in io/ggml_quants.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tq {

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

// The row of a type, or null for an unknown type id.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// The id of a type by its name ("Q4_K", case-insensitive); bad_input naming the written types otherwise.
uint32_t ggml_type_from_name(const std::string& name);

}  // namespace tq
