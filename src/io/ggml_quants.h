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

// One block of a quantized type in ggml's own terms: the parameters and codes a pass chose
// (GPTQ, the activation-weighted scale search), for encoders that write them as they are.
//   d, m    f16 values: the scale; the min (Q4_1, Q5_1) or the scale of the mins, dmin (Q2_K,
//           Q4_K, Q5_K); m unused by the symmetric types
//   sc, mn  K types: the integer scale and min of each sub-block (sc signed for Q3_K and Q6_K)
//   q       value codes, signed for the symmetric types (Q4_0 −8..7, Q8_0 −128..127, Q3_K −4..3,
//           Q6_K −32..31) and unsigned for the affine ones
// What a code decodes to is ggml_value() below, bit for bit what the type's decoder produces.
struct GgmlBlock {
  float d = 0, m = 0;
  int sc[16] = {}, mn[16] = {};
  int q[256] = {};
};

// The shape of a quantized type's grid: a block of `block` elements whose sub-blocks of `sub`
// elements each have their own step a (legacy: d; K types: d·sc) and, for affine types, offset.
struct GgmlGrid {
  uint32_t type;
  int block, sub;  // elements per block and per sub-block
  int cmin, cmax;  // value codes
  bool affine;     // x = a·q + offset (the min m, or −dmin·mn); else x = a·q
  int smin, smax;  // K types: range of the integer sub-block scales (0, 0 for legacy types)
  int mmax;        // affine K types: integer sub-block mins 0..mmax
  bool k() const { return smax > 0; }
};
// The grid of a quantized block type, or null (F32, F16, types without blocks).
const GgmlGrid* ggml_grid(uint32_t type);

// The value of code q in sub-block j of b: what the decoder gives when d and m are f16 values.
inline float ggml_step(const GgmlGrid& g, const GgmlBlock& b, int j) { return g.k() ? b.d * (float)b.sc[j] : b.d; }
inline float ggml_value(const GgmlGrid& g, const GgmlBlock& b, int j, int q) {
  if (!g.k()) return g.affine ? b.d * (float)q + b.m : (float)q * b.d;
  float a = b.d * (float)b.sc[j];
  return g.affine ? a * (float)q - b.m * (float)b.mn[j] : a * (float)q;
}

// Writes b as one block of its type (ggml_type_info(type)->bytes bytes; d and m rounded to f16).
// Throws run_failed for a code, scale or min outside the type's range.
void pack_block(uint32_t type, const GgmlBlock& b, uint8_t* out);

// The inverse of pack_block for legacy types, for kernels that repack legacy blocks:
// the 32 codes as the decoder reads them and the f16 bits of d and m (m = 0 without a min).
void unpack_legacy_block(uint32_t type, const uint8_t* block, int32_t* codes, uint16_t& d, uint16_t& m);

}  // namespace tq
