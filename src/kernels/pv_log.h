// Log-domain attention product, kernel K5 of docs/methods.md §1.5. The softmax
// output P is held as log√2 codes q (b bits, 0xFF = zero; P̂ = Δ·2^(−q/2)) and
// V as int8 with a per-tensor scale (and optional zero point). Since
// 2^(−q/2) = 2^(−⌈q/2⌉)·(1 + (√2 − 1)·[q odd]), P̂·V needs only shifts and adds:
//
//   K  = min(⌈(2^b − 1)/2⌉, 48)      e_j = ⌈q_ij/2⌉, terms with e_j > K dropped
//   A_k = Σ_{j: P_ij ≠ 0}  (v_jk − z_V) << (K − e_j)
//   B_k = Σ_{j: q_ij odd}  (v_jk − z_V) << (K − e_j)
//   O_ik = Δ·s_V·2^(−K)·(A_k + (√2 − 1)·B_k)           (evaluated in double)
//
// A and B are int64: exact for b ≤ 6 (K ≤ 32); for b = 7, 8 the terms below
// 2^−48·Δ are dropped. int64 holds the sums while max|v − z_V|·Σ_j 2^(K − e_j) < 2^63
// for every row; calls beyond that are rejected (at b = 7, 8 that allows up to
// 2^8 − 1 keys at the top level e = 0, far more than a softmax row with a
// calibrated Δ reaches).
#pragma once
#include <cstdint>

#include "kernels/cpu.h"

namespace tq {

struct LogProbs {
  const uint8_t* q = nullptr;  // rows (queries) × cols (keys), row stride ld
  int64_t rows = 0, cols = 0, ld = 0;
  int bits = 4;
  float step = 1;  // Δ
};

struct Int8Values {
  const int8_t* v = nullptr;  // rows (keys) × cols (head dim), row stride ld
  int64_t rows = 0, cols = 0, ld = 0;
  float scale = 1;  // s_V
  int32_t zero = 0; // z_V
};

// out (p.rows × v.cols, stride ldo) = P̂·V̂.
void pv_log(const LogProbs& p, const Int8Values& v, float* out, int64_t ldo, Isa isa = Isa::automatic);
// The integer sums A and B alone (each p.rows × v.cols, stride ld).
void pv_log_acc(const LogProbs& p, const Int8Values& v, int64_t* A, int64_t* B, int64_t ld, Isa isa = Isa::automatic);

// Plain references: the formulas above as loops.
void pv_log_ref(const LogProbs& p, const Int8Values& v, float* out, int64_t ldo);
void pv_log_acc_ref(const LogProbs& p, const Int8Values& v, int64_t* A, int64_t* B, int64_t ld);

}  // namespace tq
