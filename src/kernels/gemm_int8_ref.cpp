// Plain references of K1–K3 and of the per-token quantizer: the formulas of
// gemm_int8.h as loops, in int64, on the unpacked weight.
#include <cmath>

#include "core/error.h"
#include "kernels/gemm_int8_impl.h"

namespace tq {

static int32_t ref_sum(const Int8Acts& a, const Int8Weights& w, int64_t t, int64_t o) {
  int64_t zw = w.zero ? w.zero[o] : 0, s = 0;
  for (int64_t c = 0; c < w.C; c++) {
    int64_t x = a.is_signed ? ((const int8_t*)a.q)[t * a.ld + c] : ((const uint8_t*)a.q)[t * a.ld + c] - (int64_t)a.zero;
    s += (w.q[o * w.C + c] - zw) * x;
  }
  if (s != (int32_t)s) run_failed("gemm_int8_ref: sum {} does not fit int32", s);
  return (int32_t)s;
}

static void ref_check(const Int8Acts& a, const Int8Weights& w, int64_t ldy) {
  detail::check_int8_call(a, w.O, w.C, ldy);
  int32_t range = 0;
  for (int64_t o = 0; o < w.O; o++)
    for (int64_t c = 0; c < w.C; c++)
      range = std::max(range, std::abs(w.q[o * w.C + c] - (w.zero ? w.zero[o] : 0)));
  detail::check_int8_bound(a, w.C, range);
}

void gemm_int8_ref_s32(const Int8Acts& a, const Int8Weights& w, int32_t* d, int64_t ldd) {
  ref_check(a, w, ldd);
  for (int64_t t = 0; t < a.M; t++)
    for (int64_t o = 0; o < w.O; o++) d[t * ldd + o] = ref_sum(a, w, t, o);
}

void gemm_int8_ref(const Int8Acts& a, const Int8Weights& w, float* y, int64_t ldy) {
  ref_check(a, w, ldy);
  for (int64_t t = 0; t < a.M; t++) {
    float al = a.row_step ? a.row_step[t] : a.step;
    for (int64_t o = 0; o < w.O; o++)
      y[t * ldy + o] = detail::int8_epilogue(ref_sum(a, w, t, o), al, w.scale[o], w.bias ? w.bias[o] : 0.0f);
  }
}

void quantize_per_token_ref(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s) {
  for (int64_t t = 0; t < M; t++) {
    const float* row = x + t * ldx;
    float amax = 0;
    for (int64_t c = 0; c < C; c++) amax = std::max(amax, std::fabs(row[c]));
    float st = amax > 0 ? amax / 127.0f : 1.0f;
    s[t] = st;
    for (int64_t c = 0; c < C; c++) {
      float r = std::nearbyint(row[c] / st);
      q[t * ldq + c] = (int8_t)std::min(127.0f, std::max(-127.0f, r));
    }
  }
}

}  // namespace tq
