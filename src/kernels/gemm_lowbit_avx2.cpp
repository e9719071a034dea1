// K4 with AVX2: the AVX-512 kernel's operations on 8 lanes. A 64-output tile
// runs as two halves of 4 ymm, rows in pairs (8 accumulators + 4 words).
#include <immintrin.h>

#include "kernels/gemm_lowbit_impl.h"

namespace tq::detail {

namespace {

template <int PW, int MR>
inline void plane_block(const uint32_t* wp, const float* const* xs, __m256* acc) {
  constexpr int per_word = 32 / PW;
#pragma GCC unroll 8
  for (int k = 0; k < PW; k++) {
    __m256i wd[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) wd[v] = _mm256_load_si256((const __m256i*)(wp + k * 64 + v * 8));
#pragma GCC unroll 32
    for (int j = 0; j < per_word; j++) {
      const __m256i mask = _mm256_set1_epi32((int)(((1u << PW) - 1) << (PW * j)));
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) {
        const __m256i bits = j == per_word - 1 ? _mm256_srli_epi32(wd[v], 32 - PW) : _mm256_and_si256(wd[v], mask);
        const __m256 f = _mm256_cvtepi32_ps(bits);
#pragma GCC unroll 2
        for (int r = 0; r < MR; r++)
          acc[r * 4 + v] = _mm256_fmadd_ps(f, _mm256_set1_ps(xs[r][k * per_word + j]), acc[r * 4 + v]);
      }
    }
  }
}

// Rows r0..r0+MR−1, lanes 32·h .. 32·h+31 of the tile.
template <int BITS, int MR>
void half_tile(const LowbitPacked& w, int64_t tile, int h, const LowbitRows& x, int r0, float* y, int64_t ldy) {
  constexpr int NP = BITS == 3 ? 2 : 1, PW0 = BITS == 3 ? 2 : BITS;
  const int64_t nblk = w.Cp / 32;
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64 + 32 * h;
  alignas(32) float yb[MR * 32] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m256 acc[MR * 4];
#pragma GCC unroll 8
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++) {
      const float* xs[MR];
      for (int r = 0; r < MR; r++) xs[r] = x.xs + ((r0 + r) * NP) * w.Cp + cb * 32;
      plane_block<PW0, MR>(words + cb * BITS * 64, xs, acc);
      if constexpr (NP == 2) {
        for (int r = 0; r < MR; r++) xs[r] += w.Cp;
        plane_block<1, MR>(words + cb * BITS * 64 + 2 * 64, xs, acc);
      }
    }
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64 + 32 * h;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64 + 32 * h;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m256 s = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(sg + 8 * v)));
      const __m256 z = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(zg + 8 * v)));
#pragma GCC unroll 2
      for (int r = 0; r < MR; r++) {
        const __m256 t = _mm256_fnmadd_ps(z, _mm256_set1_ps(x.xsum[(r0 + r) * w.groups + g]), acc[r * 4 + v]);
        _mm256_store_ps(yb + r * 32 + 8 * v, _mm256_fmadd_ps(s, t, _mm256_load_ps(yb + r * 32 + 8 * v)));
      }
    }
  }
  const int64_t o0 = tile * 64 + 32 * h, lanes = std::min<int64_t>(32, w.O - o0);
  for (int r = 0; r < MR; r++)
    for (int64_t l = 0; l < lanes; l++) y[(r0 + r) * ldy + o0 + l] = yb[r * 32 + l] + w.bias[o0 + l];
}

template <int BITS>
void tile(const LowbitPacked& w, int64_t t, const LowbitRows& x, float* y, int64_t ldy) {
  for (int h = 0; h < 2 && t * 64 + 32 * h < w.O; h++)
    for (int r0 = 0; r0 < x.rows; r0 += 2) {
      if (x.rows - r0 >= 2) half_tile<BITS, 2>(w, t, h, x, r0, y, ldy);
      else half_tile<BITS, 1>(w, t, h, x, r0, y, ldy);
    }
}

}  // namespace

LowbitTileFn lowbit_tile_avx2(int bits) {
  switch (bits) {
    case 2: return tile<2>;
    case 3: return tile<3>;
    case 4: return tile<4>;
    default: return tile<8>;
  }
}

}  // namespace tq::detail
