#include "nn/ops.h"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace tq {

void linear_forward(float* y, const float* x, const float* W, const float* b, int N, int C, int O) {
  if (b) {
    for (int n = 0; n < N; n++) std::memcpy(y + (int64_t)n * O, b, sizeof(float) * O);
  }
  if (N == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, O, C, 1.0f, W, C, x, 1, b ? 1.0f : 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, C, 1.0f, x, C, W, C, b ? 1.0f : 0.0f, y, O);
  }
}

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int N, int C,
                     int O) {
  if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, O, 1.0f, dy, O, W, C, 0.0f, dx, C);
  if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, C, N, 1.0f, dy, O, x, C, 1.0f, dW, C);
  if (db) {
    for (int n = 0; n < N; n++) {
      const float* r = dy + (int64_t)n * O;
      for (int o = 0; o < O; o++) db[o] += r[o];
    }
  }
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, const float* b, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* xr = x + (int64_t)n * C;
    float* yr = y + (int64_t)n * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
    float r = (float)(1.0 / std::sqrt(ss / C + eps));
    if (rstd) rstd[n] = r;
    for (int c = 0; c < C; c++) yr[c] = xr[c] * r * g[c] + (b ? b[c] : 0.0f);
  }
}

void rmsnorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* rstd,
                      const float* g, int N, int C) {
  if (dx) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
      float* dxr = dx + (int64_t)n * C;
      double r = rstd[n], dot = 0;  // dot = Σ dy·g·x̂
      for (int c = 0; c < C; c++) dot += (double)dyr[c] * g[c] * xr[c] * r;
      for (int c = 0; c < C; c++) dxr[c] = (float)(r * (dyr[c] * g[c] - xr[c] * r * dot / C));
    }
  }
  for (int n = 0; n < N; n++) {  // serial over rows: a fixed summation order
    const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
    for (int c = 0; c < C; c++) {
      if (dg) dg[c] += dyr[c] * xr[c] * rstd[n];
      if (db) db[c] += dyr[c];
    }
  }
}

void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* g, const float* b, int N, int C,
                       float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* xr = x + (int64_t)n * C;
    float* yr = y + (int64_t)n * C;
    double s = 0;
    for (int c = 0; c < C; c++) s += xr[c];
    double m = s / C, v = 0;
    for (int c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
    float r = (float)(1.0 / std::sqrt(v / C + eps));
    if (mean) mean[n] = (float)m;
    if (rstd) rstd[n] = r;
    for (int c = 0; c < C; c++) yr[c] = (float)(xr[c] - m) * r * g[c] + (b ? b[c] : 0.0f);
  }
}

void layernorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* g, int N, int C) {
  if (dx) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
      float* dxr = dx + (int64_t)n * C;
      double m = mean[n], r = rstd[n], s1 = 0, s2 = 0;  // s1 = Σ dŷ, s2 = Σ dŷ·x̂
      for (int c = 0; c < C; c++) {
        double dh = (double)dyr[c] * g[c], xh = (xr[c] - m) * r;
        s1 += dh;
        s2 += dh * xh;
      }
      for (int c = 0; c < C; c++) {
        double dh = (double)dyr[c] * g[c], xh = (xr[c] - m) * r;
        dxr[c] = (float)(r * (dh - s1 / C - xh * s2 / C));
      }
    }
  }
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
    for (int c = 0; c < C; c++) {
      if (dg) dg[c] += dyr[c] * (xr[c] - mean[n]) * rstd[n];
      if (db) db[c] += dyr[c];
    }
  }
}

