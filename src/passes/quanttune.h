// QuantTune (methods.md §4): fine-tuning with an outlier-driven loss that
// shrinks the dynamic range of the activations a quantized kernel reads.
//
// For a monitored site s and the current batch A_s, with μ_s and σ_s of the
// batch held as constants:
//   dev_i = max(|a_i − μ_s| − k·σ_s, 0)
//   L_s   = (1/N_s)·Σ_i dev_i² / (σ_s² + ε)
//   L     = L_task + λ·(1/|S|)·Σ_s L_s
// where |S| counts the monitored (site, layer) pairs. The hook leaves the
// forward untouched and adds ∂(λ/|S|·L_s)/∂a to the gradient at the site.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/train.h"

namespace tq {

struct QuantTuneOptions {
  double k = 3.0;        // band width in σ
  double lambda = 0.05;  // weight of the outlier loss
  double eps = 1e-6;     // keeps L_s finite for a constant site
  std::vector<Site> sites = {Site::qkv_in, Site::o_in, Site::up_in, Site::down_in, Site::head_in};
};

// L_s of n values with μ, σ held; when grad is non-null adds scale·∂L_s/∂a_i into it.
template <class T>
double outlier_loss(const T* a, int64_t n, double mu, double sigma, double k, double eps, T* grad, double scale);

// The QuantTune term as a training hook.
class OutlierLossHook : public LossHook {
 public:
  explicit OutlierLossHook(QuantTuneOptions opt) : opt_(std::move(opt)) {}
  void begin() override { seen_.clear(); }
  void forward(Site site, int layer, float* x, int rows, int cols) override;
  void backward(Site site, int layer, float* dx, int rows, int cols) override;
  double value() const override;  // λ/|S|·Σ L_s of the last forward
  const char* name() const override { return "L_s"; }

 private:
  struct Entry {
    std::vector<float> a;  // the site's values (the backward needs them)
    double mu, sigma, loss;
  };
  QuantTuneOptions opt_;
  std::map<std::pair<int, int>, Entry> seen_;  // (site, layer) of this forward
};

// Range of one site over a data set, and what per-tensor 8-bit min-max quantization does to it.
struct SiteRange {
  Site site;
  int layer;
  double min, max, mean, std;
  double dr;       // (max − min) / (2kσ): methods.md §4.5
  double sqnr_db;  // 10·log10(Σx² / Σ(x − Q(x))²), asymmetric 8-bit, range [min, max]
};
// Every (site, layer) of `sites` over all examples of data (two passes: range, then error).
std::vector<SiteRange> site_ranges(const Model& m, const BatchSource& data, int batch, const std::vector<Site>& sites,
                                   double k);
nlohmann::json to_json(const std::vector<SiteRange>& r);

}  // namespace tq
