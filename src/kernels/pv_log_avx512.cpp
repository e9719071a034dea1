// K5 with AVX-512: 8 int64 lanes per zmm. Per key j: sign-extend 8 values,
// shift all lanes by the key's K − e_j (vpsllq), add to A, and to B under a
// mask that is all-ones for odd codes. D is done in chunks of 64 (16 zmm of
// accumulators), the last vector of a chunk masked.
#include <immintrin.h>

#include "kernels/pv_log_impl.h"

namespace tq::detail {

namespace {

template <int NV>
void chunk(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t n, int K, int64_t* A, int64_t* B) {
  __m512i a[NV], b[NV];
#pragma GCC unroll 8
  for (int i = 0; i < NV; i++) a[i] = b[i] = _mm512_setzero_si512();
  const __mmask8 last = (__mmask8)(n - 8 * (NV - 1) >= 8 ? 0xff : (1u << (n - 8 * (NV - 1))) - 1);
  for (int64_t j = 0; j < keys; j++) {
    const int e = (q[j] + 1) / 2;
    if (q[j] == 0xFF || e > K) continue;
    const __m128i s = _mm_cvtsi32_si128(K - e);
    const __mmask8 odd = (__mmask8)(q[j] & 1 ? 0xff : 0);
    const int8_t* vj = v + j * ldv;
#pragma GCC unroll 8
    for (int i = 0; i < NV; i++) {
      const __m128i bytes = i == NV - 1 ? _mm_maskz_loadu_epi8(last, vj + 8 * i) : _mm_loadl_epi64((const __m128i*)(vj + 8 * i));
      const __m512i t = _mm512_sll_epi64(_mm512_cvtepi8_epi64(bytes), s);
      a[i] = _mm512_add_epi64(a[i], t);
      b[i] = _mm512_mask_add_epi64(b[i], odd, b[i], t);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < NV; i++) {
    const __mmask8 m = i == NV - 1 ? last : (__mmask8)0xff;
    _mm512_mask_storeu_epi64(A + 8 * i, m, a[i]);
    _mm512_mask_storeu_epi64(B + 8 * i, m, b[i]);
  }
}

using ChunkFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, int64_t, int, int64_t*, int64_t*);
constexpr ChunkFn kChunks[8] = {chunk<1>, chunk<2>, chunk<3>, chunk<4>, chunk<5>, chunk<6>, chunk<7>, chunk<8>};

}  // namespace

void pv_row_avx512(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                   int64_t* B) {
  for (int64_t k0 = 0; k0 < D; k0 += 64) {
    const int64_t n = std::min<int64_t>(64, D - k0);
    kChunks[(n + 7) / 8 - 1](q, keys, v + k0, ldv, n, K, A + k0, B + k0);
  }
}

}  // namespace tq::detail
