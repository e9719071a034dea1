// Shared by the K5 driver, its reference and its per-ISA row kernels (not API).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/pv_log.h"

namespace tq::detail {

// K of pv_log.h: the largest exponent kept.
inline int pv_top_exponent(int bits) { return std::min(((1 << bits) - 1 + 1) / 2, 48); }

// A_k, B_k of one query row over raw v (z_V applied later), k < D.
using PvRowFn = void (*)(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                         int64_t* B);
void pv_row_scalar(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                   int64_t* B);
void pv_row_avx2(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                 int64_t* B);
void pv_row_avx512(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                   int64_t* B);

// Σ_j 2^(K − e_j) over the kept keys and over the odd ones (the sums for v ≡ 1),
// after checking codes and the int64 bound of pv_log.h.
void pv_row_weights(const LogProbs& p, const Int8Values& v, int64_t i, int64_t& A0, int64_t& B0);

// The epilogue every path shares.
inline float pv_output(const LogProbs& p, const Int8Values& v, int K, int64_t A, int64_t B) {
  const double c = std::sqrt(2.0) - 1.0;
  return (float)((double)p.step * v.scale * std::ldexp(1.0, -K) * ((double)A + c * (double)B));
}

}  // namespace tq::detail
