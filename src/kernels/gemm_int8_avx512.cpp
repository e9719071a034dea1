// K1–K3 with AVX-512 VNNI: vpdpbusd multiplies u8 activations by s8 weights
// and adds groups of 4 products into int32 lanes, exactly.
//
// Register tile: MR ≤ 6 rows × NV ≤ 4 zmm (64 outputs), 24 accumulators kept
// over the whole depth, so each output is finished once, straight from
// registers. Per quad of depth: NV weight loads (one per 16-output half; the
// panel stays in L2 while all row blocks pass over it), MR 4-byte broadcasts,
// MR·NV vpdpbusd.
#include <immintrin.h>
#include <omp.h>

#include <cstring>

#include "kernels/gemm_int8_zmm.h"

namespace tq::detail {

namespace {

constexpr int kRows = 6;
constexpr int64_t kRowBlock = 16 * kRows;  // rows per work item: a panel's reuse before moving on

// Raw sums of MR rows × 16·NV outputs (the 16-output halves b[v]) over nq depth
// quads (a multiple of 16), into c (row stride 64).
template <int MR, int NV>
void micro(const uint8_t* a, int64_t lda, const int8_t* const* b, int64_t nq, int32_t* c) {
  __m512i acc[MR * NV];
#pragma GCC unroll 24
  for (int i = 0; i < MR * NV; i++) acc[i] = _mm512_setzero_si512();
  for (int64_t q = 0; q < nq; q++) {
    const int64_t off = (q / 16) * Int8Packed::kChunkStride + (q % 16) * 64;
    __m512i w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) w[v] = _mm512_load_si512(b[v] + off);
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      int32_t x;
      std::memcpy(&x, a + r * lda + 4 * q, 4);
      const __m512i xb = _mm512_set1_epi32(x);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r * NV + v] = _mm512_dpbusd_epi32(acc[r * NV + v], xb, w[v]);
    }
  }
#pragma GCC unroll 24
  for (int i = 0; i < MR * NV; i++) _mm512_store_si512(c + i / NV * 64 + i % NV * 16, acc[i]);
}

template <int MR, int NV>
void tile(const Int8Job& j, int64_t t0, int64_t p) {
  alignas(64) int32_t c[MR * 64];
  const int8_t* b[NV];
  for (int v = 0; v < NV; v++) b[v] = j.w->block(4 * p + v, 0);
  micro<MR, NV>(j.a + t0 * j.lda, j.lda, b, j.depth / 4, c);
  const int64_t o0 = p * 64;
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++)
      finish16(j, t0 + r, o0 + 16 * v, j.w->O - o0 - 16 * v, _mm512_load_si512(c + r * 64 + 16 * v));
}

using TileFn = void (*)(const Int8Job&, int64_t, int64_t);

template <int MR>
constexpr TileFn pick(int nv) {
  return nv == 1 ? tile<MR, 1> : nv == 2 ? tile<MR, 2> : nv == 3 ? tile<MR, 3> : tile<MR, 4>;
}

TileFn tile_fn(int mr, int nv) {
  switch (mr) {
    case 1: return pick<1>(nv);
    case 2: return pick<2>(nv);
    case 3: return pick<3>(nv);
    case 4: return pick<4>(nv);
    case 5: return pick<5>(nv);
    default: return pick<6>(nv);
  }
}

}  // namespace

void gemm_int8_avx512(const Int8Job& j) {
  const int64_t np = j.w->panels(), nb = (j.M + kRowBlock - 1) / kRowBlock;
#pragma omp parallel if (j.M * j.w->O * j.depth > kParallelWork)
  {
    int64_t begin, end;
    split_range(np * nb, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t it = begin; it < end; it++) {
      const int64_t p = it / nb, t_end = std::min(j.M, (it % nb + 1) * kRowBlock);
      const int nv = (int)std::min<int64_t>(4, (j.w->O - p * 64 + 15) / 16);
      for (int64_t t = it % nb * kRowBlock; t < t_end; t += kRows)
        tile_fn((int)std::min<int64_t>(kRows, t_end - t), nv)(j, t, p);
    }
  }
}

void quantize_per_token_avx512(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s) {
#pragma omp parallel for schedule(static) if (M * C > (1 << 16))
  for (int64_t t = 0; t < M; t++) {
    const float* row = x + t * ldx;
    __m512 m = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= C; c += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(row + c)));
    if (c < C) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (C - c)) - 1), row + c)));
    const float amax = _mm512_reduce_max_ps(m);
    const float st = amax > 0 ? amax / 127.0f : 1.0f;
    s[t] = st;
    const __m512 vs = _mm512_set1_ps(st);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (c = 0; c < C; c += 16) {
      const __mmask16 k = C - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - c)) - 1);
      __m512i v = _mm512_cvtps_epi32(_mm512_div_ps(_mm512_maskz_loadu_ps(k, row + c), vs));
      v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
      _mm512_mask_cvtepi32_storeu_epi8(q + t * ldq + c, k, v);
    }
  }
}

}  // namespace tq::detail
