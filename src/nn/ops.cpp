#include "nn/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>
#include <vector>

#include "kernels/gemm_half.h"

namespace tq {

// Loops over fewer elements than this stay on one thread: a parallel region costs more than
// the work (a decoded token, the small shapes of the tests). Rows are independent, so the
// results are the same either way.
constexpr int64_t kParallelMin = 1 << 15;

// BLAS by scalar type, row-major.
static void blas_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                      int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
static void blas_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                      int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
static void blas_gemv(int M, int N, float alpha, const float* A, const float* x, float beta, float* y) {
  cblas_sgemv(CblasRowMajor, CblasNoTrans, M, N, alpha, A, N, x, 1, beta, y, 1);
}
static void blas_gemv(int M, int N, double alpha, const double* A, const double* x, double beta, double* y) {
  cblas_dgemv(CblasRowMajor, CblasNoTrans, M, N, alpha, A, N, x, 1, beta, y, 1);
}

// OpenBLAS's bits depend on how it splits a call between its threads (its edge kernels
// sum in another order: measured on a CPU it runs as Haswell, 1200 × 300 × 64 differs in
// 4,004 outputs between 1 and 2 threads). So the calls are split here, into pieces fixed
// by the shape alone, and run inside a parallel region, where OpenBLAS stays on one
// thread: the same bits on any thread count.
template <class Call>
static void in_fixed_pieces(int64_t n, int64_t piece, Call&& call) {
  const int64_t pieces = (n + piece - 1) / piece;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < pieces; i++) call(i * piece, std::min(piece, n - i * piece));
}

// C = alpha·op(A)·op(B) + beta·C, in pieces of rows of C (or of columns when C has few rows).
template <class T>
static void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                 T* C, int ldc) {
  if (M >= 128) {
    in_fixed_pieces(M, 64, [&](int64_t m0, int64_t m) {
      blas_gemm(ta, tb, (int)m, N, K, alpha, ta ? A + m0 : A + m0 * lda, lda, B, ldb, beta, C + m0 * ldc, ldc);
    });
  } else {
    in_fixed_pieces(N, 256, [&](int64_t n0, int64_t n) {
      blas_gemm(ta, tb, M, (int)n, K, alpha, A, lda, tb ? B + n0 * ldb : B + n0, ldb, beta, C + n0, ldc);
    });
  }
}
// y = alpha·A·x + beta·y for A [M, N], in pieces of rows of A.
template <class T>
static void gemv(int M, int N, T alpha, const T* A, const T* x, T beta, T* y) {
  in_fixed_pieces(M, 256, [&](int64_t m0, int64_t m) { blas_gemv((int)m, N, alpha, A + m0 * N, x, beta, y + m0); });
}

template <class T>
void linear_forward(T* y, const T* x, const T* W, const T* b, int N, int C, int O) {
  if (b) {
    for (int n = 0; n < N; n++) std::memcpy(y + (int64_t)n * O, b, sizeof(T) * O);
  }
  if (N == 1) {
    gemv(O, C, T(1), W, x, b ? T(1) : T(0), y);
  } else {
    gemm(false, true, N, O, C, T(1), x, C, W, C, b ? T(1) : T(0), y, O);
  }
}

static Half half_of(const Stored& w) { return w.type->name[0] == 'B' ? Half::bf16 : Half::f16; }
static bool is_half(const Stored& w) {
  return std::string_view(w.type->name) == "F16" || std::string_view(w.type->name) == "BF16";
}

