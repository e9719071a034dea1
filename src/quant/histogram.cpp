#include "quant/histogram.h"

#include <algorithm>
#include <cmath>

namespace tq {

void Histogram::add(const float* x, int64_t n) {
  float amx = 0;
  for (int64_t i = 0; i < n; i++)
    if (std::isfinite(x[i])) amx = std::max(amx, std::fabs(x[i]));
  if (amx > 0) {
    if (width == 0) width = (double)amx / kBins * (1 + 1e-6);  // first non-zero data sets the scale
    while (amx >= kBins * width) {                               // widen: merge pairs of bins
      for (int i = 0; i < kBins / 2; i++) {
        pos[i] = pos[2 * i] + pos[2 * i + 1];
        neg[i] = neg[2 * i] + neg[2 * i + 1];
      }
      std::fill(pos.begin() + kBins / 2, pos.end(), 0.0);
      std::fill(neg.begin() + kBins / 2, neg.end(), 0.0);
      width *= 2;
    }
  }
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    if (!std::isfinite(v)) {
      nonfinite++;
      continue;
    }
    int b = width > 0 ? std::min(kBins - 1, (int)(std::fabs(v) / width)) : 0;
    (v < 0 ? neg : pos)[b] += 1;
    if (count == 0) min = max = v;
    min = std::min(min, (double)v);
    max = std::max(max, (double)v);
    count++;
  }
}

double Histogram::quantile(double p) const {
  if (count == 0) return 0;
  double target = std::clamp(p, 0.0, 1.0) * count, cum = 0;
  // Ascending order: negative bins from the most negative, then positive bins.
  for (int i = kBins - 1; i >= 0; i--) {
    if (neg[i] > 0 && cum + neg[i] >= target) {
      double frac = (target - cum) / neg[i];
      return std::clamp(-(i + 1 - frac) * width, min, max);
    }
    cum += neg[i];
  }
  for (int i = 0; i < kBins; i++) {
    if (pos[i] > 0 && cum + pos[i] >= target) {
      double frac = (target - cum) / pos[i];
      return std::clamp((i + frac) * width, min, max);
    }
    cum += pos[i];
  }
  return max;
}

double Histogram::abs_quantile(double p) const {
  if (count == 0) return 0;
  std::vector<double> a = abs_counts();
  double target = std::clamp(p, 0.0, 1.0) * count, cum = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i] > 0 && cum + a[i] >= target) return std::min((i + (target - cum) / a[i]) * width, amax());
    cum += a[i];
  }
  return amax();
}

std::vector<double> Histogram::abs_counts() const {
  std::vector<double> a(kBins);
  int last = 0;
  for (int i = 0; i < kBins; i++) {
    a[i] = pos[i] + neg[i];
    if (a[i] > 0) last = i;
  }
  a.resize(last + 1);
  return a;
}

}  // namespace tq
