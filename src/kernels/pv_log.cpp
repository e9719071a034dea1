// K5: checks, the z_V correction, the epilogue and threading; the scalar row kernel.
#include <omp.h>

#include <vector>

#include "core/error.h"
#include "kernels/pv_log_impl.h"
#include "kernels/work_split.h"

namespace tq {

namespace detail {

void pv_row_weights(const LogProbs& p, const Int8Values& v, int64_t i, int64_t& A0, int64_t& B0) {
  const int K = pv_top_exponent(p.bits), qmax = p.bits == 8 ? 254 : (1 << p.bits) - 1;
  const uint8_t* q = p.q + i * p.ld;
  double total = 0;
  A0 = B0 = 0;
  for (int64_t j = 0; j < p.cols; j++) {
    if (q[j] == 0xFF) continue;
    if (q[j] > qmax) bad_input("pv_log: code {} at ({}, {}) exceeds {} bits", q[j], i, j, p.bits);
    const int e = (q[j] + 1) / 2;
    if (e > K) continue;
    total += std::ldexp(1.0, K - e);
    if (total >= 0x1p62) break;  // already too large; reported below
    A0 += (int64_t)1 << (K - e);
    if (q[j] & 1) B0 += (int64_t)1 << (K - e);
  }
  const double vmax = 128.0 + std::abs((double)v.zero);
  if (total * vmax >= 0x1p63)
    bad_input("pv_log: row {} sums {:.3g}·2^{} of weight: |v − z|·that overflows int64 (lower the {}-bit step)", i,
              total / std::ldexp(1.0, K), K, p.bits);
}

void pv_row_scalar(const uint8_t* q, int64_t keys, const int8_t* v, int64_t ldv, int64_t D, int K, int64_t* A,
                   int64_t* B) {
  for (int64_t k = 0; k < D; k++) A[k] = B[k] = 0;
  for (int64_t j = 0; j < keys; j++) {
    const int e = (q[j] + 1) / 2;
    if (q[j] == 0xFF || e > K) continue;
    const int s = K - e;
    for (int64_t k = 0; k < D; k++) {
      const int64_t t = (int64_t)v[j * ldv + k] << s;
      A[k] += t;
      if (q[j] & 1) B[k] += t;
    }
  }
}

}  // namespace detail

using namespace detail;

static void check_pv(const LogProbs& p, const Int8Values& v) {
  TQ_CHECK_INPUT(p.bits >= 2 && p.bits <= 8, "pv_log: {} bits (expected 2 to 8)", p.bits);
  TQ_CHECK_INPUT(p.rows >= 0 && p.cols == v.rows && p.ld >= p.cols && v.ld >= v.cols && v.cols >= 0,
                 "pv_log: P is {}x{} (ld {}) but V is {}x{} (ld {})", p.rows, p.cols, p.ld, v.rows, v.cols, v.ld);
  TQ_CHECK_INPUT((p.q && v.v) || p.rows * p.cols * v.cols == 0, "pv_log: null operand");
}

// Runs the row kernel of the chosen path on every query row; emit(i, A, B) gets
// the z_V-corrected sums of row i.
template <class Emit>
static void run_pv(const LogProbs& p, const Int8Values& v, Isa isa, Emit emit) {
  isa = resolve_isa(isa);
  check_pv(p, v);
  const int K = pv_top_exponent(p.bits);
  std::vector<int64_t> A0(p.rows), B0(p.rows);
  for (int64_t i = 0; i < p.rows; i++) pv_row_weights(p, v, i, A0[i], B0[i]);
  PvRowFn row = isa == Isa::scalar ? pv_row_scalar : isa == Isa::avx2 ? pv_row_avx2 : pv_row_avx512;
  const int64_t D = v.cols;
#pragma omp parallel
  {
    int64_t begin, end;
    split_range(p.rows, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    std::vector<int64_t> A(D), B(D);
    for (int64_t i = begin; i < end; i++) {
      row(p.q + i * p.ld, p.cols, v.v, v.ld, D, K, A.data(), B.data());
      for (int64_t k = 0; k < D; k++) {
        A[k] -= v.zero * A0[i];
        B[k] -= v.zero * B0[i];
      }
      emit(i, A.data(), B.data());
    }
  }
}

void pv_log(const LogProbs& p, const Int8Values& v, float* out, int64_t ldo, Isa isa) {
  TQ_CHECK_INPUT(ldo >= v.cols && (out || p.rows * v.cols == 0), "pv_log: bad output");
  const int K = pv_top_exponent(p.bits);
  run_pv(p, v, isa, [&](int64_t i, const int64_t* A, const int64_t* B) {
    for (int64_t k = 0; k < v.cols; k++) out[i * ldo + k] = pv_output(p, v, K, A[k], B[k]);
  });
}

void pv_log_acc(const LogProbs& p, const Int8Values& v, int64_t* A, int64_t* B, int64_t ld, Isa isa) {
  TQ_CHECK_INPUT(ld >= v.cols && ((A && B) || p.rows * v.cols == 0), "pv_log_acc: bad output");
  run_pv(p, v, isa, [&](int64_t i, const int64_t* a, const int64_t* b) {
    for (int64_t k = 0; k < v.cols; k++) A[i * ld + k] = a[k], B[i * ld + k] = b[k];
  });
}

}  // namespace tq
