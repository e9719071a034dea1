// K4 with AVX-512: one zmm = 16 outputs; a tile is 4 zmm (64 outputs) × up to
// 4 rows of activations. A code is read in place: (word & mask) converted to
// float is code·2^(width·slot), exact, and the activation it meets was
// pre-multiplied by 2^−(width·slot) (lowbit_prepare), so each input costs an
// and, a convert and one fma per row, with no shifts.
#include <immintrin.h>

#include "kernels/gemm_lowbit_impl.h"

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

template <int BITS, int MR>
void tile(const LowbitPacked& w, int64_t tile, const LowbitRows& x, float* y, int64_t ldy) {
  constexpr int NP = BITS == 3 ? 2 : 1, PW0 = BITS == 3 ? 2 : BITS;
  const int64_t nblk = w.Cp / 32;
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64;
  alignas(64) float yb[MR * 64] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m512 acc[MR * 4];
#pragma GCC unroll 16
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++) {
      const float* xs[MR];
      for (int r = 0; r < MR; r++) xs[r] = x.xs + (r * NP) * w.Cp + cb * 32;
      plane_block<PW0, MR>(words + cb * BITS * 64, xs, acc);
      if constexpr (NP == 2) {
        for (int r = 0; r < MR; r++) xs[r] += w.Cp;
        plane_block<1, MR>(words + cb * BITS * 64 + 2 * 64, xs, acc);
      }
    }
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m512 s = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(sg + 16 * v)));
      const __m512 z = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(zg + 16 * v)));
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) {
        const __m512 t = _mm512_fnmadd_ps(z, _mm512_set1_ps(x.xsum[r * w.groups + g]), acc[r * 4 + v]);
        _mm512_store_ps(yb + r * 64 + 16 * v, _mm512_fmadd_ps(s, t, _mm512_load_ps(yb + r * 64 + 16 * v)));
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

template <int BITS>
void tile_rows(const LowbitPacked& w, int64_t t, const LowbitRows& x, float* y, int64_t ldy) {
  switch (x.rows) {
    case 1: return tile<BITS, 1>(w, t, x, y, ldy);
    case 2: return tile<BITS, 2>(w, t, x, y, ldy);
    case 3: return tile<BITS, 3>(w, t, x, y, ldy);
    default: return tile<BITS, 4>(w, t, x, y, ldy);
  }
}

}  // namespace

LowbitTileFn lowbit_tile_avx512(int bits) {
  switch (bits) {
    case 2: return tile_rows<2>;
    case 3: return tile_rows<3>;
    case 4: return tile_rows<4>;
    default: return tile_rows<8>;
  }
}

}  // namespace tq::detail