// Rotates pairs of each head by angle pos·θ^(−2i/hd); sign = −1 rotates back (the backward).
static void rope_rotate(float* x, int N, int seq, int pos0, int H, int hd, float theta, RopeLayout layout,
                        float sign) {
  int half = hd / 2;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; i++) inv_freq[i] = (float)std::pow((double)theta, -2.0 * i / hd);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    int pos = pos0 + n % seq;
    float* row = x + (int64_t)n * H * hd;
    for (int i = 0; i < half; i++) {
      float a = pos * inv_freq[i];
      float c = std::cos(a), s = sign * std::sin(a);
      for (int h = 0; h < H; h++) {
        float* p = row + h * hd;
        int i0 = layout == RopeLayout::pairs ? 2 * i : i;
        int i1 = layout == RopeLayout::pairs ? 2 * i + 1 : i + half;
        float x0 = p[i0], x1 = p[i1];
        p[i0] = x0 * c - x1 * s;
        p[i1] = x0 * s + x1 * c;
      }
    }
  }
}

void rope_forward(float* x, int N, int seq, int pos0, int H, int hd, float theta, RopeLayout layout) {
  rope_rotate(x, N, seq, pos0, H, hd, theta, layout, 1.0f);
}
void rope_backward(float* dx, int N, int seq, int pos0, int H, int hd, float theta, RopeLayout layout) {
  rope_rotate(dx, N, seq, pos0, H, hd, theta, layout, -1.0f);
}

static inline bool masked(const AttnShape& s, int i, int j) { return s.causal && j > s.pos0 + i; }

void attention_scores_forward(float* P, const float* q, const float* k, const AttnShape& s, int q_stride,
                              int kv_stride) {
  const float scale = 1.0f / std::sqrt((float)s.hd);
  const int group = s.H / s.KV;
  for (int h = 0; h < s.H; h++) {
    float* Ph = P + (int64_t)h * s.Sq * s.Sk;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.Sq, s.Sk, s.hd, scale, q + h * s.hd, q_stride,
                k + (h / group) * s.hd, kv_stride, 0.0f, Ph, s.Sk);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < (int64_t)s.H * s.Sq; r++) {
    int i = (int)(r % s.Sq);
    float* row = P + r * s.Sk;
    float mx = -INFINITY;
    for (int j = 0; j < s.Sk; j++)
      if (!masked(s, i, j)) mx = std::max(mx, row[j]);
    double sum = 0;
    for (int j = 0; j < s.Sk; j++) {
      float e = masked(s, i, j) ? 0.0f : std::exp(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
    for (int j = 0; j < s.Sk; j++) row[j] *= inv;
  }
}

void attention_apply_forward(float* out, const float* P, const float* v, const AttnShape& s, int out_stride,
                             int kv_stride) {
  const int group = s.H / s.KV;
  for (int h = 0; h < s.H; h++) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.Sq, s.hd, s.Sk, 1.0f, P + (int64_t)h * s.Sq * s.Sk, s.Sk,
                v + (h / group) * s.hd, kv_stride, 0.0f, out + h * s.hd, out_stride);
  }
}

void attention_apply_backward(float* dP, float* dv, const float* dout, const float* P, const float* v,
                              const AttnShape& s, int out_stride, int kv_stride) {
  const int group = s.H / s.KV;
  for (int h = 0; h < s.H; h++) {
    const float* Ph = P + (int64_t)h * s.Sq * s.Sk;
    float* dPh = dP + (int64_t)h * s.Sq * s.Sk;
    const float* dO = dout + h * s.hd;
    int kvo = (h / group) * s.hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.Sq, s.Sk, s.hd, 1.0f, dO, out_stride, v + kvo, kv_stride,
                0.0f, dPh, s.Sk);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s.Sk, s.hd, s.Sq, 1.0f, Ph, s.Sk, dO, out_stride, 1.0f,
                dv + kvo, kv_stride);
  }
}

