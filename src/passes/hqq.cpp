// HQQ weight quantization and the mixed precision built on it (methods.md §3):
//   hqq     every block linear at one rung (uniform HQQ, the baseline)
//   boost   SensiBoost / KurtBoost: detect layers where a feature jumps along
//           the depth, give those linears a higher rung (or random layers at
//           equal memory, the paper's ablation)
//   budget  tquant's allocator: the rung of every linear that minimises the
//           summed error (measured output KL, or an estimate from block-output
//           errors) under a size budget
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "nn/kld.h"
#include "passes/pass.h"
#include "quant/boost.h"
#include "quant/features.h"
#include "quant/hqq.h"

namespace tq {

namespace {

HqqOptions hqq_options(const nlohmann::json& p) {
  HqqOptions o;
  o.iters = p["iters"];
  return o;
}

// Every quantized linear of the blocks: (layer, slot, weight).
struct LinearRef {
  int layer;
  Slot slot;
  const Tensor* w;
  std::string name() const { return weight_name(layer, slot); }
};
std::vector<LinearRef> block_weights(Model& m) {
  std::vector<LinearRef> out;
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (auto& nl : block_linears(m.blocks[l])) out.push_back({l, nl.slot, &nl.lin->w});
  return out;
}

Rung rung_of(const QuantSpec& s) { return {s.bits, s.group}; }

// Records the HQQ settings, both bits-per-weight figures over the block
// linears and the tensors whose last group is shorter.
void note_hqq(PassContext& ctx, const HqqOptions& o) {
  double n = 0, hqq = 0, ours = 0;
  nlohmann::json short_groups = nlohmann::json::array(), rungs = nlohmann::json::object();
  for (auto& ref : block_weights(ctx.model)) {
    const QuantSpec& s = ctx.plan.weights.at(ref.name());
    int64_t rows = ref.w->dim(0), cols = ref.w->dim(1), numel = rows * cols;
    Rung r = rung_of(s);
    n += numel;
    hqq += bpp_hqq(r, rows, cols) * numel;
    ours += bpp_ours(r, rows, cols) * numel;
    rungs[r.name()] = rungs.value(r.name(), 0) + 1;
    if (cols % s.group) short_groups.push_back(fmt::format("{} ({} = {}·{} + {})", ref.name(), cols, cols / s.group,
                                                           s.group, cols % s.group));
  }
  ctx.plan.notes["hqq"] = {
      {"solver", fmt::format("proximal, p {}, beta0 {}, kappa {}, up to {} zero updates; zero rounded for 4 bits",
                             o.p, o.beta0, o.kappa, o.iters)},
      {"early_stop", "per group: stop when the mean |W - W^| does not improve; the best zero is kept [ours]"},
      {"groups", "along the input dimension; a shorter last group keeps its own scale and zero"},
      {"rungs", rungs},
      {"bits_per_weight", {{"hqq_meta8", hqq / n}, {"fp16_params", ours / n}}},
      {"short_last_group", short_groups}};
}

void plan_rung(PassContext& ctx, const LinearRef& ref, const Rung& r, const HqqOptions& o) {
  ctx.plan.weights[ref.name()] = hqq_fit(*ref.w, r.bits, r.group, o);
}

void run_hqq(PassContext& ctx, const nlohmann::json& p) {
  HqqOptions o = hqq_options(p);
  Rung r{p["bits"], p["group"]};
  for (auto& ref : block_weights(ctx.model)) plan_rung(ctx, ref, r, o);
  note_hqq(ctx, o);
}

// The feature of every (slot, layer): kurtosis of the weights, or the
// sensitivity of the slot's part at b4g64 (methods.md §3.3); NaN where a block lacks the slot.
std::vector<std::vector<double>> features(PassContext& ctx, const std::string& feature, const HqqOptions& o) {
  const Model& m = ctx.model;
  std::vector<std::vector<double>> f(kNumSlots, std::vector<double>(m.cfg.n_layers, NAN));
  if (feature == "kurtosis") {
    for (auto& ref : block_weights(ctx.model)) f[(int)ref.slot][ref.layer] = kurtosis(ref.w->ptr(), ref.w->numel());
    return f;
  }
  Rung probe{4, 64};
  auto s = sensitivity(m, ctx.calib.batches, [&](const std::string&, const Tensor& w) {
    QuantSpec q = hqq_fit(w, probe.bits, probe.group, o);
    Tensor out = w;
    fake_quant(out.ptr(), (int)w.dim(0), (int)w.dim(1), q);
    return out;
  });
  for (auto& d : linear_table())
    if (has_linear(m.cfg, d.slot))
      for (int l = 0; l < m.cfg.n_layers; l++) f[(int)d.slot][l] = s[l][(int)d.part];
  return f;
}

void run_boost(PassContext& ctx, const nlohmann::json& p) {
  HqqOptions o = hqq_options(p);
  const std::string feature = p["feature"], select = p["select"];
  const auto& ladder = hqq_ladder();
  int base = ladder_index(p["base"]), top = boosted_rung(base, p["stop"], (int)ladder.size());
  const int L = ctx.model.cfg.n_layers;
  auto f = features(ctx, feature, o);
  JumpMode mode = feature == "kurtosis" ? JumpMode::difference : JumpMode::ratio;
  Rng rng(ctx.seed);
  nlohmann::json per_module = nlohmann::json::object();
  std::vector<std::vector<bool>> boosted(kNumSlots, std::vector<bool>(L, false));
  std::set<std::string> rules;
  for (int t = 0; t < kNumSlots; t++) {
    if (std::all_of(f[t].begin(), f[t].end(), [](double v) { return std::isnan(v); })) continue;  // no such module
    Jumps j = detect_jumps(f[t], mode, p["top_m"], p["robust_below"]);
    rules.insert(j.rule);
    std::vector<int> chosen = j.layers;
    if (select == "random") {  // the same count, uniformly among the layers the detector did not flag
      std::vector<int> pool;
      for (int l = 0; l < L; l++)
        if (std::find(j.layers.begin(), j.layers.end(), l) == j.layers.end()) pool.push_back(l);
      chosen.clear();
      for (size_t k = 0; k < j.layers.size() && !pool.empty(); k++) {
        size_t i = rng.below(pool.size());
        chosen.push_back(pool[i]);
        pool.erase(pool.begin() + i);
      }
    }
    for (int l : chosen) boosted[t][l] = true;
    auto finite = [](const std::vector<double>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr));
      return a;
    };
    per_module[linear_def((Slot)t).name] = {{"feature", finite(f[t])}, {"d", finite(j.d)}, {"z", finite(j.z)},
                               {"rule", j.rule}, {"center", j.center}, {"spread", j.spread},
                               {"threshold", j.threshold}, {"flagged", j.layers}, {"boosted", chosen}};
  }
  double extra_hqq = 0, extra_ours = 0;
  for (auto& ref : block_weights(ctx.model)) {
    bool up = boosted[(int)ref.slot][ref.layer];
    plan_rung(ctx, ref, ladder[up ? top : base], o);
    if (up) {  // methods.md §3.5: Σ boosted params · (bpp_new − bpp_base) / 8 bytes
      extra_hqq += (double)ref.w->numel() * (bpp_hqq(ladder[top]) - bpp_hqq(ladder[base])) / 8;
      extra_ours += (double)ref.w->numel() * (bpp_ours(ladder[top]) - bpp_ours(ladder[base])) / 8;
    }
  }
  note_hqq(ctx, o);
  std::string rule = rules.count("robust")
                         ? fmt::format("robust (median/MAD, z > 2.5): {} layers < {} [ours, methods.md §3.6]", L,
                                       p["robust_below"].get<int>())
                         : "trimmed (5 % per end, sample std, z > 3)";
  ctx.plan.notes["boost"] = {{"feature", feature},
                             {"select", select},
                             {"mode", mode == JumpMode::ratio ? "ratio" : "difference"},
                             {"rule", rule},
                             {"base", ladder[base].name()},
                             {"boosted_rung", ladder[top].name()},
                             {"memory_increase_bytes", {{"hqq_meta8", extra_hqq}, {"fp16_params", extra_ours}}},
                             {"modules", per_module}};
  if (feature == "sensitivity") ctx.plan.notes["boost"]["measured_at"] = "b4g64";
}

