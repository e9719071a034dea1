// The AMX tile program of K4-a8 for one group of one 32-row × 32-output block,
// over a tile backend (the hardware in gemm_lowbit_amx.cpp, an emulator in the
// tests). A holds the activation codes (s8, the a8 row layout), B the weight
// digits (u8) unpacked into tiles; tdpbsud multiplies them.
#pragma once
#include <cstdint>

namespace tq::detail {

// The int32 sums of a group into the C tiles (from zero): rows a (row stride
// lda; rows 16.. too when full) over nk chunks of 64 bytes starting at a, and
// the group's B tiles at b (chunk k: outputs 0–15 at b + 2048·k, 16–31 1 KB further).
template <class T>
inline void amx_a8_group_sums(const int8_t* a, int64_t lda, const int8_t* b, int64_t nk, bool full) {
  T::template zero<0>();
  T::template zero<1>();
  if (full) {
    T::template zero<2>();
    T::template zero<3>();
  }
  for (int64_t k = 0; k < nk; k++) {
    T::template load<4>(a + 64 * k, lda);
    T::template load<6>(b + 2048 * k, 64);
    T::template dpbsud<0, 4, 6>();
    T::template load<7>(b + 2048 * k + 1024, 64);
    T::template dpbsud<1, 4, 7>();
    if (full) {
      T::template load<5>(a + 16 * lda + 64 * k, lda);
      T::template dpbsud<2, 5, 6>();
      T::template dpbsud<3, 5, 7>();
    }
  }
}

}  // namespace tq::detail
