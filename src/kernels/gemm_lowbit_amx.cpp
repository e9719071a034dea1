// K4-a8 with AMX (tdpbsud: s8 activation codes × u8 weight digits → int32).
//
// A thread takes 32-output blocks in turn: it unpacks the block's digits over
// the whole depth into B tiles once (the shifts and ands of the VNNI kernel,
// 16 lanes × 4 bytes per quad), then runs every 32-row block of activations
// over them group by group. A group's sums leave the C tiles for the float
// epilogue of gemm_lowbit.h (P ← fma(m, S, fma(s, A, P))) while the tile unit
// computes the next group's. A group must fill whole 64-byte tile rows
// (group·planes a multiple of 64); the driver sends other shapes to VNNI.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "kernels/amx_tiles.h"
#include "kernels/gemm_lowbit_amx_block.h"
#include "kernels/gemm_lowbit_impl.h"
#include "kernels/gemm_lowbit_zmm.h"
#include "kernels/work_split.h"

namespace tq::detail {

namespace {

// The digits of outputs 32·ob.. (two halves of 16 lanes) over every block, as B
// tiles: quad q of the expanded depth (block, plane, word, shift, as the a8 row
// layout orders them) of half h at b + (q / 16)·2048 + h·1024 + (q % 16)·64; the
// quads of a group's last chunk beyond its blocks are zero.
template <int BITS>
void unpack_digits(const LowbitPacked& w, int64_t ob, int8_t* b) {
  constexpr int NP = plane_count(BITS);
  const int64_t nblk = w.Cp / 32, tile = ob / 2, lane0 = ob % 2 * 32;
  const int64_t group_chunks = w.group * NP / 64;
  for (int64_t g = 0; g < w.groups; g++) {
    const int64_t cb0 = g * w.group / 32, cb1 = std::min(nblk, (g + 1) * w.group / 32);
    int8_t* bg = b + g * group_chunks * 2048;
    std::memset(bg, 0, group_chunks * 2048);
    for (int64_t cb = cb0; cb < cb1; cb++) {
      const uint32_t* block = w.words.data() + (tile * nblk + cb) * BITS * 64 + lane0;
      for_each_plane<BITS>([&](auto plane) {
        constexpr int i = decltype(plane)::value;
        constexpr Plane pl = plane_of(BITS, i);
        constexpr int per_byte = 8 / pl.width;
        for (int k = 0; k < pl.width; k++) {
          const int64_t q0 = (cb - cb0) * 8 * NP + 8 * i + k * per_byte;
          const __m512i word[2] = {_mm512_loadu_si512(block + (pl.word + k) * 64),
                                   _mm512_loadu_si512(block + (pl.word + k) * 64 + 16)};
          [&]<int... S>(std::integer_sequence<int, S...>) {
            (
                [&] {
                  const int64_t q = q0 + S;
                  for (int h = 0; h < 2; h++)
                    _mm512_store_si512(bg + (q / 16) * 2048 + h * 1024 + (q % 16) * 64,
                                       digits<pl.width, pl.shift, S>(word[h]));
                }(),
                ...);
          }(std::make_integer_sequence<int, per_byte>{});
        }
      });
    }
  }
}

using UnpackFn = void (*)(const LowbitPacked&, int64_t, int8_t*);
UnpackFn unpack_fn(int bits) {
  switch (bits) {
    case 2: return unpack_digits<2>;
    case 3: return unpack_digits<3>;
    case 4: return unpack_digits<4>;
    case 5: return unpack_digits<5>;
    case 6: return unpack_digits<6>;
    case 7: return unpack_digits<7>;
    default: return unpack_digits<8>;
  }
}

// P (32 × 32 floats) of rows t0.. × outputs 32·ob.. += group g of the sums c.
void epilogue(const LowbitPacked& w, const LowbitA8Rows& x, int64_t t0, int64_t ob, int64_t g, const int32_t* c,
              float* p) {
  const int64_t rows = std::min<int64_t>(32, x.rows - t0), tile = ob / 2;
  for (int h = 0; h < 2; h++) {
    const int64_t lane = ob % 2 * 32 + 16 * h;
    const __m512 s = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(w.scale.data() + (tile * w.groups + g) * 64 + lane)));
    const __m512 z = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(w.zero.data() + (tile * w.groups + g) * 64 + lane)));
    const __m512 m = w.min ? z : neg(_mm512_mul_ps(s, z));
    for (int64_t r = 0; r < rows; r++) {
      float* pr = p + r * 32 + 16 * h;
      const __m512 q = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_load_si512(c + r * 32 + 16 * h)), _mm512_load_ps(pr));
      _mm512_store_ps(pr, _mm512_fmadd_ps(m, _mm512_set1_ps(x.sum[(t0 + r) * w.groups + g]), q));
    }
  }
}

}  // namespace

