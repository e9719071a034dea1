#include "quant/boost.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace tq {

void trimmed_stats(std::vector<double> v, double frac, double& mean, double& sd) {
  std::sort(v.begin(), v.end());
  size_t k = (size_t)std::floor(frac * (double)v.size());
  size_t n = v.size() - 2 * std::min(k, v.size() / 2);
  mean = sd = NAN;
  if (n == 0) return;
  double s = 0;
  for (size_t i = k; i < k + n; i++) s += v[i];
  mean = s / n;
  if (n < 2) return;
  double q = 0;
  for (size_t i = k; i < k + n; i++) q += (v[i] - mean) * (v[i] - mean);
  sd = std::sqrt(q / (n - 1));
}

static double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void robust_stats(std::vector<double> v, double& median, double& sd) {
  median = median_of(v);
  for (double& x : v) x = std::fabs(x - median);
  sd = 1.4826 * median_of(v);
}

Jumps detect_jumps(const std::vector<double>& v, JumpMode mode, int top_m, int robust_below) {
  Jumps j;
  const int L = (int)v.size();
  std::vector<double> valid;
  for (int i = 0; i + 1 < L; i++) {
    double d = NAN;
    if (std::isfinite(v[i]) && std::isfinite(v[i + 1]))
      d = mode == JumpMode::ratio ? (v[i] != 0 ? v[i + 1] / v[i] : NAN) : v[i + 1] - v[i];
    j.d.push_back(d);
    if (std::isfinite(d)) valid.push_back(d);
  }
  if (L < robust_below) {
    j.rule = "robust";
    j.threshold = 2.5;
    robust_stats(valid, j.center, j.spread);
  } else {
    j.rule = "trimmed";
    j.threshold = 3.0;
    trimmed_stats(valid, 0.05, j.center, j.spread);
  }
  std::vector<int> flagged;
  for (size_t i = 0; i < j.d.size(); i++) {
    double dev = std::fabs(j.d[i] - j.center), z = NAN;
    // A zero spread (all kept steps equal) flags exactly the steps that differ.
    if (std::isfinite(dev)) z = j.spread > 0 ? dev / j.spread : dev > 0 ? INFINITY : 0.0;
    j.z.push_back(z);
    if (z > j.threshold) flagged.push_back((int)i);
  }
  std::stable_sort(flagged.begin(), flagged.end(), [&](int a, int b) { return j.z[a] > j.z[b]; });
  if (top_m > 0 && (int)flagged.size() > top_m) flagged.resize(top_m);
  for (int i : flagged) j.layers.push_back(i + 1);
  return j;
}

int boosted_rung(int base, int stop, int n_rungs) { return std::min(base + stop, n_rungs - 1); }

}  // namespace tq
