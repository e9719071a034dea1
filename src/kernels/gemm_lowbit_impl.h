// Shared by the K4 driver and its per-ISA tile kernels (not API).
#pragma once
#include <cstdint>

#include "kernels/gemm_lowbit.h"

namespace tq::detail {

// Planes of a code: widths (bits per code) and their weights 2^shift in the code.
// 3-bit codes are a 2-bit plane (low bits) plus a 1-bit plane (weight 4).
struct Plane {
  int width, shift, word;  // word: index of its first word within a block
};
inline int plane_count(int bits) { return bits == 3 ? 2 : 1; }
inline Plane plane_of(int bits, int i) { return bits == 3 ? (i == 0 ? Plane{2, 0, 0} : Plane{1, 2, 2}) : Plane{bits, 0, 0}; }

// Rows per tile call: the float accumulators of MR rows × 64 outputs.
constexpr int kLowbitRows = 4;

// Activations as the tile kernels read them, for up to kLowbitRows rows:
//   xs[(r·planes + p)·Cp + c]: x[r,c] pre-multiplied by 2^(shift − width·j), where j
//     is the input's slot in its word and the value is read as (word & mask) with
//     mask = (2^width − 1) << width·j; the last slot is read as word >> width·j
//     (no sign bit to lose), so its factor is 2^shift. Zero beyond C.
//   xsum[r·groups + g] = Σ_{c∈g} x[r,c], in order.
struct LowbitRows {
  const float* xs;
  const float* xsum;
  int rows;
};

void lowbit_prepare(const float* x, int64_t ldx, int rows, const LowbitPacked& w, float* xs, float* xsum);

// y[r, 64·tile + l] for r < rows and the tile's real lanes:
//   Σ_g s·(Σ_c code·x − z·xsum_g) accumulated group by group with fmas, then + bias.
using LowbitTileFn = void (*)(const LowbitPacked& w, int64_t tile, const LowbitRows& x, float* y, int64_t ldy);

LowbitTileFn lowbit_tile_scalar(int bits);
LowbitTileFn lowbit_tile_avx2(int bits);
LowbitTileFn lowbit_tile_avx512(int bits);

}  // namespace tq::detail