bool lowbit_a8_amx_fits(const LowbitPacked& w) { return w.group * plane_count(w.bits) % 64 == 0; }

namespace {

constexpr int64_t kPassBytes = 512 << 10;  // activation codes per pass of rows

// One pass of rows (all of x).
void gemm_pass(const LowbitPacked& w, const LowbitA8Rows& x, float* y, int64_t ldy) {
  const int64_t nob = (w.O + 31) / 32, nrb = (x.rows + 31) / 32, row_bytes = a8_row_bytes(w);
  const int64_t group_chunks = w.group * plane_count(w.bits) / 64, nblk = w.Cp / 32;
  const UnpackFn unpack = unpack_fn(w.bits);
  const TileConfig cfg = tile_config();
#pragma omp parallel if (x.rows * w.O * w.Cp > kParallelWork)
  {
    _tile_loadconfig(&cfg);
    static thread_local avector<int8_t> b;
    b.resize(std::max<size_t>(b.size(), w.groups * group_chunks * 2048));
    alignas(64) int32_t c[2][32 * 32];
    alignas(64) float p[32 * 32];
    int64_t begin, end;
    split_range(nob, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t ob = begin; ob < end; ob++) {
      unpack(w, ob, b.data());
      for (int64_t rb = 0; rb < nrb; rb++) {
        const bool full = x.rows - rb * 32 > 16;
        const int8_t* a = x.a + rb * 32 * row_bytes;
        std::fill(p, p + 32 * 32, 0.0f);
        auto sums = [&](int64_t g) {
          const int64_t cb0 = g * w.group / 32, cb1 = std::min(nblk, (g + 1) * w.group / 32);
          const int64_t nk = ((cb1 - cb0) * 32 * plane_count(w.bits) + 63) / 64;
          amx_a8_group_sums<AmxTiles>(a + cb0 * 32 * plane_count(w.bits), row_bytes, b.data() + g * group_chunks * 2048, nk,
                                      full);
        };
        // Group g's sums leave the tiles, g + 1 starts, then g's epilogue runs beside it.
        sums(0);
        for (int64_t g = 0; g < w.groups; g++) {
          int32_t* cg = c[g % 2];
          AmxTiles::store<0>(cg, 128);
          AmxTiles::store<1>(cg + 16, 128);
          if (full) {
            AmxTiles::store<2>(cg + 16 * 32, 128);
            AmxTiles::store<3>(cg + 16 * 32 + 16, 128);
          }
          if (g + 1 < w.groups) sums(g + 1);
          epilogue(w, x, rb * 32, ob, g, cg, p);
        }
        const int64_t rows = std::min<int64_t>(32, x.rows - rb * 32);
        for (int h = 0; h < 2; h++) {
          const int64_t o = ob * 32 + 16 * h, n = w.O - o;
          if (n <= 0) break;
          const __mmask16 mk = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
          const __m512 bias = _mm512_loadu_ps(w.bias.data() + o);
          for (int64_t r = 0; r < rows; r++) {
            const int64_t t = rb * 32 + r;
            _mm512_mask_storeu_ps(y + t * ldy + o, mk,
                                  _mm512_fmadd_ps(_mm512_set1_ps(x.step[t]), _mm512_load_ps(p + r * 32 + 16 * h), bias));
          }
        }
      }
    }
    _tile_release();
  }
}

}  // namespace

void gemm_lowbit_a8_amx(const LowbitPacked& w, const LowbitA8Rows& x, float* y, int64_t ldy) {
  // Rows go by in passes whose codes stay in L2 while every output block passes over them.
  const int64_t row_bytes = a8_row_bytes(w), pass_rows = std::max<int64_t>(32, kPassBytes / row_bytes / 32 * 32);
  for (int64_t t0 = 0; t0 < x.rows; t0 += pass_rows) {
    const LowbitA8Rows pass{x.a + t0 * row_bytes, x.sum + t0 * w.groups, x.step + t0,
                            (int)std::min<int64_t>(pass_rows, x.rows - t0)};
    gemm_pass(w, pass, y + t0 * ldy, ldy);
  }
}

}  // namespace tq::detail
