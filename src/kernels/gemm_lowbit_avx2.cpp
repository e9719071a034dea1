// K4 and K4-a8 with AVX2: the AVX-512 kernels' operations on 8 lanes. A
// 64-output tile runs as two halves of 4 ymm, rows in pairs (8 accumulators +
// 4 words).
//
// K4-a8 has no vpdpbusd here: vpmaddubsw multiplies the digit bytes (u8) by the
// activation codes (s8) into pairs of int16 and vpmaddwd by ones adds the pairs
// into int32. A pair holds at most 2·127·128 < 2^15 for digits up to 127, i.e.
// every plane of a code below 8 bits; an 8-bit plane is split into its two
// nibbles, the high one's sum shifted left by 4 (exact in int32).
#include <immintrin.h>

#include <cstring>

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

// Every plane of one block: plane I reads its words and the rows' activations Cp·I further.
template <int BITS, int MR, int I = 0>
inline void planes(const uint32_t* block, const float* const* xs, int64_t Cp, __m256* acc) {
  if constexpr (I < plane_count(BITS)) {
    constexpr Plane pl = plane_of(BITS, I);
    const float* xi[MR];
    for (int r = 0; r < MR; r++) xi[r] = xs[r] + I * Cp;
    plane_block<pl.width, MR>(block + pl.word * 64, xi, acc);
    planes<BITS, MR, I + 1>(block, xs, Cp, acc);
  }
}

// Rows r0..r0+MR−1, lanes 32·h .. 32·h+31 of the tile.
template <int BITS, int MR, bool MIN>
void half_tile(const LowbitPacked& w, int64_t tile, int h, const LowbitRows& x, int r0, float* y, int64_t ldy) {
  constexpr int NP = plane_count(BITS);
  const int64_t nblk = w.Cp / 32;
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64 + 32 * h;
  alignas(32) float yb[MR * 32] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m256 acc[MR * 4];
#pragma GCC unroll 8
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++) {
      const float* xs[MR];
      for (int r = 0; r < MR; r++) xs[r] = x.xs + (r0 + r) * NP * w.Cp + cb * 32;
      planes<BITS, MR>(words + cb * BITS * 64, xs, w.Cp, acc);
    }
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64 + 32 * h;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64 + 32 * h;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m256 s = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(sg + 8 * v)));
      const __m256 z = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(zg + 8 * v)));
#pragma GCC unroll 2
      for (int r = 0; r < MR; r++) {
        const __m256 xg = _mm256_set1_ps(x.xsum[(r0 + r) * w.groups + g]), yo = _mm256_load_ps(yb + r * 32 + 8 * v);
        const __m256 out = MIN ? _mm256_fmadd_ps(z, xg, _mm256_fmadd_ps(s, acc[r * 4 + v], yo))
                               : _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, xg, acc[r * 4 + v]), yo);
        _mm256_store_ps(yb + r * 32 + 8 * v, out);
      }
    }
  }
  const int64_t o0 = tile * 64 + 32 * h, lanes = std::min<int64_t>(32, w.O - o0);
  for (int r = 0; r < MR; r++)
    for (int64_t l = 0; l < lanes; l++) y[(r0 + r) * ldy + o0 + l] = yb[r * 32 + l] + w.bias[o0 + l];
}

template <int BITS, bool MIN>
void tile(const LowbitPacked& w, int64_t t, const LowbitRows& x, float* y, int64_t ldy) {
  for (int h = 0; h < 2 && t * 64 + 32 * h < w.O; h++)
    for (int r0 = 0; r0 < x.rows; r0 += 2) {
      if (x.rows - r0 >= 2) half_tile<BITS, 2, MIN>(w, t, h, x, r0, y, ldy);
      else half_tile<BITS, 1, MIN>(w, t, h, x, r0, y, ldy);
    }
}

// Σ over 4 bytes per lane of digits (u8, ≤ 127) × codes (s8), into int32.
inline __m256i dot4(__m256i digits, __m256i codes) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(digits, codes), _mm256_set1_epi16(1));
}

// acc += the products of shift s of a plane word with the broadcast codes xb.
template <int PW, int SHIFT, int S>
inline __m256i add_digits(__m256i acc, __m256i word, __m256i xb) {
  if constexpr (PW == 8) {
    const __m256i lo = _mm256_and_si256(word, _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(word, 4), _mm256_set1_epi8(0x0F));
    return _mm256_add_epi32(acc, _mm256_add_epi32(dot4(lo, xb), _mm256_slli_epi32(dot4(hi, xb), 4)));
  } else {
    constexpr int sh = PW * S - SHIFT;
    constexpr uint32_t mask = (0x01010101u * ((1u << PW) - 1)) << SHIFT;
    const __m256i moved = sh > 0 ? _mm256_srli_epi32(word, sh) : sh < 0 ? _mm256_slli_epi32(word, -sh) : word;
    return _mm256_add_epi32(acc, dot4(_mm256_and_si256(moved, _mm256_set1_epi32((int)mask)), xb));
  }
}

