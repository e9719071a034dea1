// Shared by the K4 drivers and their per-ISA tile kernels (not API).
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/gemm_lowbit.h"

namespace tq::detail {

// Planes of a code (gemm_lowbit.h): widths and their weights 2^shift in the code,
// low bits first; `word` is the index of a plane's first word within a block.
struct Plane {
  int width, shift, word;
};
constexpr int plane_count(int bits) { return bits == 8 ? 1 : (bits >> 2 & 1) + (bits >> 1 & 1) + (bits & 1); }
constexpr Plane plane_of(int bits, int i) {
  if (bits == 8) return {8, 0, 0};
  int shift = 0;
  for (int width : {4, 2, 1})
    if (bits & width) {
      if (i-- == 0) return {width, shift, shift};
      shift += width;
    }
  return {0, 0, 0};
}
// Calls f(std::integral_constant<int, i>) for each plane i of a BITS-bit code.
template <int BITS, class F, int I = 0>
inline void for_each_plane(F&& f) {
  if constexpr (I < plane_count(BITS)) {
    f(std::integral_constant<int, I>{});
    for_each_plane<BITS, F, I + 1>(static_cast<F&&>(f));
  }
}

// ---- K4, float activations ----

// Rows per tile call: the float accumulators of MR rows × 64 outputs.
constexpr int kLowbitRows = 4;

// Activations as the K4 tile kernels read them, for up to kLowbitRows rows:
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
//   Σ_g s·(Σ_c code·x − z·xsum_g) accumulated group by group with fmas (min form:
//   fma(s, Σ_c code·x, y) then fma(m, xsum_g, y)), then + bias.
using LowbitTileFn = void (*)(const LowbitPacked& w, int64_t tile, const LowbitRows& x, float* y, int64_t ldy);

// The tile kernel of a code width and offset form (min: zero holds mins).
LowbitTileFn lowbit_tile_scalar(int bits, bool min);
LowbitTileFn lowbit_tile_avx2(int bits, bool min);
LowbitTileFn lowbit_tile_avx512(int bits, bool min);

// ---- K4-a8, int8 activations ----

// The codes of a row as the a8 kernels read them: per block of 32 inputs and per
// plane of width p, 32 bytes in the order a word's bytes meet them: the dword
// lane of a plane word k holds 32/p codes, and (word >> p·s) & (2^p − 1 in each
// byte) puts in byte i the code of slot i·8/p + s; so byte 4·(k·8/p + s) + i of the
// plane's 32 is the code of input k·32/p + i·8/p + s of the block. Row stride
// a8_row_bytes(w) (a multiple of 64, so that AMX tiles never read past a row);
// zero beyond C.
inline int64_t a8_row_bytes(const LowbitPacked& w) { return (w.Cp * plane_count(w.bits) + 63) / 64 * 64; }
// The byte of input j (< 32) of a block within a plane of that width.
int a8_slot(int width, int j);

// Up to kLowbitRows rows, prepared: codes as above, S_{t,g} as floats (exact),
// steps α_t.
struct LowbitA8Rows {
  const int8_t* a;
  const float* sum;   // rows × groups
  const float* step;  // rows
  int rows;
};

// The a8 tile kernels: y rows r < rows of the tile's real lanes, the formula of
// gemm_lowbit.h with the plane bytes pre-shifted to their weight (2^shift·digit)
// so that every plane adds into the same int32 sum.
using LowbitA8TileFn = void (*)(const LowbitPacked& w, int64_t tile, const LowbitA8Rows& x, float* y, int64_t ldy);

// The AMX path over all rows (x.a holds whole 32-row blocks, zero-padded), for
// weights whose groups fill whole tile rows (lowbit_a8_amx_fits).
bool lowbit_a8_amx_fits(const LowbitPacked& w);
void gemm_lowbit_a8_amx(const LowbitPacked& w, const LowbitA8Rows& x, float* y, int64_t ldy);

LowbitA8TileFn lowbit_a8_tile_scalar(int bits, bool min);
LowbitA8TileFn lowbit_a8_tile_avx2(int bits, bool min);
LowbitA8TileFn lowbit_a8_tile_avx512(int bits, bool min);

}  // namespace tq::detail
