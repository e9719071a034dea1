// K4 and K4-a8 with AVX-512: one zmm = 16 outputs; a tile is 4 zmm (64
// outputs) × up to 4 rows of activations.
//
// K4: a code is read in place: (word & mask) converted to float is
// code·2^(width·slot), exact, and the activation it meets was pre-multiplied by
// 2^−(width·slot) (lowbit_prepare), so each input costs an and, a convert and one
// fma per row, with no shifts.
//
// K4-a8 (VNNI): a shift and an and turn a plane word of 16 lanes into 4 bytes
// per lane, each a code digit times its weight 2^shift; vpdpbusd multiplies them
// by 4 activation codes broadcast from the row (laid out in that byte order by
// the driver) and adds into int32, so each 4 inputs × 16 outputs × row cost one
// instruction, plus two per plane word shared by the rows.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "kernels/gemm_lowbit_impl.h"
#include "kernels/gemm_lowbit_zmm.h"

namespace tq::detail {

namespace {

// One plane of one block of 32 inputs: acc[r·4 + v] += code · xs[r][c].
template <int PW, int MR>
inline void plane_block(const uint32_t* wp, const float* const* xs, __m512* acc) {
  constexpr int per_word = 32 / PW;
#pragma GCC unroll 8
  for (int k = 0; k < PW; k++) {
    __m512i wd[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) wd[v] = _mm512_load_si512(wp + k * 64 + v * 16);
#pragma GCC unroll 32
    for (int j = 0; j < per_word; j++) {
      const __m512i mask = _mm512_set1_epi32((int)(((1u << PW) - 1) << (PW * j)));
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) {
        const __m512i bits = j == per_word - 1 ? _mm512_srli_epi32(wd[v], 32 - PW) : _mm512_and_si512(wd[v], mask);
        const __m512 f = _mm512_cvtepi32_ps(bits);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++)
          acc[r * 4 + v] = _mm512_fmadd_ps(f, _mm512_set1_ps(xs[r][k * per_word + j]), acc[r * 4 + v]);
      }
    }
  }
}

// Every plane of one block: plane I reads its words and the rows' activations Cp·I further.
template <int BITS, int MR, int I = 0>
inline void planes(const uint32_t* block, const float* const* xs, int64_t Cp, __m512* acc) {
  if constexpr (I < plane_count(BITS)) {
    constexpr Plane pl = plane_of(BITS, I);
    const float* xi[MR];
    for (int r = 0; r < MR; r++) xi[r] = xs[r] + I * Cp;
    plane_block<pl.width, MR>(block + pl.word * 64, xi, acc);
    planes<BITS, MR, I + 1>(block, xs, Cp, acc);
  }
}

// MIN: zero holds ggml's min (a template flag: a run-time one costs the loop its registers).
template <int BITS, int MR, bool MIN>
void tile(const LowbitPacked& w, int64_t tile, const LowbitRows& x, float* y, int64_t ldy) {
  constexpr int NP = plane_count(BITS);
  const int64_t nblk = w.Cp / 32;
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64;
  alignas(64) float yb[MR * 64] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m512 acc[MR * 4];
#pragma GCC unroll 16
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++) {
      const float* xs[MR];
      for (int r = 0; r < MR; r++) xs[r] = x.xs + r * NP * w.Cp + cb * 32;
      planes<BITS, MR>(words + cb * BITS * 64, xs, w.Cp, acc);
    }
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m512 s = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(sg + 16 * v)));
      const __m512 z = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(zg + 16 * v)));
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) {
        const __m512 xg = _mm512_set1_ps(x.xsum[r * w.groups + g]), yo = _mm512_load_ps(yb + r * 64 + 16 * v);
        const __m512 out = MIN ? _mm512_fmadd_ps(z, xg, _mm512_fmadd_ps(s, acc[r * 4 + v], yo))
                               : _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, xg, acc[r * 4 + v]), yo);
        _mm512_store_ps(yb + r * 64 + 16 * v, out);
      }
    }
  }
  const int64_t o0 = tile * 64, lanes = std::min<int64_t>(64, w.O - o0);
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < 4 && 16 * v < lanes; v++) {
      const __mmask16 m = lanes - 16 * v >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (lanes - 16 * v)) - 1);
      const __m512 out = _mm512_add_ps(_mm512_load_ps(yb + r * 64 + 16 * v), _mm512_loadu_ps(w.bias.data() + o0 + 16 * v));
      _mm512_mask_storeu_ps(y + r * ldy + o0 + 16 * v, m, out);
    }
}

template <int BITS, bool MIN>
void tile_rows(const LowbitPacked& w, int64_t t, const LowbitRows& x, float* y, int64_t ldy) {
  switch (x.rows) {
    case 1: return tile<BITS, 1, MIN>(w, t, x, y, ldy);
    case 2: return tile<BITS, 2, MIN>(w, t, x, y, ldy);
    case 3: return tile<BITS, 3, MIN>(w, t, x, y, ldy);
    default: return tile<BITS, 4, MIN>(w, t, x, y, ldy);
  }
}

