// The AMX tile program also runs on an emulator of the tile instructions it
// uses, written from Intel's definitions, so that machines without AMX still
// check the addressing of A, B and C tiles against the packed layouts (on AMX
// machines the kernel tests run the hardware too).
#include <cstring>

#include "core/rng.h"
#include "kernel_test.h"
#include "kernels/gemm_int8.h"
#include "kernels/gemm_int8_amx_block.h"
#include "kernels/gemm_int8_impl.h"
#include "kernels/gemm_lowbit_amx_block.h"

namespace tq {
namespace {

// Eight tiles of 16 rows × 64 bytes (the only shape the AMX path configures).
struct EmulatedTiles {
  static inline uint8_t tile[8][16][64];
  template <int t>
  static void zero() {
    std::memset(tile[t], 0, sizeof tile[t]);
  }
  template <int t>
  static void load(const void* p, int64_t stride) {
    for (int r = 0; r < 16; r++) std::memcpy(tile[t][r], (const uint8_t*)p + r * stride, 64);
  }
  // TDPBUSD: C[m].dword[n] += Σ_{i<4} u8(A[m].byte[4k + i]) · s8(B[k].byte[4n + i]) over k < 16.
  template <int c, int a, int b>
  static void dpbusd() {
    for (int m = 0; m < 16; m++)
      for (int n = 0; n < 16; n++) {
        int32_t acc;
        std::memcpy(&acc, &tile[c][m][4 * n], 4);
        for (int k = 0; k < 16; k++)
          for (int i = 0; i < 4; i++) acc += (int32_t)tile[a][m][4 * k + i] * (int8_t)tile[b][k][4 * n + i];
        std::memcpy(&tile[c][m][4 * n], &acc, 4);
      }
  }
  // TDPBSUD: the same with A signed and B unsigned.
  template <int c, int a, int b>
  static void dpbsud() {
    for (int m = 0; m < 16; m++)
      for (int n = 0; n < 16; n++) {
        int32_t acc;
        std::memcpy(&acc, &tile[c][m][4 * n], 4);
        for (int k = 0; k < 16; k++)
          for (int i = 0; i < 4; i++) acc += (int32_t)(int8_t)tile[a][m][4 * k + i] * tile[b][k][4 * n + i];
        std::memcpy(&tile[c][m][4 * n], &acc, 4);
      }
  }
  template <int t>
  static void store(void* p, int64_t stride) {
    for (int r = 0; r < 16; r++) std::memcpy((uint8_t*)p + r * stride, tile[t][r], 64);
  }
};

// The int8 program (K1–K3) over the tiled activations.
TEST(KernelAmx, TileProgramOnEmulator) {
  const int64_t M = 40, O = 100, C = 150;
  Rng rng(8);
  std::vector<int8_t> w(O * C);
  for (auto& v : w) v = (int8_t)(rng.below(256) - 128);
  std::vector<float> scale(O, 1.0f);
  Int8Packed p = pack_int8({w.data(), O, C, scale.data()});
  // Activations as the dispatcher lays them out for AMX: 32-row blocks of tiles, zero padding.
  const int64_t depth = p.Cp, rows = 64;
  std::vector<uint8_t> x(M * C), a(rows * depth, 0);
  for (auto& v : x) v = (uint8_t)rng.below(256);
  for (int64_t t = 0; t < M; t++)
    for (int64_t c = 0; c < C; c++) a[detail::amx_act_offset(t, c, depth)] = x[t * C + c];
  for (int64_t t0 = 0; t0 < rows; t0 += 32)
    for (int64_t o0 = 0; o0 < p.panels() * 64; o0 += 32) {
      std::vector<int32_t> c(32 * 32, -1), c16(32 * 32, -1);
      for (bool full : {true, false}) {
        detail::amx_block_sums<EmulatedTiles>(a.data() + t0 * depth, p.block(o0 / 16, 0), depth / 64, full);
        detail::amx_block_store<EmulatedTiles>(full ? c.data() : c16.data(), full);
      }
      for (int64_t r = 0; r < 16; r++)
        for (int64_t n = 0; n < 32; n++) ASSERT_EQ(c16[r * 32 + n], c[r * 32 + n]) << "16-row form";
      for (int64_t r = 0; r < 32; r++)
        for (int64_t n = 0; n < 32; n++) {
          int64_t want = 0;
          if (t0 + r < M && o0 + n < O)
            for (int64_t k = 0; k < C; k++) want += (int64_t)x[(t0 + r) * C + k] * w[(o0 + n) * C + k];
          ASSERT_EQ(c[r * 32 + n], want) << "row " << t0 + r << " output " << o0 + n;
        }
    }
}

// The K4-a8 group program: s8 rows (stride lda) × u8 B tiles as the unpacking lays them out.
TEST(KernelAmx, LowbitA8GroupProgramOnEmulator) {
  const int64_t rows = 32, nk = 3, lda = 64 * nk + 64;
  Rng rng(9);
  std::vector<int8_t> a(rows * lda), b(nk * 2048);
  for (auto& v : a) v = (int8_t)((int)rng.below(256) - 128);
  for (auto& v : b) v = (int8_t)rng.below(256);  // read as u8
  for (bool full : {true, false}) {
    detail::amx_a8_group_sums<EmulatedTiles>(a.data(), lda, b.data(), nk, full);
    std::vector<int32_t> c(32 * 32, -1);
    EmulatedTiles::store<0>(c.data(), 128);
    EmulatedTiles::store<1>(c.data() + 16, 128);
    if (full) {
      EmulatedTiles::store<2>(c.data() + 16 * 32, 128);
      EmulatedTiles::store<3>(c.data() + 16 * 32 + 16, 128);
    }
    for (int64_t r = 0; r < (full ? 32 : 16); r++)
      for (int64_t o = 0; o < 32; o++) {
        int64_t want = 0;
        for (int64_t k = 0; k < nk; k++)
          for (int64_t q = 0; q < 16; q++)
            for (int i = 0; i < 4; i++)
              want += (int64_t)a[r * lda + 64 * k + 4 * q + i] *
                      (uint8_t)b[k * 2048 + (o / 16) * 1024 + q * 64 + (o % 16) * 4 + i];
        ASSERT_EQ(c[r * 32 + o], want) << "row " << r << " output " << o;
      }
  }
}

}  // namespace
}  // namespace tq
