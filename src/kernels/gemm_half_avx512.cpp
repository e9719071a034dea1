// gemv_half and half_to_f32 on AVX-512 (F16C conversion of 16 halves at a time).
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_half.h"

namespace tq::detail {

namespace {

inline __m512 load16(const uint16_t* p, Half h) {
  __m256i v = _mm256_loadu_si256((const __m256i*)p);
  if (h == Half::f16) return _mm512_cvtph_ps(v);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// Lanes pairwise (j, j+8), (j, j+4), (j, j+2), (j, j+1).
inline float reduce16(__m512 a) {
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}

constexpr int kRows = 4;  // rows of x that share each load of W

void rows(const float* x, int64_t M, int64_t ldx, const uint16_t* w, int64_t o0, int64_t o1, int64_t C, Half h,
          const float* bias, float* y, int64_t ldy) {
  const int64_t C16 = C / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (C - C16)) - 1);
  for (int64_t m0 = 0; m0 < M; m0 += kRows) {
    const int mr = (int)std::min<int64_t>(kRows, M - m0);
    for (int64_t o = o0; o < o1; o++) {
      const uint16_t* wr = w + o * C;
      __m512 acc[kRows];
      for (int r = 0; r < kRows; r++) acc[r] = _mm512_setzero_ps();
      for (int64_t c = 0; c < C16; c += 16) {
        const __m512 wv = load16(wr + c, h);
        for (int r = 0; r < mr; r++) acc[r] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (m0 + r) * ldx + c), acc[r]);
      }
      if (C16 < C) {
        uint16_t wt[16] = {};
        std::memcpy(wt, wr + C16, (C - C16) * 2);
        const __m512 wv = load16(wt, h);
        for (int r = 0; r < mr; r++)
          acc[r] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x + (m0 + r) * ldx + C16), acc[r]);
      }
      for (int r = 0; r < mr; r++) y[(m0 + r) * ldy + o] = reduce16(acc[r]) + (bias ? bias[o] : 0.0f);
    }
  }
}

void convert(const uint16_t* src, float* dst, int64_t n, Half h) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16(src + i, h));
  if (i < n) {
    uint16_t t[16] = {};
    std::memcpy(t, src + i, (n - i) * 2);
    _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1), load16(t, h));
  }
}

}  // namespace

HalfRowsFn half_rows_avx512() { return rows; }
HalfConvertFn half_convert_avx512() { return convert; }

}  // namespace tq::detail