void linear_forward_stored(float* y, const float* x, const Stored& W, const float* b, int N) {
  const int64_t O = W.rows, C = W.cols;
  if (is_half(W) && N <= 8) {
    gemv_half(x, N, C, (const uint16_t*)W.bytes, O, C, half_of(W), b, y, O);
    return;
  }
  if (b)
    for (int n = 0; n < N; n++) std::memcpy(y + (int64_t)n * O, b, sizeof(float) * O);
  if (std::string_view(W.type->name) == "F32") {  // mapped f32: BLAS reads it where it is
    gemm(false, true, N, (int)O, (int)C, 1.0f, x, (int)C, (const float*)W.bytes, (int)C, b ? 1.0f : 0.0f, y, (int)O);
    return;
  }
  // Tiles of about 4 MB of f32, whole rows.
  const int64_t rows = std::max<int64_t>(16, std::min<int64_t>(O, (int64_t(1) << 20) / std::max<int64_t>(C, 1)));
  std::vector<float> tile((size_t)(rows * C));
  for (int64_t r0 = 0; r0 < O; r0 += rows) {
    const int64_t n = std::min(rows, O - r0);
    if (is_half(W)) {
#pragma omp parallel for schedule(static) if (n * C > kParallelMin)
      for (int64_t r = 0; r < n; r++)
        half_to_f32((const uint16_t*)(W.bytes + (r0 + r) * W.row_bytes), tile.data() + r * C, C, half_of(W));
    } else {
#pragma omp parallel for schedule(static) if (n * C > kParallelMin)
      for (int64_t r = 0; r < n; r++) W.rows_to_f32(r0 + r, 1, tile.data() + r * C);
    }
    gemm(false, true, N, (int)n, (int)C, 1.0f, x, (int)C, tile.data(), (int)C, b ? 1.0f : 0.0f, y + r0, (int)O);
  }
}

void embedding_forward_stored(float* x, const Stored& table, const int32_t* ids, int64_t N, bool add) {
  const int64_t D = table.cols;
  std::vector<float> row(add ? D : 0);
  for (int64_t n = 0; n < N; n++) {
    float* xr = x + n * D;
    if (!add) {
      table.rows_to_f32(ids[n], 1, xr);
      continue;
    }
    table.rows_to_f32(ids[n], 1, row.data());
    for (int64_t d = 0; d < D; d++) xr[d] += row[d];
  }
}

template <class T>
void linear_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int N, int C, int O) {
  if (dx) gemm(false, false, N, C, O, T(1), dy, O, W, C, T(0), dx, C);
  if (dW) gemm(true, false, O, C, N, T(1), dy, O, x, C, T(1), dW, C);
  if (db) {
    for (int n = 0; n < N; n++) {
      const T* r = dy + (int64_t)n * O;
      for (int o = 0; o < O; o++) db[o] += r[o];
    }
  }
}

template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* g, const T* b, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > kParallelMin)
  for (int n = 0; n < N; n++) {
    const T* xr = x + (int64_t)n * C;
    T* yr = y + (int64_t)n * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
    T r = (T)(1.0 / std::sqrt(ss / C + eps));
    if (rstd) rstd[n] = r;
    for (int c = 0; c < C; c++) yr[c] = xr[c] * r * g[c] + (b ? b[c] : T(0));
  }
}

template <class T>
void rmsnorm_backward(T* dx, T* dg, T* db, const T* dy, const T* x, const T* rstd, const T* g, int N, int C) {
  if (dx) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > kParallelMin)
    for (int n = 0; n < N; n++) {
      const T *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
      T* dxr = dx + (int64_t)n * C;
      double r = rstd[n], dot = 0;  // dot = Σ dy·g·x̂
      for (int c = 0; c < C; c++) dot += (double)dyr[c] * g[c] * xr[c] * r;
      for (int c = 0; c < C; c++) dxr[c] = (T)(r * (dyr[c] * g[c] - xr[c] * r * dot / C));
    }
  }
  for (int n = 0; n < N; n++) {  // serial over rows: a fixed summation order
    const T *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
    for (int c = 0; c < C; c++) {
      if (dg) dg[c] += dyr[c] * xr[c] * rstd[n];
      if (db) db[c] += dyr[c];
    }
  }
}

template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* g, const T* b, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > kParallelMin)
  for (int n = 0; n < N; n++) {
    const T* xr = x + (int64_t)n * C;
    T* yr = y + (int64_t)n * C;
    double s = 0;
    for (int c = 0; c < C; c++) s += xr[c];
    double m = s / C, v = 0;
    for (int c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
    T r = (T)(1.0 / std::sqrt(v / C + eps));
    if (mean) mean[n] = (T)m;
    if (rstd) rstd[n] = r;
    for (int c = 0; c < C; c++) yr[c] = (T)(xr[c] - m) * r * g[c] + (b ? b[c] : T(0));
  }
}

