// The operations of the transformer, each a pair of free functions over raw
// row-major spans with the shapes in the signature: x_forward and x_backward.
// Backward functions accumulate (+=) into parameter gradients and overwrite
// input gradients unless stated otherwise.
//
// Every op is a template on the scalar type, instantiated for float (the model)
// and double (the finite-difference checks of the tests); BLAS is sgemm/dgemm.
#pragma once
#include <cstdint>
#include <type_traits>

#include "nn/model.h"

namespace tq {

// A scalar argument that follows the type of the spans instead of deciding it.
template <class T>
using Scalar = std::type_identity_t<T>;

// y[N,O] = x[N,C] · W[O,C]ᵀ + b[O]   (b may be null)
template <class T>
void linear_forward(T* y, const T* x, const T* W, const T* b, int N, int C, int O);
// The same for a weight that stays in its file's type (Tensor::stored): F16/BF16 rows
// for a few inputs multiply on gemv_half (converted in registers); otherwise tiles of
// W are converted to f32 (a few MB at a time) and multiplied with BLAS. No f32 copy
// of the whole weight exists at any time.
void linear_forward_stored(float* y, const float* x, const Stored& W, const float* b, int N);
// x[n] = (or +=) row ids[n] of a stored table.
void embedding_forward_stored(float* x, const Stored& table, const int32_t* ids, int64_t N, bool add);
// dx[N,C] = dy·W (skipped if dx null); dW[O,C] += dyᵀ·x; db[O] += Σ_n dy   (dW, db may be null)
template <class T>
void linear_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int N, int C, int O);

// y = x / rms(x) ⊙ g (+ b).  rstd[N] is saved for the backward.
template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* g, const T* b, int N, int C, float eps);
template <class T>
void rmsnorm_backward(T* dx, T* dg, T* db, const T* dy, const T* x, const T* rstd, const T* g, int N, int C);
// y = (x − mean) ⊙ rstd ⊙ g + b.  mean[N], rstd[N] saved.
template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* g, const T* b, int N, int C, float eps);
template <class T>
void layernorm_backward(T* dx, T* dg, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* g,
                        int N, int C);

// Rotary embedding in place on x[N, n_heads*head_dim]; row r has position pos0 + r % seq.
template <class T>
void rope_forward(T* x, int N, int seq, int pos0, int n_heads, int head_dim, float theta, RopeLayout layout);
template <class T>
void rope_backward(T* dx, int N, int seq, int pos0, int n_heads, int head_dim, float theta, RopeLayout layout);

// Attention of one sequence. q[Sq, H·hd], k/v[Sk, KV·hd] (row strides q_stride/kv_stride),
// P[H, Sq, Sk] = softmax(q·kᵀ/√hd). Query i sits after the key at index past + i (past =
// keys of earlier calls held in a cache); causal masking zeroes the keys after it.
struct AttnShape {
  int Sq, Sk, H, KV, hd, past;
  bool causal;
  int window = 0;  // > 0: query i (position past + i) sees keys j with past + i − j < window
};
template <class T>
void attention_scores_forward(T* P, const T* q, const T* k, const AttnShape& s, int q_stride, int kv_stride);
// Its second half: the scores P[H, Sq, Sk] (scaled) become their masked softmax, in place.
template <class T>
void attention_softmax(T* P, const AttnShape& s);
// out[Sq, H·hd] = P·v per head
template <class T>
void attention_apply_forward(T* out, const T* P, const T* v, const AttnShape& s, int out_stride, int kv_stride);
// dP = dout·vᵀ (overwritten); dv += Pᵀ·dout
template <class T>
void attention_apply_backward(T* dP, T* dv, const T* dout, const T* P, const T* v, const AttnShape& s,
                              int out_stride, int kv_stride);
// From dP (gradient w.r.t. the probabilities) and the softmax output P: dq (overwritten), dk (+=).
template <class T>
void attention_scores_backward(T* dq, T* dk, const T* dP, const T* P, const T* q, const T* k, const AttnShape& s,
                               int q_stride, int kv_stride);

// Element-wise activation, and the gated form h = act(g) ⊙ u.
template <class T>
void act_forward(T* y, const T* x, int64_t n, ActKind act);
template <class T>
void act_backward(T* dx, const T* dy, const T* x, int64_t n, ActKind act);
template <class T>
void gated_forward(T* h, const T* g, const T* u, int64_t n, ActKind act);
template <class T>
void gated_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n, ActKind act);
// y = tanh(x) (the BERT pooler); the backward reads the output y.
template <class T>
void tanh_forward(T* y, const T* x, int64_t n);
template <class T>
void tanh_backward(T* dx, const T* dy, const T* y, int64_t n);

// Rows of a table: x[n] = table[ids[n]] (or += with add). The backward adds dx[n] into dtable[ids[n]].
template <class T>
void embedding_forward(T* x, const T* table, const int32_t* ids, int64_t N, int D, bool add);
template <class T>
void embedding_backward(T* dtable, const T* dx, const int32_t* ids, int64_t N, int D);

// Image tokens of B images: x[B, S, D] with S = T (+1 when cls is given, the CLS row first);
// row t of the patches is W·patch + b.
template <class T>
void patch_embed_forward(T* x, const T* patches, const T* W, const T* b, const T* cls, int B, int T_, int P, int D);
template <class T>
void patch_embed_backward(T* dW, T* db, T* dcls, const T* dx, const T* patches, int B, int T_, int P, int D);

// out[B, D] from x[B, S, D]: the first row (CLS) or the mean over the S rows.
template <class T>
void pool_forward(T* out, const T* x, int B, int S, int D, PoolKind pool);
// dx[B, S, D] is added to.
template <class T>
void pool_backward(T* dx, const T* dout, int B, int S, int D, PoolKind pool);

// Cross-entropy of logits[N,V] against targets (target < 0: ignored). Returns the summed
// loss; with dlogits non-null writes d(scale·Σloss)/dlogits.
template <class T>
double cross_entropy_forward_backward(T* dlogits, const T* logits, const int32_t* targets, int N, int V,
                                      Scalar<T> scale);
// log-softmax of one row into out (double accumulation); returns log Σ exp.
template <class T>
double log_softmax_row(double* out, const T* logits, int V);

}  // namespace tq