void attention_scores_backward(float* dq, float* dk, const float* dP, const float* P, const float* q, const float* k,
                               const AttnShape& s, int q_stride, int kv_stride) {
  const float scale = 1.0f / std::sqrt((float)s.hd);
  const int group = s.H / s.KV;
  std::vector<float> dS((size_t)s.Sq * s.Sk);
  for (int h = 0; h < s.H; h++) {
    const float* Ph = P + (int64_t)h * s.Sq * s.Sk;
    const float* dPh = dP + (int64_t)h * s.Sq * s.Sk;
    for (int i = 0; i < s.Sq; i++) {  // softmax backward: dS = P ⊙ (dP − Σ P·dP), times the score scale
      const float *pr = Ph + (int64_t)i * s.Sk, *dpr = dPh + (int64_t)i * s.Sk;
      double dot = 0;
      for (int j = 0; j < s.Sk; j++) dot += (double)pr[j] * dpr[j];
      float* dsr = dS.data() + (int64_t)i * s.Sk;
      for (int j = 0; j < s.Sk; j++) dsr[j] = (float)(pr[j] * (dpr[j] - dot)) * scale;
    }
    int kvo = (h / group) * s.hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.Sq, s.hd, s.Sk, 1.0f, dS.data(), s.Sk, k + kvo, kv_stride,
                0.0f, dq + h * s.hd, q_stride);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s.Sk, s.hd, s.Sq, 1.0f, dS.data(), s.Sk, q + h * s.hd,
                q_stride, 1.0f, dk + kvo, kv_stride);
  }
}

static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
static inline float gelu_erf_grad(float x) {
  return 0.5f * (1.0f + std::erf(x * 0.70710678118654752f)) + x * 0.3989422804014327f * std::exp(-0.5f * x * x);
}
static inline float gelu_tanh(float x) {
  float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + std::tanh(u));
}
static inline float gelu_tanh_grad(float x) {
  float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  float t = std::tanh(u);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
}
static inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
static inline float silu_grad(float x) {
  float s = 1.0f / (1.0f + std::exp(-x));
  return s * (1.0f + x * (1.0f - s));
}

static inline float act1(float x, ActKind a) {
  switch (a) {
    case ActKind::silu: return silu(x);
    case ActKind::gelu: return gelu_erf(x);
    case ActKind::gelu_tanh: return gelu_tanh(x);
    case ActKind::relu: return x > 0 ? x : 0.0f;
  }
  return x;
}
static inline float act_grad1(float x, ActKind a) {
  switch (a) {
    case ActKind::silu: return silu_grad(x);
    case ActKind::gelu: return gelu_erf_grad(x);
    case ActKind::gelu_tanh: return gelu_tanh_grad(x);
    case ActKind::relu: return x > 0 ? 1.0f : 0.0f;
  }
  return 1.0f;
}

void act_forward(float* y, const float* x, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) y[i] = act1(x[i], act);
}
void act_backward(float* dx, const float* dy, const float* x, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * act_grad1(x[i], act);
}
void gated_forward(float* h, const float* g, const float* u, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) h[i] = act1(g[i], act) * u[i];
}
void gated_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n, ActKind act) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    dg[i] = dh[i] * u[i] * act_grad1(g[i], act);
    du[i] = dh[i] * act1(g[i], act);
  }
}

double log_softmax_row(double* out, const float* logits, int V) {
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = std::max(mx, logits[v]);
  double sum = 0;
  for (int v = 0; v < V; v++) sum += std::exp((double)logits[v] - mx);
  double lse = mx + std::log(sum);
  if (out)
    for (int v = 0; v < V; v++) out[v] = logits[v] - lse;
  return lse;
}

double cross_entropy_forward_backward(float* dlogits, const float* logits, const int32_t* targets, int N, int V,
                                      float scale) {
  std::vector<double> losses(N, 0.0);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* row = logits + (int64_t)n * V;
    float* drow = dlogits ? dlogits + (int64_t)n * V : nullptr;
    int32_t t = targets[n];
    if (t < 0) {
      if (drow) std::memset(drow, 0, sizeof(float) * V);
      continue;
    }
    double lse = log_softmax_row(nullptr, row, V);
    losses[n] = lse - row[t];
    if (drow) {
      for (int v = 0; v < V; v++) drow[v] = (float)(std::exp(row[v] - lse) * scale);
      drow[t] -= scale;
    }
  }
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

}  // namespace tq
