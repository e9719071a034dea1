// Pieces of the K4-a8 kernels on zmm registers, shared by the AVX-512 and AMX
// files (include only from files compiled with AVX-512 flags).
#pragma once
#include <immintrin.h>

#include <climits>
#include <cstdint>

namespace tq::detail {

// −v exactly (the sign bit flipped; 0 − v would turn −0 into +0).
inline __m512 neg(__m512 v) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
}

// The 4 bytes of plane digits (times 2^SHIFT) of shift S of 16 lanes of a plane
// word of width PW: byte i holds the digit of slot i·8/PW + S (gemm_lowbit_impl.h).
template <int PW, int SHIFT, int S>
inline __m512i digits(__m512i word) {
  constexpr int sh = PW * S - SHIFT;
  constexpr uint32_t mask = (0x01010101u * ((1u << PW) - 1)) << SHIFT;
  const __m512i moved = sh > 0 ? _mm512_srli_epi32(word, sh) : sh < 0 ? _mm512_slli_epi32(word, -sh) : word;
  return PW == 8 ? moved : _mm512_and_si512(moved, _mm512_set1_epi32((int)mask));
}

}  // namespace tq::detail