template <class T>
void layernorm_backward(T* dx, T* dg, T* db, const T* dy, const T* x, const T* mean, const T* rstd, const T* g,
                        int N, int C) {
  if (dx) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > kParallelMin)
    for (int n = 0; n < N; n++) {
      const T *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
      T* dxr = dx + (int64_t)n * C;
      double m = mean[n], r = rstd[n], s1 = 0, s2 = 0;  // s1 = Σ dŷ, s2 = Σ dŷ·x̂
      for (int c = 0; c < C; c++) {
        double dh = (double)dyr[c] * g[c], xh = (xr[c] - m) * r;
        s1 += dh;
        s2 += dh * xh;
      }
      for (int c = 0; c < C; c++) {
        double dh = (double)dyr[c] * g[c], xh = (xr[c] - m) * r;
        dxr[c] = (T)(r * (dh - s1 / C - xh * s2 / C));
      }
    }
  }
  for (int n = 0; n < N; n++) {
    const T *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
    for (int c = 0; c < C; c++) {
      if (dg) dg[c] += dyr[c] * (xr[c] - mean[n]) * rstd[n];
      if (db) db[c] += dyr[c];
    }
  }
}

// Rotates pairs of each head by angle pos·θ^(−2i/hd); sign = −1 rotates back (the backward).
template <class T>
static void rope_rotate(T* x, int N, int seq, int pos0, int H, int hd, float theta, RopeLayout layout, T sign) {
  int half = hd / 2;
  std::vector<T> inv_freq(half);
  for (int i = 0; i < half; i++) inv_freq[i] = (T)std::pow((double)theta, -2.0 * i / hd);
#pragma omp parallel for schedule(static) if ((int64_t)N * H * hd > kParallelMin)
  for (int n = 0; n < N; n++) {
    int pos = pos0 + n % seq;
    T* row = x + (int64_t)n * H * hd;
    for (int i = 0; i < half; i++) {
      T a = pos * inv_freq[i];
      T c = std::cos(a), s = sign * std::sin(a);
      for (int h = 0; h < H; h++) {
        T* p = row + h * hd;
        int i0 = layout == RopeLayout::pairs ? 2 * i : i;
        int i1 = layout == RopeLayout::pairs ? 2 * i + 1 : i + half;
        T x0 = p[i0], x1 = p[i1];
        p[i0] = x0 * c - x1 * s;
        p[i1] = x0 * s + x1 * c;
      }
    }
  }
}

template <class T>
void rope_forward(T* x, int N, int seq, int pos0, int H, int hd, float theta, RopeLayout layout) {
  rope_rotate(x, N, seq, pos0, H, hd, theta, layout, T(1));
}
template <class T>
void rope_backward(T* dx, int N, int seq, int pos0, int H, int hd, float theta, RopeLayout layout) {
  rope_rotate(dx, N, seq, pos0, H, hd, theta, layout, T(-1));
}

static inline bool masked(const AttnShape& s, int i, int j) {
  return (s.causal && j > s.past + i) || (s.window > 0 && s.past + i - j >= s.window);
}

template <class T>
void attention_scores_forward(T* P, const T* q, const T* k, const AttnShape& s, int q_stride, int kv_stride) {
  const T scale = T(1) / std::sqrt((T)s.hd);
  const int group = s.H / s.KV;
  for (int h = 0; h < s.H; h++) {
    T* Ph = P + (int64_t)h * s.Sq * s.Sk;
    gemm(false, true, s.Sq, s.Sk, s.hd, scale, q + h * s.hd, q_stride, k + (h / group) * s.hd, kv_stride, T(0), Ph,
         s.Sk);
  }
  attention_softmax(P, s);
}

