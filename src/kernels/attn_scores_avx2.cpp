// QKᵀ dots with AVX2: vpmaddwd multiplies 16 int16 pairs and adds pairs into 8
// int32 lanes, exactly; the head dimension's tail runs in scalar code.
#include <immintrin.h>

#include "kernels/attn_scores_impl.h"

namespace tq::detail {

void attn_dots_avx2(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d) {
  const int body = hd / 16 * 16;
  for (int64_t j = 0; j < n; j++) {
    const int16_t* bj = b + j * ldb;
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < body; k += 16)
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i*)(a + k)),
                                                     _mm256_loadu_si256((const __m256i*)(bj + k))));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    int32_t t = _mm_cvtsi128_si32(s);
    for (int k = body; k < hd; k++) t += (int32_t)a[k] * bj[k];
    d[j] = t;
  }
}

}  // namespace tq::detail
