// The plain reference of K4: the formula of gemm_lowbit.h as loops.
#include <algorithm>

#include "core/dtype.h"
#include "kernels/gemm_lowbit.h"

namespace tq {

void gemm_lowbit_ref(const float* x, int64_t M, int64_t ldx, const LowbitWeights& w, float* y, int64_t ldy) {
  const int64_t G = w.groups();
  for (int64_t t = 0; t < M; t++)
    for (int64_t o = 0; o < w.O; o++) {
      float yo = 0;
      for (int64_t g = 0; g < G; g++) {
        const float s = f16_to_f32(w.scale[o * G + g]), z = f16_to_f32(w.zero[o * G + g]);
        float sum = 0;
        for (int64_t c = g * w.group; c < std::min(w.C, (g + 1) * w.group); c++)
          sum += ((float)w.q[o * w.C + c] - z) * x[t * ldx + c];
        yo += s * sum;
      }
      y[t * ldy + o] = yo + (w.bias ? w.bias[o] : 0.0f);
    }
}

}  // namespace tq
