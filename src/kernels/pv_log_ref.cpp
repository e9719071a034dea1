// The plain reference of K5: the sums of pv_log.h, one term at a time.
#include <vector>

#include "core/error.h"
#include "kernels/pv_log_impl.h"

namespace tq {

void pv_log_acc_ref(const LogProbs& p, const Int8Values& v, int64_t* A, int64_t* B, int64_t ld) {
  TQ_CHECK_INPUT(p.cols == v.rows, "pv_log_acc_ref: P is {}x{} but V is {}x{}", p.rows, p.cols, v.rows, v.cols);
  const int K = detail::pv_top_exponent(p.bits);
  for (int64_t i = 0; i < p.rows; i++) {
    int64_t A0, B0;
    detail::pv_row_weights(p, v, i, A0, B0);  // validates codes and the int64 bound
    for (int64_t k = 0; k < v.cols; k++) {
      int64_t a = 0, b = 0;
      for (int64_t j = 0; j < p.cols; j++) {
        const int q = p.q[i * p.ld + j], e = (q + 1) / 2;
        if (q == 0xFF || e > K) continue;
        const int64_t term = ((int64_t)v.v[j * v.ld + k] - v.zero) * ((int64_t)1 << (K - e));
        a += term;
        if (q % 2 == 1) b += term;
      }
      A[i * ld + k] = a;
      B[i * ld + k] = b;
    }
  }
}

void pv_log_ref(const LogProbs& p, const Int8Values& v, float* out, int64_t ldo) {
  std::vector<int64_t> A(p.rows * v.cols), B(p.rows * v.cols);
  pv_log_acc_ref(p, v, A.data(), B.data(), v.cols);
  const int K = detail::pv_top_exponent(p.bits);
  for (int64_t i = 0; i < p.rows; i++)
    for (int64_t k = 0; k < v.cols; k++)
      out[i * ldo + k] = detail::pv_output(p, v, K, A[i * v.cols + k], B[i * v.cols + k]);
}

}  // namespace tq
