// K1–K3 with AMX (tdpbusd, u8 × s8 → int32 tiles). Untested on hardware where
// this was written (no AMX there); compiled everywhere, selected only when
// cpuid, XCR0 and the kernel's XTILEDATA permission all allow it.
//
// Blocks of 32 rows × 32 outputs (gemm_int8_amx_block.h). The dispatcher pads
// the activations to 32-row blocks and 64 depths with zeros, the packing pads
// the weight depth to 64, so every tile is full size.
#include <immintrin.h>
#include <omp.h>

#include "kernels/gemm_int8_amx_block.h"
#include "kernels/gemm_int8_zmm.h"

namespace tq::detail {

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

TileConfig tile_config() {
  TileConfig c;
  for (int i = 0; i < 8; i++) {
    c.rows[i] = 16;
    c.colsb[i] = 64;
  }
  return c;
}

// The hardware behind amx_block_sums. GCC's tile intrinsics paste the tile
// number into the assembly, so each must be a literal.
struct AmxTiles {
  template <int t>
  static void zero() {
    static_assert(t >= 0 && t <= 3);
    if constexpr (t == 0) _tile_zero(0);
    else if constexpr (t == 1) _tile_zero(1);
    else if constexpr (t == 2) _tile_zero(2);
    else _tile_zero(3);
  }
  template <int t>
  static void load(const void* p, int64_t stride) {
    static_assert(t >= 4 && t <= 7);
    if constexpr (t == 4) _tile_loadd(4, p, stride);
    else if constexpr (t == 5) _tile_loadd(5, p, stride);
    else if constexpr (t == 6) _tile_loadd(6, p, stride);
    else _tile_loadd(7, p, stride);
  }
  template <int c, int a, int b>
  static void dpbusd() {
    static_assert(a == 4 + c / 2 && b == 6 + c % 2);
    if constexpr (c == 0) _tile_dpbusd(0, 4, 6);
    else if constexpr (c == 1) _tile_dpbusd(1, 4, 7);
    else if constexpr (c == 2) _tile_dpbusd(2, 5, 6);
    else _tile_dpbusd(3, 5, 7);
  }
  template <int t>
  static void store(void* p, int64_t stride) {
    static_assert(t >= 0 && t <= 3);
    if constexpr (t == 0) _tile_stored(0, p, stride);
    else if constexpr (t == 1) _tile_stored(1, p, stride);
    else if constexpr (t == 2) _tile_stored(2, p, stride);
    else _tile_stored(3, p, stride);
  }
};

// Rows t0..t0+31 × outputs o0..o0+31, finished into y or d.
void block(const Int8Job& j, int64_t t0, int64_t o0) {
  alignas(64) int32_t c[32 * 32];
  amx_block_sums<AmxTiles>(j.a + t0 * j.lda, j.lda, j.w->panel(o0 / 64) + (o0 % 64 / 16) * 64, j.lda / 64, c);
  const int64_t rows = std::min<int64_t>(32, j.M - t0);
  for (int64_t r = 0; r < rows; r++)
    for (int h = 0; h < 2; h++) {
      const int64_t n = j.w->O - o0 - 16 * h;
      if (n > 0) finish16(j, t0 + r, o0 + 16 * h, n, _mm512_load_si512(c + r * 32 + 16 * h));
    }
}

}  // namespace

void gemm_int8_amx(const Int8Job& j) {
  const int64_t nblk = (j.w->O + 31) / 32, nb = (j.M + 31) / 32;
  const TileConfig cfg = tile_config();
#pragma omp parallel if (j.M * j.w->O * j.depth > kParallelWork)
  {
    _tile_loadconfig(&cfg);
    int64_t begin, end;
    split_range(nblk * nb, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t it = begin; it < end; it++) block(j, it % nb * 32, it / nb * 32);
    _tile_release();
  }
}

}  // namespace tq::detail
