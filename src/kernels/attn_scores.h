// QKᵀ on integer codes, for attention whose q and k sites are quantized
// (docs/methods.md §1.9: S = K1(quant(q), quant(k)ᵀ)·scale), per head h with grouped
// keys (head h reads kv head h / (H / KV)):
//
//   S[h, i, j] = fl(fl(α_i·β_j)·scale) · (float) Σ_d a[i, h·hd + d] · b[j, (h/G)·hd + d]
//
// a, b are the codes minus their zero points, as int16 (any zero point of an
// 8-bit quantizer fits), with a step per row (α_i, β_j; per-tensor quantizers
// repeat theirs) or per row and head (α_{i,h}, β_{j,h/G}: per-head dynamic quantizers). The sums are exact in int32 (checked: hd·max|a|·max|b| < 2^31),
// so every path gives the same bits.
#pragma once
#include <cstdint>

#include "kernels/cpu.h"

namespace tq {

struct AttnCodes {
  const int16_t* c = nullptr;  // rows × (heads · hd) centered codes, row stride ld
  const float* step = nullptr; // one per row, or (per_head) one per row and head: step[row·heads + head]
  int64_t rows = 0, ld = 0;
  bool per_head = false;
};

// S (H × q.rows × k.rows, row-major per head) from q (H heads) and k (KV heads) of hd.
void attn_scores(const AttnCodes& q, const AttnCodes& k, int H, int KV, int hd, float scale, float* S,
                 Isa isa = Isa::automatic);
// The path attn_scores takes for a resolved isa, for reports.
const char* attn_scores_path(Isa isa);
void attn_scores_ref(const AttnCodes& q, const AttnCodes& k, int H, int KV, int hd, float scale, float* S);

}  // namespace tq
