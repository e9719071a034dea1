// Layer-sensitive mixed precision (methods.md §3.4–3.6): which layers jump
// in a feature along the depth, and which rung of the HQQ ladder each linear
// gets; plus tquant's budget allocator (the rungs that minimise a summed error
// under a size budget).
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

// One choice per item (linear) among options (rungs), each with a size and an
// error: the assignment of least summed error whose summed size fits.
struct Choice {
  double size = 0, error = 0;
};
struct Allocation {
  std::vector<int> pick;  // option per item
  double size = 0, error = 0;
};
// Greedy on each item's lower convex hull of (size, error), taking the upgrade
// with the largest error drop per size first; this is the Lagrangian solution
// of the multiple-choice knapsack, optimal at every point it passes. Returns
// the path from the smallest assignment upwards (frontier) and the last point
// that fits the budget; throws bad_input when even the smallest does not fit.
Allocation allocate_budget(const std::vector<std::vector<Choice>>& items, double budget,
                           std::vector<Allocation>* frontier = nullptr);

}  // namespace tq
