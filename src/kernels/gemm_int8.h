// Integer GEMM for W8A8 linears, kernels K1–K3 of docs/methods.md §0.4:
//
//   y[t,o] = α_t · s_o · Σ_c (Wq[o,c] − zw_o)·(q[t,c] − z) + b_o
//
//   K1  u8 activations, per-tensor step Δ and zero point z:   α_t = Δ
//   K2  s8 activations, step already folded into W:           α_t = 1, z = 0
//   K3  s8 activations quantized per token (quantize_per_token): α_t = s_t, z = 0
//
// zw_o is the optional per-row weight zero point (RepQ-ViT's asymmetric
// weights); it adds −zw_o·S_t + C·z·zw_o with S_t = Σ_c q[t,c] (docs/methods.md §0.4).
//
// A runtime packs each weight once (pack_int8) and then calls gemm_int8 per
// batch of activations. Every path accumulates exactly in int32: the sums are
// the same bits on every path and every thread count. int32 holds them while
// C·max|Wq − zw|·max|q − z| < 2^31; for symmetric weights and z in [0, 255]
// that is C ≤ 65,793. Calls beyond that bound are rejected.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/aligned.h"
#include "kernels/cpu.h"

namespace tq {

// A quantized weight as a quantizer hands it over: row-major O × C codes.
struct Int8Weights {
  const int8_t* q = nullptr;
  int64_t O = 0, C = 0;
  const float* scale = nullptr;   // s_o, O values
  const float* bias = nullptr;    // b_o, or null
  const int32_t* zero = nullptr;  // zw_o, or null for symmetric weights
};

// The same weight in the layout every path reads: blocks of 32 outputs, each
// a run of input chunks of 64, each two 1 KB halves of 16 outputs; a half is 16
// quads of 4 inputs × 16 outputs (byte = o%16·4 + c%4). A half is one AMX B tile
// (16 rows of 64 bytes, stride 64); one quad of it is one zmm for vpdpbusd,
// four 16-byte pieces for AVX2. C is padded with zeros to a multiple of 64, O to
// a multiple of 64 (the vector paths' panels).
struct Int8Packed {
  static constexpr int kPanel = 64;
  static constexpr int kDepthAlign = 64;
  int64_t O = 0, C = 0, Cp = 0;   // Cp: padded C
  avector<int8_t> data;           // O/32 blocks × Cp/64 chunks × 2 halves × 1 KB
  std::vector<int32_t> row_sum;   // R_o = Σ_c Wq[o,c], padded to the panels
  std::vector<float> scale, bias; // padded with zeros; bias zero when absent
  std::vector<int32_t> zero;      // empty for symmetric weights, else padded
  int32_t wq_range = 0;           // max |Wq − zw| over the weight (overflow bound)
  int64_t panels() const { return (O + kPanel - 1) / kPanel; }
  // The 1 KB half of outputs 16·o16 .. 16·o16 + 15 and inputs 64·chunk .. 64·chunk + 63;
  // chunk k + 1 of it is kChunkStride bytes further.
  static constexpr int64_t kChunkStride = 2048;
  const int8_t* block(int64_t o16, int64_t chunk) const {
    return data.data() + (o16 / 2) * Cp * 32 + chunk * kChunkStride + (o16 % 2) * 1024;
  }
};

Int8Packed pack_int8(const Int8Weights& w);

// Activations as the kernels read them: M rows of C codes, row stride ld.
struct Int8Acts {
  const void* q = nullptr;          // uint8_t codes (K1) or int8_t codes (K2, K3)
  int64_t M = 0, ld = 0;
  bool is_signed = false;
  int32_t zero = 0;                 // z, u8 only
  float step = 1;                   // α for every row (K1: Δ; K2: 1)
  const float* row_step = nullptr;  // α_t per row (K3); replaces step
};

inline Int8Acts acts_u8(const uint8_t* q, int64_t M, int64_t ld, float step, int32_t zero) {
  return {q, M, ld, false, zero, step, nullptr};
}
inline Int8Acts acts_s8(const int8_t* q, int64_t M, int64_t ld) { return {q, M, ld, true, 0, 1.0f, nullptr}; }
inline Int8Acts acts_s8_per_token(const int8_t* q, const float* row_step, int64_t M, int64_t ld) {
  return {q, M, ld, true, 0, 1.0f, row_step};
}

// y (M × O, row stride ldy) = the epilogue above, in f32.
void gemm_int8(const Int8Acts& a, const Int8Packed& w, float* y, int64_t ldy, Isa isa = Isa::automatic);
// The integer sums d[t,o] = Σ_c (Wq[o,c] − zw_o)·(q[t,c] − z) alone.
void gemm_int8_s32(const Int8Acts& a, const Int8Packed& w, int32_t* d, int64_t ldd, Isa isa = Isa::automatic);

// The path gemm_int8 takes for a resolved isa, for reports ("amx (avx512 below 8 rows)").
std::string gemm_int8_path(Isa isa);

// Plain references on the unpacked weight, int64 sums (checked to fit int32).
void gemm_int8_ref(const Int8Acts& a, const Int8Weights& w, float* y, int64_t ldy);
void gemm_int8_ref_s32(const Int8Acts& a, const Int8Weights& w, int32_t* d, int64_t ldd);

// K3's activation side, per row t: s_t = max_c |x[t,c]| / 127 (1 for an all-zero
// row), q[t,c] = round_half_even(x[t,c] / s_t), within [−127, 127].
void quantize_per_token(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s,
                        Isa isa = Isa::automatic);
void quantize_per_token_ref(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s);

}  // namespace tq
