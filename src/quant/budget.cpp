#include "quant/budget.h"

#include <algorithm>
#include <numeric>
#include <queue>

#include "core/error.h"

namespace tq {

namespace {

// Indices of an item's options on the lower convex hull of (size, error),
// by increasing size and strictly decreasing error.
std::vector<int> lower_hull(const std::vector<Choice>& opts) {
  std::vector<int> idx(opts.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
    return opts[a].size < opts[b].size || (opts[a].size == opts[b].size && opts[a].error < opts[b].error);
  });
  std::vector<int> h;
  for (int i : idx) {
    if (!h.empty() && opts[i].error >= opts[h.back()].error) continue;  // dominated
    // Pop points that lie on or above the segment to the new point.
    while (h.size() >= 2) {
      const Choice &a = opts[h[h.size() - 2]], &b = opts[h.back()], &c = opts[i];
      double cross = (b.size - a.size) * (c.error - a.error) - (b.error - a.error) * (c.size - a.size);
      if (cross > 0) break;
      h.pop_back();
    }
    h.push_back(i);
  }
  return h;
}

}  // namespace

Allocation allocate_budget(const std::vector<std::vector<Choice>>& items, double budget,
                           std::vector<Allocation>* frontier) {
  std::vector<std::vector<int>> hulls;
  Allocation cur;
  std::vector<int> pos(items.size(), 0);
  for (auto& opts : items) {
    TQ_CHECK_INPUT(!opts.empty(), "budget allocation: an item has no options");
    hulls.push_back(lower_hull(opts));
    const Choice& c = opts[hulls.back()[0]];
    cur.pick.push_back(hulls.back()[0]);
    cur.size += c.size;
    cur.error += c.error;
  }
  if (cur.size > budget)
    bad_input("the budget ({:.6g}) is below the smallest assignment ({:.6g})", budget, cur.size);
  // Next upgrade of every item, by error drop per unit size (ties: lower item first).
  struct Step {
    double gain;
    size_t item;
    bool operator<(const Step& o) const { return gain < o.gain || (gain == o.gain && item > o.item); }
  };
  auto step_of = [&](size_t i) {
    const auto& h = hulls[i];
    const Choice &a = items[i][h[pos[i]]], &b = items[i][h[pos[i] + 1]];
    return Step{(a.error - b.error) / (b.size - a.size), i};
  };
  std::priority_queue<Step> q;
  for (size_t i = 0; i < items.size(); i++)
    if (hulls[i].size() > 1) q.push(step_of(i));
  if (frontier) frontier->assign(1, cur);
  Allocation fit = cur;
  while (!q.empty()) {
    Step s = q.top();
    q.pop();
    size_t i = s.item;
    const Choice &a = items[i][hulls[i][pos[i]]], &b = items[i][hulls[i][pos[i] + 1]];
    cur.size += b.size - a.size;
    cur.error += b.error - a.error;
    cur.pick[i] = hulls[i][++pos[i]];
    if (cur.size <= budget) fit = cur;
    if (frontier) frontier->push_back(cur);
    else if (cur.size > budget) break;
    if (pos[i] + 1 < (int)hulls[i].size()) q.push(step_of(i));
  }
  return fit;
}

}  // namespace tq
