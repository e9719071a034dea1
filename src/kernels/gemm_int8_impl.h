// What the int8 GEMM dispatcher hands to each per-ISA kernel (not API).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/gemm_int8.h"
#include "kernels/work_split.h"

namespace tq::detail {

// One call, prepared: activations as u8 (s8 codes + 128, z likewise) with the
// depth padded with zeros to the weight's Cp, integer corrections precomputed
// per output.
struct Int8Job {
  const uint8_t* a = nullptr;  // M rows of depth u8, row stride lda; or, when tiled, AMX tiles:
  bool tiled = false;          // row t, input c at amx_act_offset(t, c, depth)
  int64_t M = 0, lda = 0, depth = 0;
  const Int8Packed* w = nullptr;
  const int32_t* corr = nullptr;     // per output (padded): −z·R_o + C·z·zw_o, mod 2^32
  const int32_t* zw = nullptr;       // zw_o (padded), or null
  const int32_t* row_sum = nullptr;  // S_t = Σ_c u8 code, when zw is set
  const float* alpha = nullptr;      // α_t per row, or null for alpha0
  float alpha0 = 1;
  float* y = nullptr;    // f32 output, or
  int32_t* d = nullptr;  // int32 sums
  int64_t ldy = 0;
};

// Bad input unless the shapes fit and the exact sums fit int32 (gemm_int8.h).
void check_int8_call(const Int8Acts& a, int64_t O, int64_t C, int64_t ldy);
void check_int8_bound(const Int8Acts& a, int64_t C, int32_t wq_range);

// The tiled activation layout: blocks of 32 rows (zero-padded), each a run of
// input chunks of 64, each two 16-row × 64-byte tiles (rows 0–15, then 16–31).
inline int64_t amx_act_offset(int64_t t, int64_t c, int64_t depth) {
  return (t / 32) * 32 * depth + (c / 64) * 2048 + (t % 32 / 16) * 1024 + (t % 16) * 64 + c % 64;
}

void gemm_int8_scalar(const Int8Job& j);
void gemm_int8_avx2(const Int8Job& j);
void gemm_int8_avx512(const Int8Job& j);
void gemm_int8_amx(const Int8Job& j);

void quantize_per_token_avx2(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s);
void quantize_per_token_avx512(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s);

// The float epilogue every path uses, in this order: y = fma(float(d), α·s_o, b_o).
inline float int8_epilogue(int32_t d, float alpha, float scale, float bias) {
  return __builtin_fmaf((float)d, alpha * scale, bias);
}

}  // namespace tq::detail