// acc[r·4 + v] += the digits of shifts S.. of one plane word (wd: 4 × 8 lanes) times
// the codes of MR rows (a: the plane's 32 bytes of row 0, rows row_bytes apart).
template <int PW, int SHIFT, int MR, int S = 0>
inline void word_rows(const __m256i* wd, const int8_t* a, int64_t row_bytes, int k, __m256i* acc) {
  if constexpr (S < 8 / PW) {
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
      int32_t q4;
      std::memcpy(&q4, a + r * row_bytes + 4 * (k * (8 / PW) + S), 4);
      const __m256i xb = _mm256_set1_epi32(q4);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) acc[r * 4 + v] = add_digits<PW, SHIFT, S>(acc[r * 4 + v], wd[v], xb);
    }
    word_rows<PW, SHIFT, MR, S + 1>(wd, a, row_bytes, k, acc);
  }
}

// Every plane of one block (its words at block, the rows' codes at a).
template <int BITS, int MR, int I = 0>
inline void a8_planes(const uint32_t* block, const int8_t* a, int64_t row_bytes, __m256i* acc) {
  if constexpr (I < plane_count(BITS)) {
    constexpr Plane pl = plane_of(BITS, I);
#pragma GCC unroll 8
    for (int k = 0; k < pl.width; k++) {
      __m256i wd[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) wd[v] = _mm256_load_si256((const __m256i*)(block + (pl.word + k) * 64 + 8 * v));
      word_rows<pl.width, pl.shift, MR>(wd, a + I * 32, row_bytes, k, acc);
    }
    a8_planes<BITS, MR, I + 1>(block, a, row_bytes, acc);
  }
}

template <int BITS, int MR, bool MIN>
void a8_half_tile(const LowbitPacked& w, int64_t tile, int h, const LowbitA8Rows& x, int r0, float* y, int64_t ldy) {
  constexpr int NP = plane_count(BITS);
  const int64_t nblk = w.Cp / 32, row_bytes = a8_row_bytes(w);
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64 + 32 * h;
  alignas(32) float pb[MR * 32] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m256i acc[MR * 4];
#pragma GCC unroll 8
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm256_setzero_si256();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++)
      a8_planes<BITS, MR>(words + cb * BITS * 64, x.a + r0 * row_bytes + cb * NP * 32, row_bytes, acc);
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64 + 32 * h;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64 + 32 * h;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m256 s = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(sg + 8 * v)));
      const __m256 z = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(zg + 8 * v)));
      const __m256 m = MIN ? z : _mm256_xor_ps(_mm256_mul_ps(s, z), _mm256_set1_ps(-0.0f));
#pragma GCC unroll 2
      for (int r = 0; r < MR; r++) {
        const __m256 q = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(acc[r * 4 + v]), _mm256_load_ps(pb + r * 32 + 8 * v));
        _mm256_store_ps(pb + r * 32 + 8 * v, _mm256_fmadd_ps(m, _mm256_set1_ps(x.sum[(r0 + r) * w.groups + g]), q));
      }
    }
  }
  const int64_t o0 = tile * 64 + 32 * h, lanes = std::min<int64_t>(32, w.O - o0);
  for (int r = 0; r < MR; r++)
    for (int64_t l = 0; l < lanes; l++)
      y[(r0 + r) * ldy + o0 + l] = __builtin_fmaf(x.step[r0 + r], pb[r * 32 + l], w.bias[o0 + l]);
}

template <int BITS, bool MIN>
void a8_tile(const LowbitPacked& w, int64_t t, const LowbitA8Rows& x, float* y, int64_t ldy) {
  for (int h = 0; h < 2 && t * 64 + 32 * h < w.O; h++)
    for (int r0 = 0; r0 < x.rows; r0 += 2) {
      if (x.rows - r0 >= 2) a8_half_tile<BITS, 2, MIN>(w, t, h, x, r0, y, ldy);
      else a8_half_tile<BITS, 1, MIN>(w, t, h, x, r0, y, ldy);
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
  static constexpr LowbitTileFn f = tile<B, MIN>;
};
template <int B, bool MIN>
struct A8Tile {
  static constexpr LowbitA8TileFn f = a8_tile<B, MIN>;
};

}  // namespace

LowbitTileFn lowbit_tile_avx2(int bits, bool min) { return by_bits<FloatTile, LowbitTileFn>(bits, min); }
LowbitA8TileFn lowbit_a8_tile_avx2(int bits, bool min) { return by_bits<A8Tile, LowbitA8TileFn>(bits, min); }

}  // namespace tq::detail