template <class T>
void attention_softmax(T* P, const AttnShape& s) {
#pragma omp parallel for schedule(static) if ((int64_t)s.H * s.Sq * s.Sk > kParallelMin)
  for (int64_t r = 0; r < (int64_t)s.H * s.Sq; r++) {
    int i = (int)(r % s.Sq);
    T* row = P + r * s.Sk;
    T mx = -INFINITY;
    for (int j = 0; j < s.Sk; j++)
      if (!masked(s, i, j)) mx = std::max(mx, row[j]);
    double sum = 0;
    for (int j = 0; j < s.Sk; j++) {
      T e = masked(s, i, j) ? T(0) : std::exp(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    T inv = sum > 0 ? (T)(1.0 / sum) : T(0);
    for (int j = 0; j < s.Sk; j++) row[j] *= inv;
  }
}

template <class T>
void attention_apply_forward(T* out, const T* P, const T* v, const AttnShape& s, int out_stride, int kv_stride) {
  const int group = s.H / s.KV;
  for (int h = 0; h < s.H; h++) {
    gemm(false, false, s.Sq, s.hd, s.Sk, T(1), P + (int64_t)h * s.Sq * s.Sk, s.Sk, v + (h / group) * s.hd, kv_stride,
         T(0), out + h * s.hd, out_stride);
  }
}

template <class T>
void attention_apply_backward(T* dP, T* dv, const T* dout, const T* P, const T* v, const AttnShape& s,
                              int out_stride, int kv_stride) {
  const int group = s.H / s.KV;
  for (int h = 0; h < s.H; h++) {
    const T* Ph = P + (int64_t)h * s.Sq * s.Sk;
    T* dPh = dP + (int64_t)h * s.Sq * s.Sk;
    const T* dO = dout + h * s.hd;
    int kvo = (h / group) * s.hd;
    gemm(false, true, s.Sq, s.Sk, s.hd, T(1), dO, out_stride, v + kvo, kv_stride, T(0), dPh, s.Sk);
    gemm(true, false, s.Sk, s.hd, s.Sq, T(1), Ph, s.Sk, dO, out_stride, T(1), dv + kvo, kv_stride);
  }
}

template <class T>
void attention_scores_backward(T* dq, T* dk, const T* dP, const T* P, const T* q, const T* k, const AttnShape& s,
                               int q_stride, int kv_stride) {
  const T scale = T(1) / std::sqrt((T)s.hd);
  const int group = s.H / s.KV;
  std::vector<T> dS((size_t)s.Sq * s.Sk);
  for (int h = 0; h < s.H; h++) {
    const T* Ph = P + (int64_t)h * s.Sq * s.Sk;
    const T* dPh = dP + (int64_t)h * s.Sq * s.Sk;
    for (int i = 0; i < s.Sq; i++) {  // softmax backward: dS = P ⊙ (dP − Σ P·dP), times the score scale
      const T *pr = Ph + (int64_t)i * s.Sk, *dpr = dPh + (int64_t)i * s.Sk;
      double dot = 0;
      for (int j = 0; j < s.Sk; j++) dot += (double)pr[j] * dpr[j];
      T* dsr = dS.data() + (int64_t)i * s.Sk;
      for (int j = 0; j < s.Sk; j++) dsr[j] = (T)(pr[j] * (dpr[j] - dot)) * scale;
    }
    int kvo = (h / group) * s.hd;
    gemm(false, false, s.Sq, s.hd, s.Sk, T(1), dS.data(), s.Sk, k + kvo, kv_stride, T(0), dq + h * s.hd, q_stride);
    gemm(true, false, s.Sk, s.hd, s.Sq, T(1), dS.data(), s.Sk, q + h * s.hd, q_stride, T(1), dk + kvo, kv_stride);
  }
}

// Constants are written in double and rounded once to T.
template <class T>
static inline T gelu_erf(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752)));
}
template <class T>
static inline T gelu_erf_grad(T x) {
  return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752))) +
         x * T(0.3989422804014327) * std::exp(T(-0.5) * x * x);
}
template <class T>
static inline T gelu_tanh(T x) {
  T u = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
  return T(0.5) * x * (T(1) + std::tanh(u));
}
template <class T>
static inline T gelu_tanh_grad(T x) {
  T u = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
  T t = std::tanh(u);
  return T(0.5) * (T(1) + t) +
         T(0.5) * x * (T(1) - t * t) * T(0.7978845608028654) * (T(1) + T(3) * T(0.044715) * x * x);
}
template <class T>
static inline T silu(T x) {
  return x / (T(1) + std::exp(-x));
}
template <class T>
static inline T silu_grad(T x) {
  T s = T(1) / (T(1) + std::exp(-x));
  return s * (T(1) + x * (T(1) - s));
}

