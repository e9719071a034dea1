// A streamed histogram of signed values: kBins bins of width w on each side
// of zero (by |x|), exact count, min and max. When a value falls beyond the
// range, the width doubles and neighbouring bins merge, so counts stay exact
// at a coarser resolution. Calibrators read ranges from it.
#pragma once
#include <cstdint>
#include <vector>

namespace tq {

struct Histogram {
  static constexpr int kBins = 2048;
  double width = 0;               // 0 until a non-zero value is seen
  std::vector<double> pos, neg;   // pos[i]: x ≥ 0 with |x| in [i·w, (i+1)·w); neg likewise for x < 0
  double min = 0, max = 0;        // exact extremes (valid when count > 0)
  int64_t count = 0;
  int64_t nonfinite = 0;          // NaN/Inf values seen (not binned)

  Histogram() : pos(kBins, 0.0), neg(kBins, 0.0) {}
  void add(const float* x, int64_t n);
  double amax() const { return count ? (max > -min ? max : -min) : 0; }
  // Signed quantile p ∈ [0, 1], linear inside a bin, clamped to [min, max].
  double quantile(double p) const;
  // Quantile of |x|.
  double abs_quantile(double p) const;
  // Counts of |x| per bin (pos + neg), truncated after the last non-empty bin.
  std::vector<double> abs_counts() const;
  // Visits every non-empty bin as (signed centre, count).
  template <class F>
  void for_each_bin(F f) const {
    for (int i = 0; i < kBins; i++) {
      if (pos[i] > 0) f(width ? (i + 0.5) * width : 0.0, pos[i]);
      if (neg[i] > 0) f(-(i + 0.5) * width, neg[i]);
    }
  }
};

}  // namespace tq
