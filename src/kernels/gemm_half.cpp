// The portable path of gemv_half (the SIMD paths' operations, one lane at a
// time), the threaded driver and the converter.
#include "kernels/gemm_half.h"

#include <omp.h>

#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/work_split.h"

namespace tq {

namespace {

inline float half_value(uint16_t v, Half h) { return h == Half::f16 ? f16_to_f32(v) : bf16_to_f32(v); }

void rows_scalar(const float* x, int64_t M, int64_t ldx, const uint16_t* w, int64_t o0, int64_t o1, int64_t C,
                 Half h, const float* bias, float* y, int64_t ldy) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t o = o0; o < o1; o++) {
      const uint16_t* wr = w + o * C;
      float acc[16] = {};
      for (int64_t c0 = 0; c0 < C; c0 += 16)
        for (int j = 0; j < 16; j++) {
          const int64_t c = c0 + j;
          const float wv = c < C ? half_value(wr[c], h) : 0.0f, xv = c < C ? x[m * ldx + c] : 0.0f;
          acc[j] = std::fma(wv, xv, acc[j]);
        }
      for (int span = 8; span >= 1; span /= 2)
        for (int j = 0; j < span; j++) acc[j] += acc[j + span];
      y[m * ldy + o] = acc[0] + (bias ? bias[o] : 0.0f);
    }
}

void convert_scalar(const uint16_t* src, float* dst, int64_t n, Half h) {
  for (int64_t i = 0; i < n; i++) dst[i] = half_value(src[i], h);
}

}  // namespace

void gemv_half(const float* x, int64_t M, int64_t ldx, const uint16_t* w, int64_t O, int64_t C, Half h,
               const float* bias, float* y, int64_t ldy, Isa isa) {
  isa = resolve_isa(isa);
  TQ_CHECK_INPUT(M >= 0 && O >= 0 && C >= 0 && ldx >= C && ldy >= O, "gemv_half: bad shapes (M {}, O {}, C {})", M,
                 O, C);
  if (M == 0 || O == 0) return;
  detail::HalfRowsFn fn = isa == Isa::scalar ? rows_scalar
                          : isa == Isa::avx2 ? detail::half_rows_avx2()
                                             : detail::half_rows_avx512();
#pragma omp parallel if (M * O * C > detail::kParallelWork)
  {
    int64_t begin, end;
    detail::split_range(O, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    if (begin < end) fn(x, M, ldx, w, begin, end, C, h, bias, y, ldy);
  }
}

void half_to_f32(const uint16_t* src, float* dst, int64_t n, Half h, Isa isa) {
  isa = resolve_isa(isa);
  detail::HalfConvertFn fn = isa == Isa::scalar ? convert_scalar
                             : isa == Isa::avx2 ? detail::half_convert_avx2()
                                                : detail::half_convert_avx512();
  fn(src, dst, n, h);
}

}  // namespace tq
