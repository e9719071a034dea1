// K5 with AVX2: the AVX-512 kernel on 4 int64 lanes, in chunks of 16 values
// (8 ymm of accumulators); the last D % 4 values take the scalar loop.
#include <immintrin.h>

#include <cstring>

#include "kernels/pv_log_impl.h"

namespace tq::detail {

namespace {

template <int NV>
void chunk(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int K, int64_t* A, int64_t* B) {
  __m256i a[NV], b[NV];
#pragma GCC unroll 4
  for (int i = 0; i < NV; i++) a[i] = b[i] = _mm256_setzero_si256();
  for (int64_t j = 0; j < keys; j++) {
    const int e = (q[j] + 1) / 2;
    if (q[j] == 0xFF || e > K) continue;
    const __m128i s = _mm_cvtsi32_si128(K - e);
    const __m256i odd = _mm256_set1_epi64x(q[j] & 1 ? -1 : 0);
    const int8_t* vj = v + j * ldv;
#pragma GCC unroll 4
    for (int i = 0; i < NV; i++) {
      int32_t four;
      std::memcpy(&four, vj + 4 * i, 4);
      const __m256i t = _mm256_sll_epi64(_mm256_cvtepi8_epi64(_mm_cvtsi32_si128(four)), s);
      a[i] = _mm256_add_epi64(a[i], t);
      b[i] = _mm256_add_epi64(b[i], _mm256_and_si256(t, odd));
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < NV; i++) {
    _mm256_storeu_si256((__m256i*)(A + 4 * i), a[i]);
    _mm256_storeu_si256((__m256i*)(B + 4 * i), b[i]);
  }
}

using ChunkFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, int, int64_t*, int64_t*);
constexpr ChunkFn kChunks[4] = {chunk<1>, chunk<2>, chunk<3>, chunk<4>};

}  // namespace

void pv_row_avx2(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                 int64_t* B) {
  const int64_t D4 = D / 4 * 4;
  for (int64_t k0 = 0; k0 < D4; k0 += 16) {
    const int64_t n = std::min<int64_t>(16, D4 - k0);
    kChunks[n / 4 - 1](q, keys, v + k0, ldv, K, A + k0, B + k0);
  }
  if (D4 < D) pv_row_scalar(q, keys, v + D4, ldv, D - D4, K, A + D4, B + D4);
}

}  // namespace tq::detail
