// QKᵀ dots with AVX-512 VNNI: vpdpwssd multiplies 32 int16 pairs and adds pairs
// into 16 int32 lanes, exactly; the head dimension's tail is masked.
#include <immintrin.h>

#include "kernels/attn_scores_impl.h"

namespace tq::detail {

void attn_dots_avx512(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d) {
  for (int64_t j = 0; j < n; j++) {
    const int16_t* bj = b + j * ldb;
    __m512i acc = _mm512_setzero_si512();
    for (int k = 0; k < hd; k += 32) {
      const __mmask32 m = hd - k >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (hd - k)) - 1);
      acc = _mm512_dpwssd_epi32(acc, _mm512_maskz_loadu_epi16(m, a + k), _mm512_maskz_loadu_epi16(m, bj + k));
    }
    d[j] = _mm512_reduce_add_epi32(acc);
  }
}

}  // namespace tq::detail
