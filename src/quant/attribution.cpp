#include "quant/attribution.h"

#include <algorithm>
#include <cmath>

#include "quant/observer.h"
#include "quant/quantizer.h"

namespace tq {

static double sq_err(float x, float step, float zero, int bits) {
  double xq = step * ((float)q_asym(x, step, zero, bits) - zero);
  return (x - xq) * (x - xq);
}

Attribution attribute_error(const float* x, int64_t n, int bits, double k) {
  Attribution a;
  if (n == 0) return a;
  double sum = 0, sumsq = 0;
  float mn = x[0], mx = x[0];
  for (int64_t i = 0; i < n; i++) {
    sum += x[i];
    sumsq += (double)x[i] * x[i];
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  double mu = sum / n, sigma = std::sqrt(std::max(0.0, sumsq / n - mu * mu)), band = k * sigma;
  float in_mn = INFINITY, in_mx = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (std::fabs(x[i] - mu) <= band) in_mn = std::min(in_mn, x[i]), in_mx = std::max(in_mx, x[i]);
  float amax = std::max(std::fabs(mn), std::fabs(mx)), step, zero, step_i, zero_i;
  asym_params(mn, mx, bits, amax, step, zero);
  bool any_in = in_mn <= in_mx;
  if (any_in) asym_params(in_mn, in_mx, bits, amax, step_i, zero_i);
  double in_r = 0, in_ri = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = sq_err(x[i], step, zero, bits);
    a.e_tot += e;
    if (any_in && std::fabs(x[i] - mu) <= band) {
      in_r += e;
      in_ri += sq_err(x[i], step_i, zero_i, bits);
    }
  }
  // With no value outside the band, R_I is R: the amplification is zero exactly.
  a.e_amp = any_in && (in_mn != mn || in_mx != mx) ? in_r - in_ri : 0.0;
  a.dr = sigma > 0 ? (mx - mn) / (2 * band) : 0;
  return a;
}

void DiagnoseHook::forward(tq::Site site, int layer, float* x, int rows, int cols) {
  int64_t n = (int64_t)rows * cols;
  Site& s = sites[site_key(site, layer)];
  Attribution a = attribute_error(x, n, bits, k);
  s.sum.e_tot += a.e_tot;
  s.sum.e_amp += a.e_amp;
  s.sum.dr = std::max(s.sum.dr, a.dr);
  s.dr_sum += a.dr;
  s.calls++;
  s.values += n;
  if (site == tq::Site::probs) return;  // its columns are key positions, not channels
  double sum = 0, sumsq = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i], sumsq += (double)x[i] * x[i];
  double mu = sum / n, band = k * std::sqrt(std::max(0.0, sumsq / n - mu * mu));
  if (s.excess.empty()) s.excess.assign(cols, 0.0), s.count.assign(cols, 0);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      double d = std::fabs(x[(int64_t)r * cols + c] - mu) - band;
      if (d > 0) {
        s.excess[c] += d * d;
        s.count[c]++;
        s.outliers++;
      }
    }
}

}  // namespace tq
