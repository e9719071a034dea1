// QKᵀ: checks, threading over heads and query rows, the scalar dots.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "kernels/attn_scores_impl.h"
#include "kernels/work_split.h"

namespace tq {

namespace detail {

void attn_dots_scalar(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d) {
  for (int64_t j = 0; j < n; j++) {
    int32_t s = 0;
    for (int k = 0; k < hd; k++) s += (int32_t)a[k] * b[j * ldb + k];
    d[j] = s;
  }
}

}  // namespace detail

using namespace detail;

static void check_scores(const AttnCodes& q, const AttnCodes& k, int H, int KV, int hd) {
  TQ_CHECK_INPUT(H > 0 && KV > 0 && H % KV == 0 && hd > 0, "attn_scores: {} heads over {} kv heads of {}", H, KV, hd);
  TQ_CHECK_INPUT(q.rows >= 0 && k.rows >= 0 && q.ld >= (int64_t)H * hd && k.ld >= (int64_t)KV * hd,
                 "attn_scores: bad strides (q {}, k {})", q.ld, k.ld);
  TQ_CHECK_INPUT((q.c && q.step) || q.rows == 0, "attn_scores: no q codes");
  TQ_CHECK_INPUT((k.c && k.step) || k.rows == 0, "attn_scores: no k codes");
  auto amax = [](const AttnCodes& x, int64_t cols) {
    int64_t m = 0;
    for (int64_t r = 0; r < x.rows; r++)
      for (int64_t c = 0; c < cols; c++) m = std::max<int64_t>(m, std::abs((int)x.c[r * x.ld + c]));
    return m;
  };
  if ((double)hd * amax(q, (int64_t)H * hd) * amax(k, (int64_t)KV * hd) >= 2147483648.0)
    bad_input("attn_scores: head dim {} with these codes can overflow the exact int32 sums", hd);
}

const char* attn_scores_path(Isa isa) { return isa == Isa::amx || isa == Isa::avx512 ? "avx512 vnni" : isa_name(isa); }

void attn_scores(const AttnCodes& q, const AttnCodes& k, int H, int KV, int hd, float scale, float* S, Isa isa) {
  isa = resolve_isa(isa);
  check_scores(q, k, H, KV, hd);
  const AttnDotFn dots = isa == Isa::scalar ? attn_dots_scalar : isa == Isa::avx2 ? attn_dots_avx2 : attn_dots_avx512;
  const int64_t Sq = q.rows, Sk = k.rows, group = H / KV;
#pragma omp parallel if ((int64_t)H * Sq * Sk * hd > kParallelWork)
  {
    std::vector<int32_t> d(Sk);
    int64_t begin, end;
    split_range((int64_t)H * Sq, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t r = begin; r < end; r++) {
      const int64_t h = r / Sq, i = r % Sq;
      dots(q.c + i * q.ld + h * hd, k.c + (h / group) * hd, k.ld, Sk, hd, d.data());
      float* row = S + r * Sk;
      const float alpha = q.step[q.per_head ? i * H + h : i];
      const float* beta = k.per_head ? k.step + h / group : k.step;
      const int64_t beta_stride = k.per_head ? KV : 1;
      for (int64_t j = 0; j < Sk; j++) row[j] = attn_score(d[j], alpha, beta[j * beta_stride], scale);
    }
  }
}

void attn_scores_ref(const AttnCodes& q, const AttnCodes& k, int H, int KV, int hd, float scale, float* S) {
  check_scores(q, k, H, KV, hd);
  const int group = H / KV;
  for (int h = 0; h < H; h++)
    for (int64_t i = 0; i < q.rows; i++)
      for (int64_t j = 0; j < k.rows; j++) {
        int64_t s = 0;
        for (int d = 0; d < hd; d++) s += (int64_t)q.c[i * q.ld + h * hd + d] * k.c[j * k.ld + (h / group) * hd + d];
        S[((int64_t)h * q.rows + i) * k.rows + j] =
            attn_score((int32_t)s, q.per_head ? q.step[i * H + h] : q.step[i],
                       k.per_head ? k.step[j * KV + h / group] : k.step[j], scale);
      }
}

}  // namespace tq
