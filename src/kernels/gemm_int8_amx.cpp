// K1–K3 with AMX (tdpbusd, u8 × s8 → int32 tiles). Untested on hardware where
// this was written (no AMX there); compiled everywhere, selected only when
// cpuid, XCR0 and the kernel's XTILEDATA permission all allow it.
//
// Block: 32 rows × 32 outputs in four 16 × 16 int32 C tiles; per 64 depths two
// A tiles (16 rows × 64 u8, stride lda) and two B tiles read straight from the
// packed panel (16 quads × 64 bytes, stride 256). The dispatcher pads the
// activations to 32-row blocks and 64 depths with zeros, the packing pads the
// weight depth to 64, so every tile is full size.
#include <immintrin.h>
#include <omp.h>

#include <cstring>

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

// Rows t0..t0+31 × outputs o0..o0+31, finished into y or d.
void block(const Int8Job& j, int64_t t0, int64_t o0) {
  const int64_t p = o0 / 64, nk = j.lda / 64;
  const int8_t* b = j.w->panel(p) + (o0 % 64 / 16) * 64;
  const uint8_t* a = j.a + t0 * j.lda;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t k = 0; k < nk; k++) {
    _tile_loadd(4, a + 64 * k, j.lda);
    _tile_loadd(5, a + 16 * j.lda + 64 * k, j.lda);
    _tile_loadd(6, b + k * 16 * 256, 256);
    _tile_loadd(7, b + k * 16 * 256 + 64, 256);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  alignas(64) int32_t c[32][32];
  _tile_stored(0, &c[0][0], 128);
  _tile_stored(1, &c[0][16], 128);
  _tile_stored(2, &c[16][0], 128);
  _tile_stored(3, &c[16][16], 128);
  const int64_t rows = std::min<int64_t>(32, j.M - t0);
  for (int64_t r = 0; r < rows; r++)
    for (int h = 0; h < 2; h++) {
      const int64_t n = j.w->O - o0 - 16 * h;
      if (n > 0) finish16(j, t0 + r, o0 + 16 * h, n, _mm512_load_si512(&c[r][16 * h]));
    }
}

}  // namespace

void gemm_int8_amx(const Int8Job& j) {
  const int64_t nblk = (j.w->O + 31) / 32, nb = (j.M + 31) / 32;
  const TileConfig cfg = tile_config();
#pragma omp parallel
  {
    _tile_loadconfig(&cfg);
    int64_t begin, end;
    split_range(nblk * nb, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t it = begin; it < end; it++) block(j, it % nb * 32, it / nb * 32);
    _tile_release();
  }
}

}  // namespace tq::detail