template <class T>
static inline T act1(T x, ActKind a) {
  switch (a) {
    case ActKind::silu: return silu(x);
    case ActKind::gelu: return gelu_erf(x);
    case ActKind::gelu_tanh: return gelu_tanh(x);
    case ActKind::relu: return x > 0 ? x : T(0);
  }
  return x;
}
template <class T>
static inline T act_grad1(T x, ActKind a) {
  switch (a) {
    case ActKind::silu: return silu_grad(x);
    case ActKind::gelu: return gelu_erf_grad(x);
    case ActKind::gelu_tanh: return gelu_tanh_grad(x);
    case ActKind::relu: return x > 0 ? T(1) : T(0);
  }
  return T(1);
}

template <class T>
void act_forward(T* y, const T* x, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; i++) y[i] = act1(x[i], act);
}
template <class T>
void act_backward(T* dx, const T* dy, const T* x, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * act_grad1(x[i], act);
}
template <class T>
void gated_forward(T* h, const T* g, const T* u, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; i++) h[i] = act1(g[i], act) * u[i];
}
template <class T>
void gated_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    dg[i] = dh[i] * u[i] * act_grad1(g[i], act);
    du[i] = dh[i] * act1(g[i], act);
  }
}
template <class T>
void tanh_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = std::tanh(x[i]);
}
template <class T>
void tanh_backward(T* dx, const T* dy, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
}

template <class T>
void embedding_forward(T* x, const T* table, const int32_t* ids, int64_t N, int D, bool add) {
  for (int64_t n = 0; n < N; n++) {
    const T* r = table + (int64_t)ids[n] * D;
    T* xr = x + n * D;
    if (add) {
      for (int d = 0; d < D; d++) xr[d] += r[d];
    } else {
      std::memcpy(xr, r, sizeof(T) * D);
    }
  }
}
template <class T>
void embedding_backward(T* dtable, const T* dx, const int32_t* ids, int64_t N, int D) {
  for (int64_t n = 0; n < N; n++) {  // serial: rows sharing an id add up in a fixed order
    T* r = dtable + (int64_t)ids[n] * D;
    const T* g = dx + n * D;
    for (int d = 0; d < D; d++) r[d] += g[d];
  }
}

template <class T>
void patch_embed_forward(T* x, const T* patches, const T* W, const T* b, const T* cls, int B, int T_, int P, int D) {
  const int S = T_ + (cls ? 1 : 0);
  for (int i = 0; i < B; i++) {
    T* xb = x + (int64_t)i * S * D;
    if (cls) std::memcpy(xb, cls, sizeof(T) * D);
    linear_forward(xb + (cls ? D : 0), patches + (int64_t)i * T_ * P, W, b, T_, P, D);
  }
}
template <class T>
void patch_embed_backward(T* dW, T* db, T* dcls, const T* dx, const T* patches, int B, int T_, int P, int D) {
  const int S = T_ + (dcls ? 1 : 0);
  for (int i = 0; i < B; i++) {
    const T* dxb = dx + (int64_t)i * S * D;
    if (dcls)
      for (int d = 0; d < D; d++) dcls[d] += dxb[d];
    linear_backward<T>(nullptr, dW, db, dxb + (dcls ? D : 0), patches + (int64_t)i * T_ * P, nullptr, T_, P, D);
  }
}

template <class T>
void pool_forward(T* out, const T* x, int B, int S, int D, PoolKind pool) {
  for (int b = 0; b < B; b++) {
    T* o = out + (int64_t)b * D;
    const T* xb = x + (int64_t)b * S * D;
    for (int d = 0; d < D; d++) {
      if (pool == PoolKind::first) {
        o[d] = xb[d];
      } else {
        double s = 0;
        for (int t = 0; t < S; t++) s += xb[(int64_t)t * D + d];
        o[d] = (T)(s / S);
      }
    }
  }
}
template <class T>
void pool_backward(T* dx, const T* dout, int B, int S, int D, PoolKind pool) {
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      T g = dout[(int64_t)b * D + d];
      if (pool == PoolKind::first) {
        dx[(int64_t)b * S * D + d] += g;
      } else {
        for (int t = 0; t < S; t++) dx[((int64_t)b * S + t) * D + d] += g / S;
      }
    }
}

