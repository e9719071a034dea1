#include "passes/quanttune.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tq {

template <class T>
double outlier_loss(const T* a, int64_t n, double mu, double sigma, double k, double eps, T* grad, double scale) {
  const double band = k * sigma, denom = (double)n * (sigma * sigma + eps);
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - mu, dev = std::abs(d) - band;
    if (dev <= 0) continue;
    sum += dev * dev;
    if (grad) grad[i] += (T)(scale * 2 * dev * (d > 0 ? 1 : -1) / denom);
  }
  return sum / denom;
}
template double outlier_loss(const float*, int64_t, double, double, double, double, float*, double);
template double outlier_loss(const double*, int64_t, double, double, double, double, double*, double);

static void mean_std(const float* x, int64_t n, double& mean, double& std) {
  double s = 0, ss = 0;
  for (int64_t i = 0; i < n; i++) s += x[i];
  mean = s / n;
  for (int64_t i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
  std = std::sqrt(ss / n);
}

void OutlierLossHook::forward(Site site, int layer, float* x, int rows, int cols) {
  if (std::find(opt_.sites.begin(), opt_.sites.end(), site) == opt_.sites.end()) return;
  Entry& e = seen_[{(int)site, layer}];
  e.a.assign(x, x + (int64_t)rows * cols);
  mean_std(x, (int64_t)rows * cols, e.mu, e.sigma);
  e.loss = outlier_loss<float>(x, (int64_t)rows * cols, e.mu, e.sigma, opt_.k, opt_.eps, nullptr, 0.0);
}

void OutlierLossHook::backward(Site site, int layer, float* dx, int rows, int cols) {
  auto it = seen_.find({(int)site, layer});
  if (it == seen_.end()) return;
  const Entry& e = it->second;
  outlier_loss(e.a.data(), (int64_t)e.a.size(), e.mu, e.sigma, opt_.k, opt_.eps, dx,
               opt_.lambda / (double)seen_.size());
}

double OutlierLossHook::value() const {
  if (seen_.empty()) return 0;
  double s = 0;
  for (auto& [key, e] : seen_) s += e.loss;
  return opt_.lambda * s / (double)seen_.size();
}

namespace {
// Pass 1: count, sum, sum of squares, min and max per (site, layer).
struct RangeHook : Hooks {
  const std::vector<Site>& sites;
  std::map<std::pair<int, int>, SiteRange> r;
  std::map<std::pair<int, int>, double> n, s, ss;
  explicit RangeHook(const std::vector<Site>& s) : sites(s) {}
  void forward(Site site, int layer, float* x, int rows, int cols) override {
    if (std::find(sites.begin(), sites.end(), site) == sites.end()) return;
    auto key = std::make_pair((int)site, layer);
    if (!r.count(key)) r[key] = SiteRange{site, layer, INFINITY, -INFINITY, 0, 0, 0, 0};
    SiteRange& sr = r[key];
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) {
      sr.min = std::min(sr.min, (double)x[i]);
      sr.max = std::max(sr.max, (double)x[i]);
      s[key] += x[i];
      ss[key] += (double)x[i] * x[i];
    }
    n[key] += (double)rows * cols;
  }
};
// Pass 2: signal and error energy of asymmetric 8-bit min-max quantization.
struct ErrorHook : Hooks {
  std::map<std::pair<int, int>, SiteRange>& r;
  std::map<std::pair<int, int>, double> signal, noise;
  explicit ErrorHook(std::map<std::pair<int, int>, SiteRange>& ranges) : r(ranges) {}
  void forward(Site site, int layer, float* x, int rows, int cols) override {
    auto it = r.find({(int)site, layer});
    if (it == r.end()) return;
    double lo = it->second.min, hi = it->second.max;
    double step = hi > lo ? (hi - lo) / 255 : 1.0, z = std::nearbyint(-lo / step);
    double& sg = signal[it->first];
    double& ns = noise[it->first];
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) {
      double q = std::clamp(std::nearbyint(x[i] / step) + z, 0.0, 255.0), xh = step * (q - z);
      sg += (double)x[i] * x[i];
      ns += (x[i] - xh) * (x[i] - xh);
    }
  }
};
}  // namespace

std::vector<SiteRange> site_ranges(const Model& m, const BatchSource& data, int batch, const std::vector<Site>& sites,
                                   double k) {
  RangeHook rh(sites);
  task_loss(m, data, batch, rh);
  for (auto& [key, sr] : rh.r) {
    sr.mean = rh.s[key] / rh.n[key];
    sr.std = std::sqrt(std::max(0.0, rh.ss[key] / rh.n[key] - sr.mean * sr.mean));
    sr.dr = sr.std > 0 ? (sr.max - sr.min) / (2 * k * sr.std) : 0;
  }
  ErrorHook eh(rh.r);
  task_loss(m, data, batch, eh);
  std::vector<SiteRange> out;
  for (auto& [key, sr] : rh.r) {
    double ns = eh.noise[key];
    sr.sqnr_db = ns > 0 ? 10 * std::log10(eh.signal[key] / ns) : INFINITY;
    out.push_back(sr);
  }
  std::stable_sort(out.begin(), out.end(), [](const SiteRange& a, const SiteRange& b) {
    return a.layer != b.layer ? (a.layer < 0 ? false : b.layer < 0 ? true : a.layer < b.layer) : a.site < b.site;
  });
  return out;
}

nlohmann::json to_json(const std::vector<SiteRange>& r) {
  nlohmann::json j = nlohmann::json::array();
  for (auto& s : r)
    j.push_back({{"site", site_name(s.site)}, {"layer", s.layer}, {"min", s.min}, {"max", s.max}, {"mean", s.mean},
                 {"std", s.std}, {"dr", s.dr}, {"sqnr8_db", s.sqnr_db}});
  return j;
}

}  // namespace tq
