#include "passes/quanttune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/mmap.h"
#include "core/threads.h"
#include "passes/pass.h"

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

QuantTuneRun quanttune(Model& m, const TaskData& data, const TaskSpec& task, const QuantTuneConfig& cfg) {
  const QuantTuneOptions& q = cfg.loss;
  const TrainOptions& opt = cfg.train;
  TQ_CHECK_INPUT(data.held != nullptr, "the pool of {} {} is too small to hold out a guard tenth", data.fit_count,
                 data.unit);
  QuantTuneRun r;
  r.before = site_ranges(m, *data.held, opt.batch, q.sites, q.k);
  r.guard_before = held_out(m, data, "guard");

  OutlierLossHook hook(q);
  Trainer t(m, *data.fit, opt, &hook);
  if (cfg.resume && file_exists(opt.checkpoint)) t.resume(opt.checkpoint);
  Model kept = m;
  r.kept_step = t.adam.step;
  nlohmann::json history = nlohmann::json::array();
  auto check = [&](Trainer& tr) {
    double v = held_out(m, data, "guard");
    bool ok = within_tolerance(data, v, r.guard_before, cfg.guard_tolerance);
    history.push_back({{"step", tr.adam.step}, {"guard_" + data.metric, v}, {"loss", tr.log.back().loss},
                       {"outlier_loss", tr.log.back().extra}, {"within_guard", ok}});
    if (ok) {
      kept = m;
      r.kept_step = tr.adam.step;
    }
    r.stopped = !ok;
    return ok;
  };
  t.run(cfg.guard_every, check);
  if (!r.stopped && r.kept_step != t.adam.step) check(t);  // the steps after the last check
  if (r.stopped) m = kept;
  r.guard_after = held_out(m, data, "guard");
  r.after = site_ranges(m, *data.held, opt.batch, q.sites, q.k);
  r.steps_done = t.adam.step;
  r.log = t.log;

  nlohmann::json sites = nlohmann::json::array();
  for (Site s : q.sites) sites.push_back(site_name(s));
  r.record = {
      {"method", "quanttune"},
      {"spec", "docs/methods.md §4.2-4.4"},
      {"k", q.k},
      {"lambda", q.lambda},
      {"eps", q.eps},
      {"sites", sites},
      {"task_loss", data.task_loss},
      {"optimizer", optimizer_json(opt)},
      {"steps", opt.steps},
      {"steps_done", r.steps_done},
      {"batch", opt.batch},
      {"seed", opt.seed},
      {"threads", num_threads()},
      {"fake_quant", false},
      {"pool", {{"data", task.data}, {"unit", data.unit}, {"fit", data.fit_count}, {"guard", data.held_count},
                {"guard_offset", data.held_spec.offset}}},
      {"guard", {{"metric", data.metric}, {"tolerance", cfg.guard_tolerance}, {"every", cfg.guard_every},
                 {"before", r.guard_before}, {"after", r.guard_after}, {"stopped", r.stopped},
                 {"kept_step", r.kept_step}, {"history", history}}},
      {"sites_before", to_json(r.before)},
      {"sites_after", to_json(r.after)},
  };
  if (data.metric == "ppl") r.record["ctx"] = task.ctx;
  return r;
}

std::string site_range_table(const QuantTuneRun& r) {
  std::string s = fmt::format("  {:<8} {:>5} {:>19} {:>19} {:>7} {:>7} {:>8} {:>8}\n", "site", "layer", "range",
                              "range'", "DR", "DR'", "SQNR8", "SQNR8'");
  for (size_t i = 0; i < r.before.size(); i++) {
    const SiteRange &a = r.before[i], &b = r.after[i];
    s += fmt::format("  {:<8} {:>5} [{:>8.3f},{:>8.3f}] [{:>8.3f},{:>8.3f}] {:>7.3f} {:>7.3f} {:>6.2f}dB {:>6.2f}dB\n",
                     site_name(a.site), a.layer, a.min, a.max, b.min, b.max, a.dr, b.dr, a.sqnr_db, b.sqnr_db);
  }
  return s;
}

