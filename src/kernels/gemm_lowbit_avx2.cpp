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
#include <utility>

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
  constexpr int NP = plane_count(BITS);
  const int64_t nblk = w.Cp / 32;
  const uint32_t* words = w.words.data() + tile * nblk * BITS * 64 + 32 * h;
  alignas(32) float yb[MR * 32] = {};
  for (int64_t g = 0; g < w.groups; g++) {
    __m256 acc[MR * 4];
#pragma GCC unroll 8
    for (int i = 0; i < MR * 4; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++)
      for_each_plane<BITS>([&](auto plane) {
        constexpr int i = decltype(plane)::value;
        constexpr Plane pl = plane_of(BITS, i);
        const float* xs[MR];
        for (int r = 0; r < MR; r++) xs[r] = x.xs + ((r0 + r) * NP + i) * w.Cp + cb * 32;
        plane_block<pl.width, MR>(words + cb * BITS * 64 + pl.word * 64, xs, acc);
      });
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64 + 32 * h;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64 + 32 * h;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m256 s = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(sg + 8 * v)));
      const __m256 z = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(zg + 8 * v)));
#pragma GCC unroll 2
      for (int r = 0; r < MR; r++) {
        const __m256 xg = _mm256_set1_ps(x.xsum[(r0 + r) * w.groups + g]), yo = _mm256_load_ps(yb + r * 32 + 8 * v);
        const __m256 out = w.min ? _mm256_fmadd_ps(z, xg, _mm256_fmadd_ps(s, acc[r * 4 + v], yo))
                                 : _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, xg, acc[r * 4 + v]), yo);
        _mm256_store_ps(yb + r * 32 + 8 * v, out);
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

template <int BITS, int MR>
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
      for_each_plane<BITS>([&](auto plane) {
        constexpr int i = decltype(plane)::value;
        constexpr Plane pl = plane_of(BITS, i);
        constexpr int per_byte = 8 / pl.width;
        const int8_t* a = x.a + (r0 * row_bytes) + (cb * NP + i) * 32;
#pragma GCC unroll 8
        for (int k = 0; k < pl.width; k++) {
          __m256i wd[4];
#pragma GCC unroll 4
          for (int v = 0; v < 4; v++)
            wd[v] = _mm256_load_si256((const __m256i*)(words + cb * BITS * 64 + (pl.word + k) * 64 + 8 * v));
          [&]<int... S>(std::integer_sequence<int, S...>) {
            (
                [&] {
#pragma GCC unroll 2
                  for (int r = 0; r < MR; r++) {
                    int32_t q4;
                    std::memcpy(&q4, a + r * row_bytes + 4 * (k * per_byte + S), 4);
                    const __m256i xb = _mm256_set1_epi32(q4);
#pragma GCC unroll 4
                    for (int v = 0; v < 4; v++)
                      acc[r * 4 + v] = add_digits<pl.width, pl.shift, S>(acc[r * 4 + v], wd[v], xb);
                  }
                }(),
                ...);
          }(std::make_integer_sequence<int, per_byte>{});
        }
      });
    const uint16_t* sg = w.scale.data() + (tile * w.groups + g) * 64 + 32 * h;
    const uint16_t* zg = w.zero.data() + (tile * w.groups + g) * 64 + 32 * h;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m256 s = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(sg + 8 * v)));
      const __m256 z = _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(zg + 8 * v)));
      const __m256 m = w.min ? z : _mm256_xor_ps(_mm256_mul_ps(s, z), _mm256_set1_ps(-0.0f));
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

template <int BITS>
void a8_tile(const LowbitPacked& w, int64_t t, const LowbitA8Rows& x, float* y, int64_t ldy) {
  for (int h = 0; h < 2 && t * 64 + 32 * h < w.O; h++)
    for (int r0 = 0; r0 < x.rows; r0 += 2) {
      if (x.rows - r0 >= 2) a8_half_tile<BITS, 2>(w, t, h, x, r0, y, ldy);
      else a8_half_tile<BITS, 1>(w, t, h, x, r0, y, ldy);
    }
}

template <template <int> class Fn, class R>
R by_bits(int bits) {
  switch (bits) {
    case 2: return Fn<2>::f;
    case 3: return Fn<3>::f;
    case 4: return Fn<4>::f;
    case 5: return Fn<5>::f;
    case 6: return Fn<6>::f;
    case 7: return Fn<7>::f;
    default: return Fn<8>::f;
  }
}
template <int B>
struct FloatTile {
  static constexpr LowbitTileFn f = tile<B>;
};
template <int B>
struct A8Tile {
  static constexpr LowbitA8TileFn f = a8_tile<B>;
};

}  // namespace

LowbitTileFn lowbit_tile_avx2(int bits) { return by_bits<FloatTile, LowbitTileFn>(bits); }
LowbitA8TileFn lowbit_a8_tile_avx2(int bits) { return by_bits<A8Tile, LowbitA8TileFn>(bits); }

}  // namespace tq::detail
