// The AMX tile program of one 32-row × 32-output block, written over a tile
// backend: gemm_int8_amx.cpp runs it on the hardware tiles, the tests also on
// an emulator (for machines without AMX).
//
// Tiles (all 16 rows × 64 bytes): 0–3 the int32 sums C[rows 16i.., outputs 16j..],
// 4–5 A (16 rows × 64 u8 inputs, 1 KB of the tiled activation layout),
// 6–7 B (one 1 KB block of the packed weight: 16 input quads × 16 outputs × 4).
#pragma once
#include <cstdint>

namespace tq::detail {

// The raw u8 × s8 sums of a block of 32 tiled rows a (chunk k: rows 0–15 at
// a + 2048·k, rows 16–31 1 KB further; only the first 16 when !full) and the two
// 16-output halves at b and b + 1024 (chunk k at + 2048·k), over nk chunks of 64,
// into the C tiles. The products run on after this returns (the tile unit
// works in the background); amx_block_store waits for them.
template <class T>
inline void amx_block_sums(const uint8_t* a, const int8_t* b, int64_t nk, bool full) {
  T::template zero<0>();
  T::template zero<1>();
  if (full) {
    T::template zero<2>();
    T::template zero<3>();
    for (int64_t k = 0; k < nk; k++) {
      // Each load just before its first use, so that loads of this chunk
      // overlap the products of the previous one.
      T::template load<4>(a + 2048 * k, 64);
      T::template load<6>(b + 2048 * k, 64);
      T::template dpbusd<0, 4, 6>();
      T::template load<7>(b + 2048 * k + 1024, 64);
      T::template dpbusd<1, 4, 7>();
      T::template load<5>(a + 2048 * k + 1024, 64);
      T::template dpbusd<2, 5, 6>();
      T::template dpbusd<3, 5, 7>();
    }
  } else {
    for (int64_t k = 0; k < nk; k++) {
      T::template load<4>(a + 2048 * k, 64);
      T::template load<6>(b + 2048 * k, 64);
      T::template dpbusd<0, 4, 6>();
      T::template load<7>(b + 2048 * k + 1024, 64);
      T::template dpbusd<1, 4, 7>();
    }
  }
}

// The C tiles into c (32 × 32 int32, row stride 32; rows 0–15 only when !full).
template <class T>
inline void amx_block_store(int32_t* c, bool full) {
  T::template store<0>(c, 128);
  T::template store<1>(c + 16, 128);
  if (full) {
    T::template store<2>(c + 16 * 32, 128);
    T::template store<3>(c + 16 * 32 + 16, 128);
  }
}

}  // namespace tq::detail