// Per-channel Σx² and row counts at the linear-input sites, per layer.
struct SecondMoments : Hooks {
  std::map<std::pair<int, int>, std::pair<std::vector<double>, int64_t>> acc;  // (layer, site) → (Σx², rows)
  void forward(Site s, int layer, float* x, int rows, int cols) override {
    const auto& inputs = linear_input_sites();
    if (std::find(inputs.begin(), inputs.end(), s) == inputs.end()) return;
    auto& [sq, n] = acc[{layer, (int)s}];
    sq.resize(cols, 0.0);
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) sq[c] += (double)x[(int64_t)r * cols + c] * x[(int64_t)r * cols + c];
    n += rows;
  }
};

// error(linear, rung) measured end to end: the mean KL divergence of the model's next-token (or
// class) distribution from the fp32 one when only that linear is at that rung, over the first
// `batches` calibration batches. Additive over linears only to first order, but it sees what a
// local error cannot: how much of a linear's error survives to the output.
std::vector<std::vector<double>> output_kl_errors(Model& m, const std::vector<Batch>& calib, int batches,
                                                  const std::vector<LinearRef>& refs,
                                                  const std::vector<std::vector<QuantSpec>>& specs) {
  const size_t nb = std::min<size_t>(calib.size(), (size_t)batches);
  Workspace ws;
  auto log_probs = [&](const Batch& b) {
    forward(m, b.input(), ws);
    const int rows = (int)ws.logits.dim(0), V = (int)ws.logits.dim(1);
    std::vector<double> lp((size_t)rows * V);
    for (int r = 0; r < rows; r++) {
      const float* z = ws.logits.row(r);
      double mx = *std::max_element(z, z + V), sum = 0;
      for (int v = 0; v < V; v++) sum += std::exp((double)z[v] - mx);
      for (int v = 0; v < V; v++) lp[(size_t)r * V + v] = (double)z[v] - mx - std::log(sum);
    }
    return lp;
  };
  std::vector<std::vector<double>> ref(nb);
  for (size_t b = 0; b < nb; b++) ref[b] = log_probs(calib[b]);
  std::vector<std::vector<double>> err(refs.size());
  Progress prog("budget: output KL", (int64_t)(refs.size() * specs[0].size()), "probe");
  for (size_t i = 0; i < refs.size(); i++) {
    Tensor& w = const_cast<Tensor&>(*refs[i].w);
    const Tensor fp = w;
    for (const QuantSpec& q : specs[i]) {
      fake_quant(w.ptr(), (int)w.dim(0), (int)w.dim(1), q);
      double kl = 0, rows = 0;
      for (size_t b = 0; b < nb; b++) {
        std::vector<double> lp = log_probs(calib[b]);
        const int R = (int)ws.logits.dim(0), V = (int)ws.logits.dim(1);
        for (int r = 0; r < R; r++) kl += kl_logprobs(&ref[b][(size_t)r * V], &lp[(size_t)r * V], V);
        rows += R;
      }
      err[i].push_back(kl / std::max(rows, 1.0));
      w = fp;
      prog.add();
    }
  }
  return err;
}

