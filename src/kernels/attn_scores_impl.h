// Shared by the QKᵀ driver and its per-ISA row kernels (not API).
#pragma once
#include <cstdint>

#include "kernels/attn_scores.h"

namespace tq::detail {

// d[j] = Σ_{d < hd} a[d]·b[j·ldb + d] for j < n, exactly.
using AttnDotFn = void (*)(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d);
void attn_dots_scalar(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d);
void attn_dots_avx2(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d);
void attn_dots_avx512(const int16_t* a, const int16_t* b, int64_t ldb, int64_t n, int hd, int32_t* d);

// The score of a sum, as every path computes it.
inline float attn_score(int32_t d, float alpha, float beta, float scale) { return (alpha * beta * scale) * (float)d; }

}  // namespace tq::detail
