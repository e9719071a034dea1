// K1–K3 with AVX2. vpmaddubsw would saturate (255·−128·2 < −32768), so both
// operands are widened to int16 and vpmaddwd adds pairs exactly into int32.
//
// The packed weight is the same as for AVX-512: a 16-byte piece of a quad holds
// 4 outputs × 4 depths; widened and multiplied by the row's 4 depths (broadcast as int16)
// it gives two partial sums per output, added pairwise at the end.
// Register tile: 2 rows × 16 outputs (8 accumulators + 4 weight pieces).
#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "kernels/gemm_int8_impl.h"

namespace tq::detail {

namespace {

constexpr int kRows = 2;
constexpr int64_t kRowBlock = 48;

// Outputs o..o+n−1 (n ≤ 8) of row t from their raw sums.
void finish8(const Int8Job& j, int64_t t, int64_t o, int64_t n, __m256i acc) {
  __m256i d = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i*)(j.corr + o)));
  if (j.zw)
    d = _mm256_sub_epi32(d, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i*)(j.zw + o)),
                                               _mm256_set1_epi32(j.row_sum[t])));
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)std::min<int64_t>(n, 8)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (j.d) {
    _mm256_maskstore_epi32(j.d + t * j.ldy + o, mask, d);
    return;
  }
  const float al = j.alpha ? j.alpha[t] : j.alpha0;
  __m256 sc = _mm256_mul_ps(_mm256_set1_ps(al), _mm256_loadu_ps(j.w->scale.data() + o));
  __m256 y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), sc, _mm256_loadu_ps(j.w->bias.data() + o));
  _mm256_maskstore_ps(j.y + t * j.ldy + o, mask, y);
}

// Pieces for outputs 0–3 and 4–7 (pairs of partial sums) → 8 outputs in order.
__m256i fold_pairs(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xd8);
}

// Raw sums of MR rows × 16 outputs over nq depth quads, into c (row stride 16).
template <int MR>
void micro(const int16_t* a, int64_t lda, const int8_t* b, int64_t nq, int32_t* c) {
  __m256i acc[MR * 4];
#pragma GCC unroll 8
  for (int i = 0; i < MR * 4; i++) acc[i] = _mm256_setzero_si256();
  for (int64_t q = 0; q < nq; q++) {
    const int8_t* bq = b + (q / 16) * Int8Packed::kChunkStride + (q % 16) * 64;
    __m256i w[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) w[i] = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i*)(bq + 16 * i)));
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
      int64_t x;
      std::memcpy(&x, a + r * lda + 4 * q, 8);
      const __m256i xb = _mm256_set1_epi64x(x);
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) acc[r * 4 + i] = _mm256_add_epi32(acc[r * 4 + i], _mm256_madd_epi16(w[i], xb));
    }
  }
#pragma GCC unroll 2
  for (int r = 0; r < MR; r++) {
    _mm256_store_si256((__m256i*)(c + 16 * r), fold_pairs(acc[r * 4], acc[r * 4 + 1]));
    _mm256_store_si256((__m256i*)(c + 16 * r + 8), fold_pairs(acc[r * 4 + 2], acc[r * 4 + 3]));
  }
}

template <int MR>
void tile(const Int8Job& j, const int16_t* a16, int64_t t0, int64_t o0) {
  alignas(32) int32_t c[MR * 16];
  micro<MR>(a16 + t0 * j.depth, j.depth, j.w->block(o0 / 16, 0), j.depth / 4, c);
  for (int r = 0; r < MR; r++) {
    finish8(j, t0 + r, o0, j.w->O - o0, _mm256_load_si256((const __m256i*)(c + 16 * r)));
    if (j.w->O - o0 > 8) finish8(j, t0 + r, o0 + 8, j.w->O - o0 - 8, _mm256_load_si256((const __m256i*)(c + 16 * r + 8)));
  }
}

}  // namespace

void gemm_int8_avx2(const Int8Job& j) {
  // The activations widened to int16 once per call, into a buffer each calling
  // thread reuses (a fresh one per call costs page faults).
  static thread_local avector<int16_t> scratch;
  scratch.resize(std::max<size_t>(scratch.size(), j.M * j.depth));
  int16_t* a16 = scratch.data();
#pragma omp parallel for schedule(static) if (j.M * j.depth > (1 << 16))
  for (int64_t t = 0; t < j.M; t++)
    for (int64_t c = 0; c < j.depth; c++) a16[t * j.depth + c] = j.a[t * j.lda + c];
  const int64_t nblk = (j.w->O + 15) / 16, nb = (j.M + kRowBlock - 1) / kRowBlock;
#pragma omp parallel if (j.M * j.w->O * j.depth > kParallelWork)
  {
    int64_t begin, end;
    split_range(nblk * nb, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t it = begin; it < end; it++) {
      const int64_t o0 = it / nb * 16, t_end = std::min(j.M, (it % nb + 1) * kRowBlock);
      for (int64_t t = it % nb * kRowBlock; t < t_end; t += kRows) {
        if (t_end - t >= 2) tile<2>(j, a16, t, o0);
        else tile<1>(j, a16, t, o0);
      }
    }
  }
}

void quantize_per_token_avx2(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
#pragma omp parallel for schedule(static) if (M * C > (1 << 16))
  for (int64_t t = 0; t < M; t++) {
    const float* row = x + t * ldx;
    int8_t* out = q + t * ldq;
    __m256 m = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(row + c)));
    float lanes[8], amax = 0;
    _mm256_storeu_ps(lanes, m);
    for (float v : lanes) amax = std::max(amax, v);
    for (int64_t k = c; k < C; k++) amax = std::max(amax, std::fabs(row[k]));
    const float st = amax > 0 ? amax / 127.0f : 1.0f;
    s[t] = st;
    const __m256 vs = _mm256_set1_ps(st);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (c = 0; c + 8 <= C; c += 8) {
      __m256i v = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(row + c), vs));
      v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
      __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      _mm_storel_epi64((__m128i*)(out + c), _mm_packs_epi16(w, w));
    }
    for (; c < C; c++) out[c] = (int8_t)std::min(127.0f, std::max(-127.0f, std::nearbyint(row[c] / st)));
  }
}

}  // namespace tq::detail