template <class T>
double log_softmax_row(double* out, const T* logits, int V) {
  T mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = std::max(mx, logits[v]);
  double sum = 0;
  for (int v = 0; v < V; v++) sum += std::exp((double)logits[v] - mx);
  double lse = mx + std::log(sum);
  if (out)
    for (int v = 0; v < V; v++) out[v] = logits[v] - lse;
  return lse;
}

template <class T>
double cross_entropy_forward_backward(T* dlogits, const T* logits, const int32_t* targets, int N, int V,
                                      Scalar<T> scale) {
  std::vector<double> losses(N, 0.0);
#pragma omp parallel for schedule(static) if ((int64_t)N * V > kParallelMin)
  for (int n = 0; n < N; n++) {
    const T* row = logits + (int64_t)n * V;
    T* drow = dlogits ? dlogits + (int64_t)n * V : nullptr;
    int32_t t = targets[n];
    if (t < 0) {
      if (drow) std::memset(drow, 0, sizeof(T) * V);
      continue;
    }
    double lse = log_softmax_row(nullptr, row, V);
    losses[n] = lse - row[t];
    if (drow) {
      for (int v = 0; v < V; v++) drow[v] = (T)(std::exp(row[v] - lse) * scale);
      drow[t] -= scale;
    }
  }
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

// Each op once per scalar type.
#define TQ_OPS(T)                                                                                                 \
  template void linear_forward(T*, const T*, const T*, const T*, int, int, int);                                  \
  template void linear_backward(T*, T*, T*, const T*, const T*, const T*, int, int, int);                         \
  template void rmsnorm_forward(T*, T*, const T*, const T*, const T*, int, int, float);                           \
  template void rmsnorm_backward(T*, T*, T*, const T*, const T*, const T*, const T*, int, int);                   \
  template void layernorm_forward(T*, T*, T*, const T*, const T*, const T*, int, int, float);                     \
  template void layernorm_backward(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int, int);       \
  template void rope_forward(T*, int, int, int, int, int, float, RopeLayout);                                     \
  template void rope_backward(T*, int, int, int, int, int, float, RopeLayout);                                    \
  template void attention_scores_forward(T*, const T*, const T*, const AttnShape&, int, int);                     \
  template void attention_softmax(T*, const AttnShape&);                                                          \
  template void attention_apply_forward(T*, const T*, const T*, const AttnShape&, int, int);                      \
  template void attention_apply_backward(T*, T*, const T*, const T*, const T*, const AttnShape&, int, int);       \
  template void attention_scores_backward(T*, T*, const T*, const T*, const T*, const T*, const AttnShape&, int,  \
                                          int);                                                                   \
  template void act_forward(T*, const T*, int64_t, ActKind);                                                      \
  template void act_backward(T*, const T*, const T*, int64_t, ActKind);                                           \
  template void gated_forward(T*, const T*, const T*, int64_t, ActKind);                                          \
  template void gated_backward(T*, T*, const T*, const T*, const T*, int64_t, ActKind);                           \
  template void tanh_forward(T*, const T*, int64_t);                                                              \
  template void tanh_backward(T*, const T*, const T*, int64_t);                                                   \
  template void embedding_forward(T*, const T*, const int32_t*, int64_t, int, bool);                              \
  template void embedding_backward(T*, const T*, const int32_t*, int64_t, int);                                   \
  template void patch_embed_forward(T*, const T*, const T*, const T*, const T*, int, int, int, int);              \
  template void patch_embed_backward(T*, T*, T*, const T*, const T*, int, int, int, int);                         \
  template void pool_forward(T*, const T*, int, int, int, PoolKind);                                              \
  template void pool_backward(T*, const T*, int, int, int, PoolKind);                                             \
  template double cross_entropy_forward_backward(T*, const T*, const int32_t*, int, int, Scalar<T>);              \
  template double log_softmax_row(double*, const T*, int);
TQ_OPS(float)
TQ_OPS(double)
#undef TQ_OPS

}  // namespace tq