namespace {

// The shortest decimal of a float default as a double (1e-4f → 0.0001), for the parameter table.
double decimal(float f) { return std::stod(fmt::format("{}", f)); }

// The recipe step: fine-tunes the float model in place before the passes that quantize it.
void run_quanttune(PassContext& ctx, const nlohmann::json& p) {
  TQ_CHECK_INPUT(ctx.plan.weights.empty() && ctx.plan.sites.empty(),
                 "quanttune fine-tunes the float model: put it before the passes that quantize or fold into "
                 "quantize ops");
  TaskSpec task;
  task.data = p["data"].get<std::string>().empty() ? ctx.calib.source : p["data"].get<std::string>();
  TQ_CHECK_INPUT(!task.data.empty(), "quanttune needs data to fine-tune on: its \"data\" parameter or --calib");
  task.ctx = p["ctx"];
  QuantTuneConfig cfg;
  cfg.loss.k = p["k"];
  cfg.loss.lambda = p["lambda"];
  cfg.loss.sites = parse_sites(p["sites"].get<std::string>());
  TrainOptions& o = cfg.train;
  o.steps = p["steps"];
  o.batch = p["batch"];
  o.schedule.lr = p["lr"].get<float>();
  o.schedule.min_lr = p["min_lr"].get<float>();
  o.schedule.warmup = (int64_t)(p["warmup"].get<double>() * o.steps);
  o.adam.weight_decay = p["weight_decay"].get<float>();
  o.adam.beta2 = p["beta2"].get<float>();
  o.clip = p["clip"].get<float>();
  o.seed = p["seed"];
  cfg.guard_every = p["guard_every"];
  cfg.guard_tolerance = p["guard_tolerance"];
  TaskData data = task_data(ctx.model, task);
  QuantTuneRun r = quanttune(ctx.model, data, task, cfg);
  fmt::print(stderr, "quanttune: {} of {} steps{}; {}\n", r.kept_step, o.steps,
             r.stopped ? " (stopped by the guard, rolled back)" : "",
             held_out_line(data, "guard", r.guard_before, r.guard_after));
  ctx.plan.notes["quanttune"] = r.record;
  ctx.model_changed();
}

}  // namespace

PassDef quanttune_pass() {
  const QuantTuneConfig d;
  const TaskSpec t;
  std::string sites;
  for (Site s : d.loss.sites) sites += (sites.empty() ? "" : ",") + std::string(site_name(s));
  return {"quanttune",
          "QuantTune: fine-tune the float model with the outlier loss (docs/methods.md §4), a tenth of the data "
          "held out as the guard; put it first",
          {
              {"data", "", "text FILE or mnist:DIR to fine-tune on (empty: the --calib data)", {}},
              {"steps", d.train.steps, "optimizer updates", {}, 1, 1 << 30},
              {"batch", d.train.batch, "sequences per update", {}, 1, 1 << 16},
              {"lr", decimal(d.train.schedule.lr), "peak learning rate", {}, 0, 10},
              {"min_lr", decimal(d.train.schedule.min_lr), "learning rate at the end of the cosine", {}, 0, 10},
              {"warmup", 0.05, "fraction of the steps spent warming up linearly", {}, 0, 1},
              {"weight_decay", decimal(d.train.adam.weight_decay), "AdamW decoupled weight decay (matrices only)", {},
               0, 1},
              {"beta2", decimal(d.train.adam.beta2), "AdamW second-moment decay", {}, 0, 1},
              {"clip", decimal(d.train.clip), "global gradient-norm limit (0: none)", {}, 0, 1e30},
              {"seed", (int64_t)d.train.seed, "seed of the data order", {}, 0, 1e18},
              {"ctx", t.ctx, "tokens per training sequence", {}, 2, 1 << 16},
              {"k", d.loss.k, "band width of the outlier loss, in σ", {}, 0.5, 100},
              {"lambda", d.loss.lambda, "weight of the outlier loss", {}, 0, 1e6},
              {"sites", sites, "monitored sites, comma-separated", {}},
              {"guard_every", d.guard_every, "steps between guard evaluations", {}, 1, 1 << 30},
              {"guard_tolerance", d.guard_tolerance, "largest relative degradation of the guard metric", {}, 0, 1},
          },
          run_quanttune};
}

}  // namespace tq
