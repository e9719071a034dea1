// The budget pass, tquant's allocator: the HQQ rung of every linear that
// minimises the summed error (measured output KL, or an estimate from
// block-output errors) under a size budget.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/progress.h"
#include "core/ranks.h"
#include "nn/kld.h"
#include "passes/hqq.h"
#include "quant/budget.h"
#include "quant/features.h"

namespace tq {

namespace {

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
  // Each probe (linear i at rung k, index i·rungs + k) starts from the fp32 weights, so under mpirun
  // the probes split over the ranks and their results gather in probe order (core/ranks.h).
  const size_t rungs = specs[0].size();
  const ranks::Share mine = ranks::my_share((int64_t)(refs.size() * rungs));
  std::vector<double> mine_err;
  Progress prog("budget: output KL", mine.end - mine.begin, "probe");
  for (int64_t probe = mine.begin; probe < mine.end; probe++) {
    const size_t i = probe / rungs, k = probe % rungs;
    Tensor& w = const_cast<Tensor&>(*refs[i].w);
    const Tensor fp = w;
    fake_quant(w.ptr(), (int)w.dim(0), (int)w.dim(1), specs[i][k]);
    double kl = 0, rows = 0;
    for (size_t b = 0; b < nb; b++) {
      std::vector<double> lp = log_probs(calib[b]);
      const int R = (int)ws.logits.dim(0), V = (int)ws.logits.dim(1);
      for (int r = 0; r < R; r++) kl += kl_logprobs(&ref[b][(size_t)r * V], &lp[(size_t)r * V], V);
      rows += R;
    }
    mine_err.push_back(kl / std::max(rows, 1.0));
    w = fp;
    prog.add();
  }
  const std::vector<double> all = ranks::gather_all(mine_err);
  std::vector<std::vector<double>> err(refs.size());
  for (size_t i = 0; i < refs.size(); i++) err[i].assign(all.begin() + i * rungs, all.begin() + (i + 1) * rungs);
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
  // Each fit (linear i at rung k, item i·rungs + k) is independent: under mpirun the fits split
  // over the ranks and travel as doubles (the spec, then its own error) in item order.
  const size_t rungs = ladder.size();
  const ranks::Share mine = ranks::my_share((int64_t)(refs.size() * rungs));
  std::vector<std::vector<double>> fits;
  for (int64_t item = mine.begin; item < mine.end; item++) {
    const LinearRef& ref = refs[item / rungs];
    const Rung& r = ladder[item % rungs];
    const auto& [sq, rows_seen] = mom.acc.at({ref.layer, (int)linear_def(ref.slot).input});
    const Tensor& w = *ref.w;
    const int rows = (int)w.dim(0), cols = (int)w.dim(1);
    QuantSpec q = hqq_fit(w, r.bits, r.group, o);
    Tensor wq = w;
    fake_quant(wq.ptr(), rows, cols, q);
    double err = 0;
    for (int i = 0; i < rows; i++)
      for (int c = 0; c < cols; c++) {
        double d = (double)w.row(i)[c] - wq.row(i)[c];
        err += sq[c] / std::max<int64_t>(rows_seen, 1) * d * d;
      }
    fits.emplace_back();
    append_doubles(q, fits.back());
    fits.back().push_back(err);
  }
  fits = ranks::gather_items((int64_t)(refs.size() * rungs), fits);
  std::vector<std::vector<Choice>> items(refs.size());
  std::vector<std::vector<QuantSpec>> specs(refs.size());
  double n = 0;
  for (size_t i = 0; i < refs.size(); i++) {
    const Tensor& w = *refs[i].w;
    n += (double)w.numel();
    for (size_t k = 0; k < rungs; k++) {
      const std::vector<double>& f = fits[i * rungs + k];
      const double *at = f.data(), *end = f.data() + f.size() - 1;  // the spec, then its error
      specs[i].push_back(spec_from_doubles(at, end));
      TQ_ASSERT(at == end, "budget: {} values left after a fitted spec", end - at);
      items[i].push_back({bpp_ours(ladder[k], (int)w.dim(0), (int)w.dim(1)) * (double)w.numel(), f.back()});
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

}  // namespace

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
