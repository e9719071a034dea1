// GPTQ against a plain reference: the blocked, lazy implementation equals the
// textbook column-by-column algorithm; with H ∝ I it is round-to-nearest exactly;
// on correlated inputs its output error is below round-to-nearest's; dead inputs
// are zeroed. methods-gptq-awq.md §6.7 item 33.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "io/ggml_types.h"
#include "quant/gptq.h"

namespace tq {

namespace {

// Inputs with correlated channels and uneven scales: x = A z, z ~ N(0, I).
Hessian correlated_hessian(int C, int tokens, uint64_t seed, std::vector<float>* xs = nullptr) {
  Rng r(seed);
  std::vector<float> A((size_t)C * C);
  for (int i = 0; i < C; i++)
    for (int j = 0; j < C; j++) A[(size_t)i * C + j] = (float)r.normal() * (i == j ? 2.0f : 0.4f) * (1 + (i % 5));
  std::vector<float> x((size_t)tokens * C), z(C);
  for (int t = 0; t < tokens; t++) {
    for (auto& v : z) v = (float)r.normal();
    for (int i = 0; i < C; i++) {
      double s = 0;
      for (int j = 0; j < C; j++) s += A[(size_t)i * C + j] * z[j];
      x[(size_t)t * C + i] = (float)s;
    }
  }
  Hessian h;
  h.add(x.data(), tokens, C);
  if (xs) *xs = x;
  return h;
}

Tensor random_weight(int R, int C, uint64_t seed) {
  Rng r(seed);
  Tensor w({R, C});
  for (auto& v : w.data) v = 0.1f * (float)r.normal();
  return w;
}

// The textbook algorithm: every column's error goes onto all later columns at once (no lazy
// blocks), the inverse from Gauss-Jordan elimination, groups fitted when their first column comes.
Tensor reference_gptq(const Tensor& w, const Hessian& hs, GptqGrid& grid, double damp_frac) {
  const int R = (int)w.rows(), C = (int)w.cols(), G = grid.group();
  std::vector<double> h = hs.full();
  double mean = 0;
  for (int j = 0; j < C; j++) mean += h[(size_t)j * C + j] / C;
  for (int j = 0; j < C; j++) h[(size_t)j * C + j] += damp_frac * mean;
  std::vector<double> inv((size_t)C * C, 0.0), a = h;
  for (int j = 0; j < C; j++) inv[(size_t)j * C + j] = 1;
  for (int p = 0; p < C; p++) {
    double piv = a[(size_t)p * C + p];
    for (int k = 0; k < C; k++) a[(size_t)p * C + k] /= piv, inv[(size_t)p * C + k] /= piv;
    for (int i = 0; i < C; i++) {
      if (i == p) continue;
      double f = a[(size_t)i * C + p];
      for (int k = 0; k < C; k++) a[(size_t)i * C + k] -= f * a[(size_t)p * C + k], inv[(size_t)i * C + k] -= f * inv[(size_t)p * C + k];
    }
  }
  // Upper U with UᵀU = inv: Cholesky–Banachiewicz on inv, transposed.
  std::vector<double> L((size_t)C * C, 0.0);
  for (int i = 0; i < C; i++)
    for (int j = 0; j <= i; j++) {
      double s = inv[(size_t)i * C + j];
      for (int k = 0; k < j; k++) s -= L[(size_t)i * C + k] * L[(size_t)j * C + k];
      L[(size_t)i * C + j] = i == j ? std::sqrt(s) : s / L[(size_t)j * C + j];
    }
  Tensor q(w.shape);
  std::vector<float> imp(C), xg(G);
  for (int j = 0; j < C; j++) imp[j] = (float)hs.at(j, j);
  for (int r = 0; r < R; r++) {
    std::vector<double> row(w.row(r), w.row(r) + C);
    for (int j = 0; j < C; j++) {
      if (j % G == 0) {
        for (int k = 0; k < G && j + k < C; k++) xg[k] = (float)row[j + k];
        grid.fit(r, j / G, xg.data(), imp.data() + j);
      }
      double qv = grid.round(r, j, (float)row[j]);
      q.row(r)[j] = (float)qv;
      double e = (row[j] - qv) / L[(size_t)j * C + j];
      for (int k = j + 1; k < C; k++) row[k] -= e * L[(size_t)k * C + j];
    }
  }
  return q;
}

Tensor rtn(const Tensor& w, GptqGrid& grid) {
  Tensor q(w.shape);
  const int C = (int)w.cols(), G = grid.group();
  std::vector<float> ones(C, 1.0f);
  for (int r = 0; r < w.rows(); r++)
    for (int c = 0; c < C; c++) {
      if (c % G == 0) grid.fit(r, c / G, w.row(r) + c, ones.data() + c);
      q.row(r)[c] = grid.round(r, c, w.row(r)[c]);
    }
  return q;
}

QuantSpec group_spec(int bits, Scheme s, int group) {
  QuantSpec q;
  q.bits = bits, q.scheme = s, q.gran = group ? Gran::group : Gran::row, q.group = group;
  return q;
}

}  // namespace

TEST(Gptq, BlockedEqualsTheTextbookAlgorithm) {
  const int R = 12, C = 96;
  Hessian h = correlated_hessian(C, 400, 1);
  Tensor w = random_weight(R, C, 2);
  GptqOptions o;
  o.act_order = false;
  o.block = 32;  // three lazy blocks: the trailing updates go through the GEMM
  for (int group : {16, 0}) {
    SpecGptqGrid a(group_spec(4, Scheme::asym, group), R, C), b = a;
    GptqResult res = gptq(w, h, a, o);
    Tensor ref = reference_gptq(w, h, b, o.damp);
    double mx = 0;
    for (size_t i = 0; i < ref.data.size(); i++) mx = std::max(mx, (double)std::fabs(ref.data[i] - res.w.data[i]));
    EXPECT_LT(mx, 1e-6) << "group " << group;
  }
  GgmlGptqGrid a(ggml_q4_0, R, C), b(ggml_q4_0, R, C);
  GptqResult res = gptq(w, h, a, o);
  Tensor ref = reference_gptq(w, h, b, o.damp);
  for (size_t i = 0; i < ref.data.size(); i++) ASSERT_NEAR(ref.data[i], res.w.data[i], 1e-6);
}

TEST(Gptq, WhiteInputsGiveRoundToNearest) {
  const int R = 8, C = 64;
  Hessian h;
  h.n = C, h.rows = 10, h.xtx.assign((size_t)C * C, 0.0), h.abs_sum.assign(C, 1.0);
  for (int j = 0; j < C; j++) h.xtx[(size_t)j * C + j] = 3.0;
  Tensor w = random_weight(R, C, 3);
  for (bool act : {false, true}) {
    GptqOptions o;
    o.act_order = act;
    SpecGptqGrid a(group_spec(3, Scheme::sym, 0), R, C), b = a;
    EXPECT_EQ(gptq(w, h, a, o).w.data, rtn(w, b).data) << act;
    GgmlGptqGrid g(ggml_q4_1, R, C);
    GptqResult res = gptq(w, h, g, o);
    EXPECT_EQ(res.w.data, decode_ggml(encode_ggml(ggml_q4_1, w), w.shape).data) << act;
    EXPECT_EQ(g.encode(res.w).data, encode_ggml(ggml_q4_1, w).data) << act;  // the encoder keeps GPTQ's codes
  }
}

TEST(Gptq, OutputErrorBelowRoundToNearest) {
  const int R = 16, C = 256;
  Hessian h = correlated_hessian(C, 1200, 4);
  Tensor w = random_weight(R, C, 5);
  for (bool act : {false, true}) {
    GptqOptions o;
    o.act_order = act;
    SpecGptqGrid a(group_spec(4, Scheme::asym, 32), R, C), b = a;
    double e_gptq = output_error(w, gptq(w, h, a, o).w, h), e_rtn = output_error(w, rtn(w, b), h);
    EXPECT_LT(e_gptq, 0.7 * e_rtn) << act;
    for (uint32_t type : {ggml_q4_0, ggml_q4_k, ggml_q3_k}) {
      GgmlGptqGrid g(type, R, C);
      GptqResult res = gptq(w, h, g, o);
      Tensor r = decode_ggml(encode_ggml(type, w, h.mean_square()), w.shape);
      EXPECT_LT(output_error(w, res.w, h), 0.7 * output_error(w, r, h)) << ggml_type_info(type)->name << " " << act;
      EXPECT_EQ(decode_ggml(g.encode(res.w), w.shape).data, res.w.data);  // what the file holds is what GPTQ chose
    }
  }
}

TEST(Gptq, DeadInputsAreZeroed) {
  const int R = 4, C = 32;
  std::vector<float> x;
  Hessian h0 = correlated_hessian(C, 200, 6, &x);
  for (int t = 0; t < 200; t++) x[(size_t)t * C + 5] = 0, x[(size_t)t * C + 17] = 0;
  Hessian h;
  h.add(x.data(), 200, C);
  Tensor w = random_weight(R, C, 7);
  SpecGptqGrid g(group_spec(8, Scheme::sym, 0), R, C);
  GptqResult res = gptq(w, h, g);
  EXPECT_EQ(res.dead, 2);
  for (int r = 0; r < R; r++) {
    EXPECT_EQ(res.w.row(r)[5], 0.0f);
    EXPECT_EQ(res.w.row(r)[17], 0.0f);
  }
  EXPECT_GT(res.damp, 0);
}

}  // namespace tq
