#include "quant/gptq.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "io/ggml_types.h"
#include "quant/observer.h"

namespace tq {

GgmlGptqGrid::GgmlGptqGrid(uint32_t t, int rows, int c)
    : grid(*ggml_grid(t)), type(t), cols(c), blocks((size_t)rows * (c / ggml_grid(t)->block)) {
  if (c % grid.block) run_failed("GPTQ to {}: rows of {} are not whole blocks", t, c);
}

void GgmlGptqGrid::fit(int row, int g, const float* x, const float* importance) {
  fit_block(grid, x, importance, blocks[(size_t)row * (cols / grid.block) + g]);
}

float GgmlGptqGrid::round(int row, int col, float x) const {
  const GgmlBlock& b = blocks[(size_t)row * (cols / grid.block) + col / grid.block];
  const int j = (col % grid.block) / grid.sub;
  const float a = ggml_step(grid, b, j);
  const float off = !grid.affine ? 0.0f : grid.k() ? -(b.m * (float)b.mn[j]) : b.m;
  int q = a != 0 ? (int)std::clamp(std::rint((x - off) / a), (float)grid.cmin, (float)grid.cmax) : std::max(grid.cmin, 0);
  return ggml_value(grid, b, j, q);
}

GgmlTensor GgmlGptqGrid::encode(const Tensor& wq) const {
  const int64_t per_row = cols / grid.block, bb = ggml_type_info(type)->bytes;
  GgmlTensor out{type, std::vector<uint8_t>((size_t)wq.rows() * per_row * bb)};
  for (int64_t r = 0; r < wq.rows(); r++)
    for (int64_t k = 0; k < per_row; k++) {
      GgmlBlock b = blocks[r * per_row + k];
      code_block(grid, wq.row(r) + k * grid.block, b);
      pack_block(type, b, out.data.data() + (r * per_row + k) * bb);
    }
  return out;
}

SpecGptqGrid::SpecGptqGrid(QuantSpec s, int rows, int c) : spec(std::move(s)), cols(c) {
  if (spec.gran != Gran::row && spec.gran != Gran::group) run_failed("GPTQ needs a per-row or per-group quantizer");
  if (spec.scheme != Scheme::sym && spec.scheme != Scheme::asym) run_failed("GPTQ needs a uniform quantizer");
  spec.scale.assign(spec.n_params(rows, cols), 1.0f);
  if (spec.scheme == Scheme::asym) spec.zero.assign(spec.scale.size(), 0.0f);
}

void SpecGptqGrid::fit(int row, int g, const float* x, const float*) {
  const int n = std::min(group(), cols - g * group());
  float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  float amax = std::max(std::fabs(lo), std::fabs(hi));
  const int64_t p = spec.param_index(row, g * group(), cols);
  if (spec.scheme == Scheme::sym) spec.scale[p] = sym_step(amax, spec.bits, amax);
  else asym_params(lo, hi, spec.bits, amax, spec.scale[p], spec.zero[p]);  // as fit_minmax
}

float SpecGptqGrid::round(int row, int col, float x) const {
  const int64_t p = spec.param_index(row, col, cols);
  if (spec.scheme == Scheme::sym) return spec.scale[p] * (float)q_sym(x, spec.scale[p], spec.bits);
  return spec.scale[p] * ((float)q_asym(x, spec.scale[p], spec.zero[p], spec.bits) - spec.zero[p]);
}

namespace {

// Lower Cholesky factor of the n×n symmetric a, in place (upper part left as is); false if not
// positive definite.
bool cholesky(std::vector<double>& a, int n) {
  for (int j = 0; j < n; j++) {
    double* aj = &a[(size_t)j * n];
    double d = aj[j];
    for (int k = 0; k < j; k++) d -= aj[k] * aj[k];
    if (!(d > 0)) return false;
    aj[j] = std::sqrt(d);
    for (int i = j + 1; i < n; i++) {
      double* ai = &a[(size_t)i * n];
      double s = ai[j];
      for (int k = 0; k < j; k++) s -= ai[k] * aj[k];
      ai[j] = s / aj[j];
    }
  }
  return true;
}

// U upper with Uᵀ U = h⁻¹ (GPTQ's factor: row j holds how column j's error spreads onto the later
// columns). h is the damped, permuted Hessian; false if not positive definite.
bool inverse_cholesky_upper(std::vector<double> h, int n, std::vector<double>& u) {
  if (!cholesky(h, n)) return false;
  // Linv = L⁻¹ (lower), then h⁻¹ = Linvᵀ Linv.
  std::vector<double> li((size_t)n * n, 0.0);
  for (int j = 0; j < n; j++) {
    li[(size_t)j * n + j] = 1.0 / h[(size_t)j * n + j];
    for (int i = j + 1; i < n; i++) {
      double s = 0;
      for (int k = j; k < i; k++) s -= h[(size_t)i * n + k] * li[(size_t)k * n + j];
      li[(size_t)i * n + j] = s / h[(size_t)i * n + i];
    }
  }
  std::vector<double> inv((size_t)n * n, 0.0);
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) {
      double s = 0;
      for (int k = i; k < n; k++) s += li[(size_t)k * n + i] * li[(size_t)k * n + j];
      inv[(size_t)i * n + j] = inv[(size_t)j * n + i] = s;
    }
  if (!cholesky(inv, n)) return false;
  u.assign((size_t)n * n, 0.0);
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) u[(size_t)j * n + i] = inv[(size_t)i * n + j];
  return true;
}

}  // namespace

