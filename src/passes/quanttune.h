// QuantTune (docs/methods.md §4): fine-tuning with an outlier-driven loss that
// shrinks the dynamic range of the activations a quantized kernel reads.
//
// For a monitored site s and the current batch A_s, with μ_s and σ_s of the
// batch held as constants:
//   dev_i = max(|a_i − μ_s| − k·σ_s, 0)
//   L_s   = (1/N_s)·Σ_i dev_i² / (σ_s² + ε)
//   L     = L_task + λ·(1/|S|)·Σ_s L_s
// where |S| counts the monitored (site, layer) pairs. The hook leaves the
// forward untouched and adds ∂(λ/|S|·L_s)/∂a to the gradient at the site.
//
// The run (quanttune()) fine-tunes on a task with a tenth of its pool held out as
// the guard set: every guard_every steps the guard metric (perplexity, or
// accuracy) is measured, and the run stops and rolls back to the last checked
// state when it degrades by more than guard_tolerance (relative). `tquant
// quanttune` and the recipe pass `quanttune` (quanttune_pass()) both run it.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/task.h"
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
  double dr;       // (max − min) / (2kσ): docs/methods.md §4.5
  double sqnr_db;  // 10·log10(Σx² / Σ(x − Q(x))²), asymmetric 8-bit, range [min, max]
};
// Every (site, layer) of `sites` over all examples of data (two passes: range, then error).
std::vector<SiteRange> site_ranges(const Model& m, const BatchSource& data, int batch, const std::vector<Site>& sites,
                                   double k);
nlohmann::json to_json(const std::vector<SiteRange>& r);

// Everything a run takes; the defaults are those of `tquant quanttune` and of the pass.
struct QuantTuneConfig {
  QuantTuneOptions loss;
  TrainOptions train = [] {
    TrainOptions o;
    o.steps = 500;
    o.batch = 16;
    o.schedule.lr = 1e-4f;
    o.label = "quanttune";
    return o;
  }();
  int64_t guard_every = 50;
  double guard_tolerance = 0.005;
  bool resume = false;  // continue from train.checkpoint when it exists
};

struct QuantTuneRun {
  std::vector<SiteRange> before, after;  // over the guard set
  double guard_before = 0, guard_after = 0;
  bool stopped = false;                  // by the guard (and rolled back)
  int64_t kept_step = 0, steps_done = 0;
  std::vector<StepLog> log;
  // Settings, pool, guard history and site ranges; `pool` names task.data.
  nlohmann::json record;
};

// Fine-tunes m on data (task_data() of task, which must hold out a guard set) with the
// outlier loss, the guard and the roll-back above.
QuantTuneRun quanttune(Model& m, const TaskData& data, const TaskSpec& task, const QuantTuneConfig& cfg);

// The "before → after" table of a run's site ranges, one line per site.
std::string site_range_table(const QuantTuneRun& r);

}  // namespace tq
