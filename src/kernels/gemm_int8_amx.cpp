// K1–K3 with AMX (tdpbusd, u8 × s8 → int32 tiles), selected only when cpuid,
// XCR0 and the kernel's XTILEDATA permission all allow it.
//
// Blocks of 32 rows (16 for a last block of ≤ 16) × 32 outputs over the whole
// depth (gemm_int8_amx_block.h):
// per chunk of 64 inputs, four tile loads feed four tdpbusd, so the loads must
// come from L2 at worst. A thread takes its output blocks in groups whose
// weights fit in L2 (about 1 MB) and runs every 32-row block of activations
// (in L2 too: 32 × depth bytes) over the group before moving on; each block is
// finished from its sums while the tile unit computes the next, writing 32 rows
// × the group's outputs.
// The dispatcher lays the activations out as tiles (whole 32-row blocks,
// zero-padded); the packing pads the depth to 64, so every tile is full size.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "kernels/amx_tiles.h"
#include "kernels/gemm_int8_amx_block.h"
#include "kernels/gemm_int8_zmm.h"

namespace tq::detail {

namespace {

constexpr int64_t kGroupBytes = 1 << 20;  // weight bytes of a group of output blocks

// Rows t0.. × outputs o0.. of the finished sums c (32 × 32), into y or d: the
// epilogue of finish16 with the per-output vectors loaded once per half.
void finish_block(const Int8Job& j, int64_t t0, int64_t o0, const int32_t* c) {
  const int64_t rows = std::min<int64_t>(32, j.M - t0);
  for (int h = 0; h < 2; h++) {
    const int64_t o = o0 + 16 * h, n = j.w->O - o;
    if (n <= 0) break;
    const __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
    const __m512i corr = _mm512_loadu_si512(j.corr + o);
    const __m512i zw = j.zw ? _mm512_loadu_si512(j.zw + o) : _mm512_setzero_si512();
    const __m512 scale = _mm512_loadu_ps(j.w->scale.data() + o), bias = _mm512_loadu_ps(j.w->bias.data() + o);
    for (int64_t r = 0; r < rows; r++) {
      const int64_t t = t0 + r;
      __m512i d = _mm512_add_epi32(_mm512_load_si512(c + r * 32 + 16 * h), corr);
      if (j.zw) d = _mm512_sub_epi32(d, _mm512_mullo_epi32(zw, _mm512_set1_epi32(j.row_sum[t])));
      if (j.d) {
        _mm512_mask_storeu_epi32(j.d + t * j.ldy + o, m, d);
      } else {
        const __m512 al = _mm512_set1_ps(j.alpha ? j.alpha[t] : j.alpha0);
        _mm512_mask_storeu_ps(j.y + t * j.ldy + o, m, _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(al, scale), bias));
      }
    }
  }
}

}  // namespace

void gemm_int8_amx(const Int8Job& j) {
  const int64_t nob = (j.w->O + 31) / 32, nrb = (j.M + 31) / 32, nk = j.depth / 64;
  const int64_t group = std::clamp<int64_t>(kGroupBytes / (32 * j.depth), 1, 16);
  const TileConfig cfg = tile_config();
#pragma omp parallel if (j.M * j.w->O * j.depth > kParallelWork)
  {
    _tile_loadconfig(&cfg);
    // Sums of two blocks: a block is finished while the tile unit computes the next.
    alignas(64) int32_t c[2][32 * 32];
    int64_t begin, end, n = 0, prev_t = 0, prev_o = 0;
    split_range(nob, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t g0 = begin; g0 < end; g0 += group)
      for (int64_t rb = 0; rb < nrb; rb++)
        for (int64_t ob = g0; ob < std::min(end, g0 + group); ob++, n++) {
          const bool full = j.M - rb * 32 > 16;  // else a last block of ≤ 16 rows
          amx_block_sums<AmxTiles>(j.a + rb * 32 * j.depth, j.w->block(2 * ob, 0), nk, full);
          if (n > 0) finish_block(j, prev_t, prev_o, c[(n - 1) % 2]);
          amx_block_store<AmxTiles>(c[n % 2], full);
          prev_t = rb * 32;
          prev_o = ob * 32;
        }
    if (n > 0) finish_block(j, prev_t, prev_o, c[(n - 1) % 2]);
    _tile_release();
  }
}

}  // namespace tq::detail