GptqFactor gptq_factor(const Hessian& hs, const GptqOptions& opt) {
  const int C = hs.n;
  GptqFactor f;
  f.n = C, f.opt = opt;
  std::vector<double> h = hs.full();
  f.importance.resize(C);
  f.dead.assign(C, false);
  for (int j = 0; j < C; j++) {
    f.importance[j] = (float)h[(size_t)j * C + j];
    if (h[(size_t)j * C + j] == 0) h[(size_t)j * C + j] = 1, f.dead[j] = true;  // an input that is always 0
  }
  f.perm.resize(C);
  std::iota(f.perm.begin(), f.perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(f.perm.begin(), f.perm.end(),
                     [&](int a, int b) { return h[(size_t)a * C + a] > h[(size_t)b * C + b]; });
  double mean_diag = 0;
  for (int j = 0; j < C; j++) mean_diag += h[(size_t)j * C + j] / C;
  std::vector<double> hp((size_t)C * C);
  f.damp = opt.damp * mean_diag;
  for (int attempt = 0;; attempt++) {
    for (int i = 0; i < C; i++)
      for (int j = 0; j < C; j++)
        hp[(size_t)i * C + j] = h[(size_t)f.perm[i] * C + f.perm[j]] + (i == j ? f.damp : 0.0);
    if (inverse_cholesky_upper(hp, C, f.u)) break;
    if (attempt == 6) run_failed("GPTQ: the Hessian is not positive definite even with damping {}", f.damp);
    f.damp = std::max(f.damp * 10, 1e-12);
  }
  return f;
}

GptqResult gptq(const Tensor& w, const Hessian& h, GptqGrid& grid, const GptqOptions& opt) {
  return gptq(w, gptq_factor(h, opt), grid);
}

GptqResult gptq(const Tensor& w, const GptqFactor& f, GptqGrid& grid) {
  const int R = (int)w.rows(), C = (int)w.cols(), G = grid.group();
  if (f.n != C) run_failed("GPTQ: a Hessian of width {} for a weight of {} columns", f.n, C);
  const std::vector<int>& perm = f.perm;
  const std::vector<double>& U = f.u;
  const std::vector<float>& importance = f.importance;
  GptqResult res;
  res.damp = f.damp;
  std::vector<double> W(w.data.begin(), w.data.end());
  for (int j = 0; j < C; j++)
    if (f.dead[j]) {  // its weights do nothing
      for (int r = 0; r < R; r++) W[(size_t)r * C + j] = 0;
      res.dead++;
    }
  // Working copy in processing order.
  std::vector<double> Wp((size_t)R * C);
  for (int r = 0; r < R; r++)
    for (int i = 0; i < C; i++) Wp[(size_t)r * C + i] = W[(size_t)r * C + perm[i]];
  // With act-order a group's columns are scattered over the processing order: fit every group up
  // front from the weights as they are (GPTQ's static groups). Otherwise fit each group when its
  // first column comes, from its columns' values then, inside one lazy block.
  int B = f.opt.block;
  if (f.opt.act_order) {
    std::vector<float> xg(G);
    for (int r = 0; r < R; r++)
      for (int g = 0; g * G < C; g++) {
        const int n = std::min(G, C - g * G);
        for (int k = 0; k < n; k++) xg[k] = (float)W[(size_t)r * C + g * G + k];
        grid.fit(r, g, xg.data(), importance.data() + g * G);
      }
  } else {
    B = (std::max(B, G) + G - 1) / G * G;
  }
  Tensor Q(w.shape);
  std::vector<double> row_loss(R, 0.0);
  std::vector<double> E;
  for (int i1 = 0; i1 < C; i1 += B) {
    const int i2 = std::min(i1 + B, C), nb = i2 - i1;
    E.assign((size_t)R * nb, 0.0);
#pragma omp parallel for schedule(static) if ((int64_t)R * nb * nb > (1 << 17))
    for (int r = 0; r < R; r++) {
      double* wr = &Wp[(size_t)r * C];
      std::vector<float> xg(G);
      for (int jj = 0; jj < nb; jj++) {
        const int j = i1 + jj, col = perm[j];
        if (!f.opt.act_order && col % G == 0) {
          const int n = std::min(G, C - col);
          for (int k = 0; k < n; k++) xg[k] = (float)wr[j + k];  // identity order: column col + k sits at j + k
          grid.fit(r, col / G, xg.data(), importance.data() + col);
        }
        const double x = wr[j], q = grid.round(r, col, (float)x), d = U[(size_t)j * C + j];
        Q.row(r)[col] = (float)q;
        const double e = (x - q) / d;
        row_loss[r] += 0.5 * e * e;
        E[(size_t)r * nb + jj] = e;
        const double* uj = &U[(size_t)j * C];
        for (int k = j + 1; k < i2; k++) wr[k] -= e * uj[k];
      }
    }
    if (i2 < C)  // the block's errors onto every later column at once
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C - i2, nb, -1.0, E.data(), nb, &U[(size_t)i1 * C + i2],
                  C, 1.0, &Wp[i2], C);
  }
  for (double l : row_loss) res.loss += l;
  res.w = std::move(Q);
  return res;
}

double output_error(const Tensor& w, const Tensor& wq, const Hessian& h, const std::vector<double>& row_weight) {
  const int R = (int)w.rows(), C = (int)w.cols();
  if (h.n != C) run_failed("output error: a Hessian of width {} for {} columns", h.n, C);
  if (!row_weight.empty() && (int)row_weight.size() != R) run_failed("output error: {} row weights for {} rows", row_weight.size(), R);
  // Σ_r ρ_r d_r H d_rᵀ with D = W − Ŵ: one GEMM D·H, then a dot product per row.
  std::vector<double> H = h.full(), D((size_t)R * C), DH((size_t)R * C);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) D[(size_t)r * C + c] = (double)w.row(r)[c] - wq.row(r)[c];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, C, 1.0, D.data(), C, H.data(), C, 0.0, DH.data(), C);
  double e = 0;
  for (int r = 0; r < R; r++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += D[(size_t)r * C + c] * DH[(size_t)r * C + c];
    e += (row_weight.empty() ? 1.0 : row_weight[r]) * s;
  }
  return h.rows ? e / (double)h.rows : e;
}

}  // namespace tq
