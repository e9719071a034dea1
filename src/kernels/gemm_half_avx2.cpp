// gemv_half and half_to_f32 on AVX2 + F16C: the 16 lanes of the sum as two
// 8-lane registers (lanes 0–7 and 8–15), so the order matches the other paths.
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_half.h"

namespace tq::detail {

namespace {

inline __m256 load8(const uint16_t* p, Half h) {
  __m128i v = _mm_loadu_si128((const __m128i*)p);
  if (h == Half::f16) return _mm256_cvtph_ps(v);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

// (j, j+8) is lo + hi; then (j, j+4), (j, j+2), (j, j+1).
inline float reduce16(__m256 lo, __m256 hi) {
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}

constexpr int kRows = 4;

void rows(const float* x, int64_t M, int64_t ldx, const uint16_t* w, int64_t o0, int64_t o1, int64_t C, Half h,
          const float* bias, float* y, int64_t ldy) {
  const int64_t C16 = C / 16 * 16;
  for (int64_t m0 = 0; m0 < M; m0 += kRows) {
    const int mr = (int)std::min<int64_t>(kRows, M - m0);
    float xt[kRows][16] = {};
    if (C16 < C)
      for (int r = 0; r < mr; r++) std::memcpy(xt[r], x + (m0 + r) * ldx + C16, (C - C16) * 4);
    for (int64_t o = o0; o < o1; o++) {
      const uint16_t* wr = w + o * C;
      __m256 lo[kRows], hi[kRows];
      for (int r = 0; r < kRows; r++) lo[r] = hi[r] = _mm256_setzero_ps();
      auto step = [&](const uint16_t* wp, const float* const* xp) {
        const __m256 wl = load8(wp, h), wh = load8(wp + 8, h);
        for (int r = 0; r < mr; r++) {
          lo[r] = _mm256_fmadd_ps(wl, _mm256_loadu_ps(xp[r]), lo[r]);
          hi[r] = _mm256_fmadd_ps(wh, _mm256_loadu_ps(xp[r] + 8), hi[r]);
        }
      };
      const float* xp[kRows];
      for (int64_t c = 0; c < C16; c += 16) {
        for (int r = 0; r < mr; r++) xp[r] = x + (m0 + r) * ldx + c;
        step(wr + c, xp);
      }
      if (C16 < C) {
        uint16_t wt[16] = {};
        std::memcpy(wt, wr + C16, (C - C16) * 2);
        for (int r = 0; r < mr; r++) xp[r] = xt[r];
        step(wt, xp);
      }
      for (int r = 0; r < mr; r++) y[(m0 + r) * ldy + o] = reduce16(lo[r], hi[r]) + (bias ? bias[o] : 0.0f);
    }
  }
}

void convert(const uint16_t* src, float* dst, int64_t n, Half h) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src + i, h));
  for (; i < n; i++) {
    uint16_t t[8] = {src[i]};
    float f[8];
    _mm256_storeu_ps(f, load8(t, h));
    dst[i] = f[0];
  }
}

}  // namespace

HalfRowsFn half_rows_avx2() { return rows; }
HalfConvertFn half_convert_avx2() { return convert; }

}  // namespace tq::detail
