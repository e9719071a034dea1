#include "nn/kld.h"

#include <algorithm>
#include <cmath>

namespace tq {

double kl_logprobs(const double* lp, const double* lq, int V) {
  double kl = 0;
  for (int v = 0; v < V; v++) kl += std::exp(lp[v]) * (lp[v] - lq[v]);
  return std::max(kl, 0.0);
}

double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

double p99_of(std::vector<float> v) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, (size_t)std::ceil(0.99 * v.size()) - 1);
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

}  // namespace tq
