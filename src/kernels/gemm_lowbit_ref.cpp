// The plain references of K4 and K4-a8: the formulas of gemm_lowbit.h as loops.
#include <algorithm>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/gemm_lowbit.h"

namespace tq {

void gemm_lowbit_ref(const float* x, int64_t M, int64_t ldx, const LowbitWeights& w, float* y, int64_t ldy) {
  const int64_t G = w.groups();
  for (int64_t t = 0; t < M; t++)
    for (int64_t o = 0; o < w.O; o++) {
      float yo = 0;
      for (int64_t g = 0; g < G; g++) {
        const float s = f16_to_f32(w.scale[o * G + g]), z = f16_to_f32(w.zero[o * G + g]);
        float sum = 0, xsum = 0;
        for (int64_t c = g * w.group; c < std::min(w.C, (g + 1) * w.group); c++) {
          sum += ((float)w.q[o * w.C + c] - (w.min ? 0.0f : z)) * x[t * ldx + c];
          xsum += x[t * ldx + c];
        }
        yo += w.min ? s * sum + z * xsum : s * sum;
      }
      y[t * ldy + o] = yo + (w.bias ? w.bias[o] : 0.0f);
    }
}

void gemm_lowbit_a8_ref(const int8_t* a, const float* step, int64_t M, int64_t lda, const LowbitWeights& w, float* y,
                        int64_t ldy) {
  const int64_t G = w.groups();
  for (int64_t t = 0; t < M; t++)
    for (int64_t o = 0; o < w.O; o++) {
      float p = 0;
      for (int64_t g = 0; g < G; g++) {
        int64_t A = 0, S = 0;
        for (int64_t c = g * w.group; c < std::min(w.C, (g + 1) * w.group); c++) {
          A += (int64_t)w.q[o * w.C + c] * a[t * lda + c];
          S += a[t * lda + c];
        }
        if (A != (int32_t)A) run_failed("gemm_lowbit_a8_ref: sum {} does not fit int32", A);
        const float s = f16_to_f32(w.scale[o * G + g]), z = f16_to_f32(w.zero[o * G + g]);
        const float m = w.min ? z : -(s * z);
        p = __builtin_fmaf(m, (float)S, __builtin_fmaf(s, (float)A, p));
      }
      y[t * ldy + o] = __builtin_fmaf(step[t], p, w.bias ? w.bias[o] : 0.0f);
    }
}

}  // namespace tq
