// The AMX tile program of one 32-row × 32-output block, written over a tile
// backend: gemm_int8_amx.cpp runs it on the hardware tiles, the tests on an
// emulator (the AMX path could not run where it was written).
//
// Tiles (all 16 rows × 64 bytes): 0–3 the int32 sums C[rows 16i.., outputs 16j..],
// 4–5 A (16 rows × 64 u8 depths, stride lda), 6–7 B (16 depth quads × 16
// outputs × 4 bytes, read from the packed panel with stride 256).
#pragma once
#include <cstdint>

namespace tq::detail {

// c (32 × 32 int32, row stride 32) = raw u8 × s8 sums of rows a[0..31] (stride
// lda) and the two 16-output blocks at b (a panel + 64·block), over nk × 64 depths.
template <class T>
inline void amx_block_sums(const uint8_t* a, int64_t lda, const int8_t* b, int64_t nk, int32_t* c) {
  T::template zero<0>();
  T::template zero<1>();
  T::template zero<2>();
  T::template zero<3>();
  for (int64_t k = 0; k < nk; k++) {
    T::template load<4>(a + 64 * k, lda);
    T::template load<5>(a + 16 * lda + 64 * k, lda);
    T::template load<6>(b + k * 16 * 256, 256);
    T::template load<7>(b + k * 16 * 256 + 64, 256);
    T::template dpbusd<0, 4, 6>();
    T::template dpbusd<1, 4, 7>();
    T::template dpbusd<2, 5, 6>();
    T::template dpbusd<3, 5, 7>();
  }
  T::template store<0>(c, 128);
  T::template store<1>(c + 16, 128);
  T::template store<2>(c + 16 * 32, 128);
  T::template store<3>(c + 16 * 32 + 16, 128);
}

}  // namespace tq::detail
