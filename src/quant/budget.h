// tquant's budget allocator: one rung of the HQQ ladder per linear, the
// assignment of least summed error whose summed size fits a budget.
#pragma once
#include <vector>

namespace tq {

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
