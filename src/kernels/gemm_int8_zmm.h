// The int8 epilogue on 16 outputs in a zmm, shared by the AVX-512 and AMX
// kernels (include only from files compiled with AVX-512 flags).
#pragma once
#include <immintrin.h>

#include "kernels/gemm_int8_impl.h"

namespace tq::detail {

// Outputs o..o+n−1 (n ≤ 16) of row t from their raw u8 × s8 sums.
static inline void finish16(const Int8Job& j, int64_t t, int64_t o, int64_t n, __m512i acc) {
  __m512i d = _mm512_add_epi32(acc, _mm512_loadu_si512(j.corr + o));
  if (j.zw) d = _mm512_sub_epi32(d, _mm512_mullo_epi32(_mm512_loadu_si512(j.zw + o), _mm512_set1_epi32(j.row_sum[t])));
  const __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
  if (j.d) {
    _mm512_mask_storeu_epi32(j.d + t * j.ldy + o, m, d);
    return;
  }
  const float al = j.alpha ? j.alpha[t] : j.alpha0;
  __m512 sc = _mm512_mul_ps(_mm512_set1_ps(al), _mm512_loadu_ps(j.w->scale.data() + o));
  __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sc, _mm512_loadu_ps(j.w->bias.data() + o));
  _mm512_mask_storeu_ps(j.y + t * j.ldy + o, m, y);
}

}  // namespace tq::detail
