// Layer-sensitive mixed precision (docs/methods.md §3.4–3.6), SensiBoost and
// KurtBoost's detector: which layers jump in a feature along the depth, and
// which rung of the HQQ ladder a boosted linear gets.
#pragma once
#include <string>
#include <vector>

namespace tq {

enum class JumpMode { ratio, difference };  // sensitivity: v[i+1]/v[i]; kurtosis: v[i+1] − v[i]

struct Jumps {
  std::string rule;            // "trimmed" (z > 3) or "robust" (median/MAD, z > 2.5, L < 12)
  std::vector<double> d, z;    // per step i (between layers i and i + 1); NaN where undefined
  double center = 0, spread = 0, threshold = 0;
  std::vector<int> layers;     // boosted layers (i + 1 of the flagged steps), highest z first
};

// Mean and sample standard deviation (ddof 1) after dropping ⌊frac·n⌋ of the
// sorted values at each end (SciPy's mstats.trimmed_mean / trimmed_std with
// relative, inclusive limits).
void trimmed_stats(std::vector<double> v, double frac, double& mean, double& sd);
// Median, and 1.4826 × the median absolute deviation.
void robust_stats(std::vector<double> v, double& median, double& sd);

// The detector: steps with z > threshold, sorted by z, at most top_m of them
// (0: all). Layers whose feature is NaN or (ratio mode) 0 give no step. With
// fewer than robust_below layers the robust rule replaces the trimmed one.
Jumps detect_jumps(const std::vector<double>& v, JumpMode mode, int top_m, int robust_below = 12);

// The rung a boosted linear gets: min(base + stop, last) on the ladder.
int boosted_rung(int base, int stop, int n_rungs);

}  // namespace tq