void run_budget(PassContext& ctx, const nlohmann::json& p) {
  HqqOptions o = hqq_options(p);
  TQ_CHECK_INPUT(!ctx.calib.empty(), "the budget allocator needs calibration data (--calib)");
  SecondMoments mom;
  run_calibration(ctx.model, ctx.calib, mom);
  const auto& ladder = hqq_ladder();
  auto refs = block_weights(ctx.model);
  // A linear's own output error at a rung, E‖(W − Ŵ)x‖² with the inputs' second moments taken per
  // channel (Σ_c E[x_c²] Σ_o (W − Ŵ)²_oc), is in the units of that linear's output: q/k errors pass
  // through the softmax, gate/up errors through the gated activation. Each is rescaled to the block
  // output (residual units, comparable across linears) by its part's sensitivity at b4g64 over the
  // part's summed own error at b4g64. Sizes in bits, parameters as f16 scale + zero.
  std::vector<std::vector<Choice>> items;
  std::vector<std::vector<QuantSpec>> specs;
  double n = 0;
  for (auto& ref : refs) {
    const auto& [sq, rows_seen] = mom.acc.at({ref.layer, (int)linear_def(ref.slot).input});
    const Tensor& w = *ref.w;
    const int rows = (int)w.dim(0), cols = (int)w.dim(1);
    n += (double)w.numel();
    items.emplace_back();
    specs.emplace_back();
    for (const Rung& r : ladder) {
      QuantSpec q = hqq_fit(w, r.bits, r.group, o);
      Tensor wq = w;
      fake_quant(wq.ptr(), rows, cols, q);
      double err = 0;
      for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
          double d = (double)w.row(i)[c] - wq.row(i)[c];
          err += sq[c] / std::max<int64_t>(rows_seen, 1) * d * d;
        }
      items.back().push_back({bpp_ours(r, rows, cols) * (double)w.numel(), err});
      specs.back().push_back(std::move(q));
    }
  }
  if (p["measure"] == "output_kl") {
    auto kl = output_kl_errors(ctx.model, ctx.calib.batches, p["kl_batches"], refs, specs);
    for (size_t i = 0; i < refs.size(); i++)
      for (size_t r = 0; r < ladder.size(); r++) items[i][r].error = kl[i][r];
  } else {
    const int probe = ladder_index("b4g64");
    auto sens = sensitivity(ctx.model, ctx.calib.batches, [&](const std::string&, const Tensor& w) {
      Tensor out = w;
      fake_quant(out.ptr(), (int)w.dim(0), (int)w.dim(1), hqq_fit(w, ladder[probe].bits, ladder[probe].group, o));
      return out;
    });
    std::map<std::pair<int, int>, double> own;  // (layer, part) → Σ own error at the probe rung
    auto part = [&](size_t i) { return (int)linear_def(refs[i].slot).part; };
    for (size_t i = 0; i < refs.size(); i++) own[{refs[i].layer, part(i)}] += items[i][probe].error;
    for (size_t i = 0; i < refs.size(); i++) {
      int part_i = part(i);
      double e = own[{refs[i].layer, part_i}], scale = e > 0 ? sens[refs[i].layer][part_i] / e : 0.0;
      for (Choice& c : items[i]) c.error *= scale;
    }
  }
  double bytes = p["budget_bytes"].get<double>();
  double budget_bits = bytes > 0 ? bytes * 8 : p["budget"].get<double>() * n;
  std::vector<Allocation> path;
  Allocation a = allocate_budget(items, budget_bits, &path);
  nlohmann::json frontier = nlohmann::json::array(), picks = nlohmann::json::object();
  for (auto& pt : path) frontier.push_back({pt.size / n, pt.error});
  for (size_t i = 0; i < refs.size(); i++) {
    ctx.plan.weights[refs[i].name()] = specs[i][a.pick[i]];
    picks[refs[i].name()] = ladder[a.pick[i]].name();
  }
  note_hqq(ctx, o);
  ctx.plan.notes["budget"] = {
      {"budget_bits_per_weight", budget_bits / n},
      {"bits_per_weight", a.size / n},
      {"error", a.error},
      {"error_measure",
       p["measure"] == "output_kl"
           ? "sum over linears of the mean output KL divergence with only that linear quantized"
           : "sum over linears of sum_c E[x_c^2] sum_o (W - W^)^2_oc, scaled per part by sensitivity(b4g64) / own "
             "error(b4g64)"},
      {"solver", "greedy on each linear's lower convex hull (Lagrangian multiple-choice knapsack)"},
      {"rungs", picks},
      {"frontier", frontier}};
}

