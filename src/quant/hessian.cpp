#include "quant/hessian.h"

#include <cblas.h>

#include <cmath>

#include "core/error.h"
#include "quant/observer.h"

namespace tq {

void Hessian::add(const float* x, int r, int cols) {
  if (n == 0) {
    n = cols;
    xtx.assign((size_t)n * n, 0.0);
    abs_sum.assign(n, 0.0);
  }
  if (cols != n) run_failed("Hessian of width {} fed {} columns", n, cols);
  for (int64_t i = 0; i < (int64_t)r * cols; i++) abs_sum[i % cols] += std::fabs((double)x[i]);
  // Small products stay on this thread: BLAS's thread start costs more than the work.
  if ((int64_t)r * n * n < (1 << 20)) {
    std::vector<double> xt((size_t)n * r);  // channel-major, so each entry is one contiguous dot product
    for (int t = 0; t < r; t++)
      for (int c = 0; c < n; c++) xt[(size_t)c * r + t] = x[(size_t)t * n + c];
    for (int i = 0; i < n; i++)
      for (int j = i; j < n; j++) {
        const double *a = &xt[(size_t)i * r], *b = &xt[(size_t)j * r];
        double s = 0;
        for (int t = 0; t < r; t++) s += a[t] * b[t];
        xtx[(size_t)i * n + j] += s;
      }
  } else {
    std::vector<double> xd(x, x + (size_t)r * cols);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, r, 1.0, xd.data(), n, 1.0, xtx.data(), n);
  }
  rows += r;
}

void Hessian::merge(const Hessian& o) {
  if (o.n == 0) return;
  if (n == 0) {
    *this = o;
    return;
  }
  if (o.n != n) run_failed("merging Hessians of widths {} and {}", n, o.n);
  for (size_t i = 0; i < xtx.size(); i++) xtx[i] += o.xtx[i];
  for (int c = 0; c < n; c++) abs_sum[c] += o.abs_sum[c];
  rows += o.rows;
}

std::vector<double> Hessian::full() const {
  std::vector<double> h((size_t)n * n);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) h[(size_t)i * n + j] = at(i, j);
  return h;
}

std::vector<float> Hessian::mean_square() const {
  std::vector<float> d(n);
  for (int c = 0; c < n; c++) d[c] = rows ? (float)(at(c, c) / (double)rows) : 0.0f;
  return d;
}

std::vector<double> Hessian::mean_abs() const {
  std::vector<double> m(n);
  for (int c = 0; c < n; c++) m[c] = rows ? abs_sum[c] / (double)rows : 0.0;
  return m;
}

void Hessian::scale_channels(const std::vector<double>& s) {
  if ((int)s.size() != n) run_failed("channel scale of {} for a Hessian of width {}", s.size(), n);
  for (int i = 0; i < n; i++) {
    abs_sum[i] *= std::fabs(s[i]);
    for (int j = i; j < n; j++) xtx[(size_t)i * n + j] *= s[i] * s[j];
  }
}

Site input_site_of(const std::string& linear) {
  if (auto slot = slot_from_name(linear)) return linear_def(*slot).input;
  bad_input("'{}' is not a block linear", linear);
}

void HessianObserver::forward(Site site, int l, float* x, int rows, int cols) {
  if (!sites.count(site) || (layer != -2 && l != layer)) return;
  h[site_key(site, l)].add(x, rows, cols);
}

}  // namespace tq
