// Linears whose weights stay in their file's 16-bit type (F16 or BF16): each
// weight is converted to f32 in registers (F16C, or a shift for BF16) as it is
// used, so such a model runs without an f32 copy of itself.
//
//   y[m, o] = Σ_c W[o, c]·x[m, c] + b_o
//
// gemv_half serves the few rows of decoding, where reading the weights is the
// whole cost; a prefill converts tiles of W with half_to_f32 and multiplies them
// with BLAS (nn: linear_stored). Each output sums in one order on every path —
// 16 lanes (lane j takes c ≡ j mod 16, fused multiply-adds in order of c, zeros
// past C), then lanes pairwise (j, j+8), (j, j+4), (j, j+2), (j, j+1), then the
// bias — so every instruction set gives the same bits.
#pragma once
#include <cstdint>

#include "kernels/cpu.h"

namespace tq {

enum class Half { f16, bf16 };

// y (M × O, stride ldy) from x (M × C, stride ldx) and W (O × C halves, row-major).
void gemv_half(const float* x, int64_t M, int64_t ldx, const uint16_t* w, int64_t O, int64_t C, Half h,
               const float* bias, float* y, int64_t ldy, Isa isa = Isa::automatic);

// n halves to f32, exactly (NaNs stay NaN).
void half_to_f32(const uint16_t* src, float* dst, int64_t n, Half h, Isa isa = Isa::automatic);

namespace detail {
// One path's kernel: rows [0, M) of y for outputs [o0, o1).
using HalfRowsFn = void (*)(const float* x, int64_t M, int64_t ldx, const uint16_t* w, int64_t o0, int64_t o1,
                            int64_t C, Half h, const float* bias, float* y, int64_t ldy);
using HalfConvertFn = void (*)(const uint16_t* src, float* dst, int64_t n, Half h);
HalfRowsFn half_rows_avx2();
HalfRowsFn half_rows_avx512();
HalfConvertFn half_convert_avx2();
HalfConvertFn half_convert_avx512();
}  // namespace detail

}  // namespace tq