// acc[r·4 + v] += the digits of shifts S.. of one plane word (wd: 4 × 16 lanes) times
// the codes of MR rows (a: the plane's 32 bytes of row 0, rows row_bytes apart).
template <int PW, int SHIFT, int MR, int S = 0>
inline void word_rows(const __m512i* wd, const int8_t* a, int64_t row_bytes, int k, __m512i* acc) {
  if constexpr (S < 8 / PW) {
    __m512i xb[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
      int32_t q4;
      std::memcpy(&q4, a + r * row_bytes + 4 * (k * (8 / PW) + S), 4);
      xb[r] = _mm512_set1_epi32(q4);
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m512i e = digits<PW, SHIFT, S>(wd[v]);
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) acc[r * 4 + v] = _mm512_dpbusd_epi32(acc[r * 4 + v], e, xb[r]);
    }
    word_rows<PW, SHIFT, MR, S + 1>(wd, a, row_bytes, k, acc);
  }
}

// Every plane of one block (its words at block, the rows' codes at a).
template <int BITS, int MR, int I = 0>
inline void a8_planes(const uint32_t* block, const int8_t* a, int64_t row_bytes, __m512i* acc) {
  if constexpr (I < plane_count(BITS)) {
    constexpr Plane pl = plane_of(BITS, I);
#pragma GCC unroll 8
    for (int k = 0; k < pl.width; k++) {
      __m512i wd[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) wd[v] = _mm512_load_si512(block + (pl.word + k) * 64 + 16 * v);
      word_rows<pl.width, pl.shift, MR>(wd, a + I * 32, row_bytes, k, acc);
    }
    a8_planes<BITS, MR, I + 1>(block, a, row_bytes, acc);
  }
}

template <int BITS, int MR, bool MIN>
void a8_tile(const LowbitPacked& w, int64_t tile, const LowbitA8Rows& x, float* y, int64_t ldy) {
  constexpr int NP = plane_count(BITS);
  const int64_t nblk = w.Cp / 32, row_bytes = a8_row_bytes(w);
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64;
  alignas(64) float pb[MR * 64] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m512i acc[MR * 4];
#pragma GCC unroll 16
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm512_setzero_si512();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++)
      a8_planes<BITS, MR>(words + cb * BITS * 64, x.a + cb * NP * 32, row_bytes, acc);
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m512 s = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(sg + 16 * v)));
      const __m512 z = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(zg + 16 * v)));
      const __m512 m = MIN ? z : neg(_mm512_mul_ps(s, z));
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) {
        const __m512 q = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(acc[r * 4 + v]), _mm512_load_ps(pb + r * 64 + 16 * v));
        _mm512_store_ps(pb + r * 64 + 16 * v, _mm512_fmadd_ps(m, _mm512_set1_ps(x.sum[r * w.groups + g]), q));
      }
    }
  }
  const int64_t o0 = tile * 64, lanes = std::min<int64_t>(64, w.O - o0);
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < 4 && 16 * v < lanes; v++) {
      const __mmask16 mk = lanes - 16 * v >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (lanes - 16 * v)) - 1);
      const __m512 out = _mm512_fmadd_ps(_mm512_set1_ps(x.step[r]), _mm512_load_ps(pb + r * 64 + 16 * v),
                                         _mm512_loadu_ps(w.bias.data() + o0 + 16 * v));
      _mm512_mask_storeu_ps(y + r * ldy + o0 + 16 * v, mk, out);
    }
}

template <int BITS, bool MIN>
void a8_tile_rows(const LowbitPacked& w, int64_t t, const LowbitA8Rows& x, float* y, int64_t ldy) {
  switch (x.rows) {
    case 1: return a8_tile<BITS, 1, MIN>(w, t, x, y, ldy);
    case 2: return a8_tile<BITS, 2, MIN>(w, t, x, y, ldy);
    case 3: return a8_tile<BITS, 3, MIN>(w, t, x, y, ldy);
    default: return a8_tile<BITS, 4, MIN>(w, t, x, y, ldy);
  }
}

template <template <int, bool> class Fn, class R>
R by_bits(int bits, bool min) {
  switch (bits) {
    case 2: return min ? Fn<2, true>::f : Fn<2, false>::f;
    case 3: return min ? Fn<3, true>::f : Fn<3, false>::f;
    case 4: return min ? Fn<4, true>::f : Fn<4, false>::f;
    case 5: return min ? Fn<5, true>::f : Fn<5, false>::f;
    case 6: return min ? Fn<6, true>::f : Fn<6, false>::f;
    case 7: return min ? Fn<7, true>::f : Fn<7, false>::f;
    default: return min ? Fn<8, true>::f : Fn<8, false>::f;
  }
}
template <int B, bool MIN>
struct FloatTile {
  static constexpr LowbitTileFn f = tile_rows<B, MIN>;
};
template <int B, bool MIN>
struct A8Tile {
  static constexpr LowbitA8TileFn f = a8_tile_rows<B, MIN>;
};

}  // namespace

LowbitTileFn lowbit_tile_avx512(int bits, bool min) { return by_bits<FloatTile, LowbitTileFn>(bits, min); }
LowbitA8TileFn lowbit_a8_tile_avx512(int bits, bool min) { return by_bits<A8Tile, LowbitA8TileFn>(bits, min); }

}  // namespace tq::detail
