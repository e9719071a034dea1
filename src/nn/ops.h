// The operations of the transformer, each a pair of free functions over raw
// row-major spans with the shapes in the signature: x_forward and x_backward.
// Backward functions accumulate (+=) into parameter gradients and overwrite
// input gradients unless stated otherwise.
#pragma once
#include <cstdint>

#include "nn/model.h"

namespace tq {

// y[N,O] = x[N,C] · W[O,C]ᵀ + b[O]   (b may be null)
void linear_forward(float* y, const float* x, const float* W, const float* b, int N, int C, int O);
// dx[N,C] = dy·W (skipped if dx null); dW[O,C] += dyᵀ·x; db[O] += Σ_n dy   (dW, db may be null)
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int N, int C,
                     int O);

// y = x / rms(x) ⊙ g (+ b).  rstd[N] is saved for the backward.
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, const float* b, int N, int C, float eps);
void rmsnorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* rstd,
                      const float* g, int N, int C);
// y = (x − mean) ⊙ rstd ⊙ g + b.  mean[N], rstd[N] saved.
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* g, const float* b, int N, int C,
                       float eps);
void layernorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* g, int N, int C);

// Rotary embedding in place on x[N, n_heads*head_dim]; row r has position pos0 + r % seq.
void rope_forward(float* x, int N, int seq, int pos0, int n_heads, int head_dim, float theta, RopeLayout layout);
void rope_backward(float* dx, int N, int seq, int pos0, int n_heads, int head_dim, float theta, RopeLayout layout);

// Attention of one sequence. q[Sq, H·hd], k/v[Sk, KV·hd] (row strides q_stride/kv_stride),
// P[H, Sq, Sk] = softmax(q·kᵀ/√hd) with query i at absolute position pos0 + i; causal
// masking zeroes keys after the query's position.
struct AttnShape {
  int Sq, Sk, H, KV, hd, pos0;
  bool causal;
};
void attention_scores_forward(float* P, const float* q, const float* k, const AttnShape& s, int q_stride,
                              int kv_stride);
// out[Sq, H·hd] = P·v per head
void attention_apply_forward(float* out, const float* P, const float* v, const AttnShape& s, int out_stride,
                             int kv_stride);
// dP = dout·vᵀ (overwritten); dv += Pᵀ·dout
void attention_apply_backward(float* dP, float* dv, const float* dout, const float* P, const float* v,
                              const AttnShape& s, int out_stride, int kv_stride);
// From dP (gradient w.r.t. the probabilities) and the softmax output P: dq (overwritten), dk (+=).
void attention_scores_backward(float* dq, float* dk, const float* dP, const float* P, const float* q, const float* k,
                               const AttnShape& s, int q_stride, int kv_stride);

// Element-wise activation, and the gated form h = act(g) ⊙ u.
void act_forward(float* y, const float* x, int64_t n, ActKind act);
void act_backward(float* dx, const float* dy, const float* x, int64_t n, ActKind act);
void gated_forward(float* h, const float* g, const float* u, int64_t n, ActKind act);
void gated_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n, ActKind act);

// Cross-entropy of logits[N,V] against targets (target < 0: ignored). Returns the summed
// loss; with dlogits non-null writes d(scale·Σloss)/dlogits.
double cross_entropy_forward_backward(float* dlogits, const float* logits, const int32_t* targets, int N, int V,
                                      float scale);
// log-softmax of one row into out (double accumulation); returns log Σ exp.
double log_softmax_row(double* out, const float* logits, int V);

}  // namespace tq
