// The AMX tile registers for the tile programs of the *_amx.cpp kernels
// (include only from files compiled with AMX flags). One configuration: eight
// tiles of 16 rows × 64 bytes; 0–3 hold int32 sums, 4–5 A, 6–7 B.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace tq::detail {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

inline TileConfig tile_config() {
  TileConfig c;
  for (int i = 0; i < 8; i++) {
    c.rows[i] = 16;
    c.colsb[i] = 64;
  }
  return c;
}

// The hardware behind the tile programs. GCC's tile intrinsics paste the tile
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
// Every (C, A, B) the tile programs use, each with its literal tile numbers.
#define TQ_AMX_PRODUCTS(X) X(0, 4, 6) X(1, 4, 7) X(2, 5, 6) X(3, 5, 7)
  // C[c] += u8 A[a] × s8 B[b]
  template <int c, int a, int b>
  static void dpbusd() {
#define TQ_AMX_BUSD(C, A, B) if constexpr (c == C && a == A && b == B) _tile_dpbusd(C, A, B);
    TQ_AMX_PRODUCTS(TQ_AMX_BUSD)
#undef TQ_AMX_BUSD
  }
  // C[c] += s8 A[a] × u8 B[b]
  template <int c, int a, int b>
  static void dpbsud() {
#define TQ_AMX_BSUD(C, A, B) if constexpr (c == C && a == A && b == B) _tile_dpbsud(C, A, B);
    TQ_AMX_PRODUCTS(TQ_AMX_BSUD)
#undef TQ_AMX_BSUD
  }
#undef TQ_AMX_PRODUCTS
  template <int t>
  static void store(void* p, int64_t stride) {
    static_assert(t >= 0 && t <= 3);
    if constexpr (t == 0) _tile_stored(0, p, stride);
    else if constexpr (t == 1) _tile_stored(1, p, stride);
    else if constexpr (t == 2) _tile_stored(2, p, stride);
    else _tile_stored(3, p, stride);
  }
};

}  // namespace tq::detail