std::vector<std::string> ladder_names() {
  std::vector<std::string> out;
  for (auto& r : hqq_ladder()) out.push_back(r.name());
  return out;
}

}  // namespace

PassDef hqq_pass() {
  return {"hqq",
          "HQQ weight-only quantization of every block linear at one (bits, group) rung",
          {
              {"bits", 4, "weight bits", {}, 2, 8},
              {"group", 64, "group size along the input dimension (the last group may be shorter)", {}, 1, 1 << 20},
              {"iters", 20, "zero-point updates at most (0: min-max with HQQ's zero)", {}, 0, 1000},
          },
          run_hqq};
}

PassDef boost_pass() {
  return {"boost",
          "SensiBoost/KurtBoost: HQQ at a base rung; layers where the feature jumps get the rung stop steps higher",
          {
              {"feature", "kurtosis", "kurtosis (data-free) or sensitivity (needs --calib)", {"kurtosis", "sensitivity"}},
              {"base", "b4g64", "base HQQ configuration", ladder_names()},
              {"stop", 2, "rungs up the ladder for a boosted linear", {}, 1, 11},
              {"top_m", 2, "boosted layers per module type at most (0: every flagged one)", {}, 0, 1 << 20},
              {"select", "detected", "boost the detected layers, or as many random other layers (ablation, --seed)",
               {"detected", "random"}},
              {"robust_below", 12, "models with fewer layers use the median/MAD rule (z > 2.5)", {}, 0, 1 << 20},
              {"iters", 20, "HQQ zero-point updates at most", {}, 0, 1000},
          },
          run_boost};
}

PassDef budget_pass() {
  return {"budget",
          "HQQ rung per linear minimising the summed sensitivity-weighted error under a size budget",
          {
              {"budget", 4.5, "bits per weight of the block linears (f16 scale and zero per group counted)", {}, 0,
               64},
              {"budget_bytes", 0.0, "bytes of the block linears instead (0: use budget)", {}, 0, 1e18},
              {"iters", 20, "HQQ zero-point updates at most", {}, 0, 1000},
              {"measure", "output_kl", "error of a linear at a rung: output_kl (measured end to end) or block (estimated from block-output error)", {"output_kl", "block"}},
              {"kl_batches", 32, "calibration batches the output_kl measure runs", {}, 1, 1 << 20},
          },
          run_budget};
}

}  // namespace tq
