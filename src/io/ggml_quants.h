// ggml's quantized block formats (the types llama.cpp stores weights in),
// written from the format description: a decoder and a reference encoder per
// type, which the rows of the type table (io/ggml_types.cpp) point to.
//
// Legacy types, 32 elements per block, f16 d (and m):
//   Q4_0  d, 16 B nibbles            x = d·(q − 8)
//   Q4_1  d, m, 16 B nibbles         x = d·q + m
//   Q5_0  d, 4 B high bits, nibbles  x = d·(q − 16)
//   Q5_1  d, m, 4 B high bits, ...   x = d·q + m
//   Q8_0  d, 32 × int8               x = d·q
// (nibbles: byte j holds element j low and element j + 16 high.)
// K-quants, 256 elements per super-block with f16 d (and dmin):
//   Q2_K  16 sub-blocks of 16, 4-bit scale and min  x = d·s·q − dmin·m, q 0..3
//   Q3_K  16 × 16, 6-bit signed scale               x = d·s·q, q −4..3
//   Q4_K  8 × 32, 6-bit scale and min               x = d·s·q − dmin·m, q 0..15
//   Q5_K  8 × 32, 6-bit scale and min               q 0..31
//   Q6_K  16 × 16, int8 scale                       x = d·s·q, q −32..31
#pragma once
#include <cstdint>

namespace tq {

// n is a multiple of the type's block size.
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t n);
void dequantize_q5_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_q5_1(const uint8_t* src, float* dst, int64_t n);
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_q2_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q3_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n);

void quantize_q4_0(const float* src, uint8_t* dst, int64_t n);
void quantize_q4_1(const float* src, uint8_t* dst, int64_t n);
void quantize_q5_0(const float* src, uint8_t* dst, int64_t n);
void quantize_q5_1(const float* src, uint8_t* dst, int64_t n);
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n);
void quantize_q2_k(const float* src, uint8_t* dst, int64_t n);
void quantize_q3_k(const float* src, uint8_t* dst, int64_t n);
void quantize_q4_k(const float* src, uint8_t* dst, int64_t n);
void quantize_q5_k(const float* src, uint8_t* dst, int64_t n);
void quantize_q6_k(const float* src, uint8_t* dst, int64_t n);

// One legacy block from given codes and parameters, for plans whose own
// quantizer a legacy type represents: codes are what the decoder reads
// (0..15 for Q4, 0..31 for Q5, −128..127 for Q8_0), d and m are rounded to f16.
// Throws run_failed for a code out of range or a type that is not legacy.
void pack_legacy_block(uint32_t type, const int32_t* codes, float d, float m, uint8_t* out);
// Its inverse, for kernels that repack legacy blocks: the 32 codes as the decoder
// reads them and the f16 bits of d and m (m = 0 for the types without a min).
void unpack_legacy_block(uint32_t type, const uint8_t* block, int32_t* codes, uint16_t& d, uint16_t& m);

}  // namespace tq
