// SmoothQuant (docs/methods.md §5.5): at each norm-fed site, migrate range from the
// activations to the weights with the channel-affine fold (a = s, d = 0),
//   s_j = max|X_j|^α / max_{k,o}|W_k[o,j]|^(1−α),  clamp ≥ 1e-5.
// The quantizers come from the rtn step that follows in the recipe.
//
// α search [ours]: one α for the whole model (as the paper tunes it per model),
// the grid point whose smoothed-and-quantized model has the least mean KL
// divergence from the float model on the calibration data. The end-to-end KLD is
// what evaluation reports and sees interactions between layers that a per-block
// output error misses; the bundled models are small enough to afford a full
// forward per grid point.
#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "passes/fold.h"
#include "passes/pass.h"

namespace tq {

namespace {

// Smoothing factors of one site from the statistics of the unsmoothed model.
std::vector<double> smoothing(const SiteStats& st, Block& b, Site site, double alpha) {
  std::vector<double> wmax(st.cols, 0.0), s(st.cols);
  for (auto& nl : site_consumers(b, site))
    for (int o = 0; o < nl.lin->out(); o++)
      for (int c = 0; c < st.cols; c++) wmax[c] = std::max(wmax[c], (double)std::fabs(nl.lin->w.row(o)[c]));
  for (int c = 0; c < st.cols; c++)  // the weight maximum is clamped too, as in the reference code
    s[c] = std::max(std::pow((double)st.col_absmax(c), alpha) / std::pow(std::max(wmax[c], 1e-5), 1 - alpha), 1e-5);
  return s;
}

// Smooths every norm-fed site of m with one α; returns the fold records.
nlohmann::json smooth(Model& m, QuantPlan& plan, const std::map<std::string, SiteStats>& stats, double alpha,
                      int w_bits) {
  nlohmann::json folds = nlohmann::json::array();
  const std::vector<double> no_shift(m.cfg.dim, 0.0);
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (Site site : norm_fed_sites()) {
      const SiteStats& st = site_stats(stats, site, l);
      SqnrProbe probe{w_bits, {}};
      if (w_bits > 0)
        for (int c = 0; c < st.cols; c++) probe.x_scale.push_back(st.col_mean_abs(c));
      auto s = smoothing(st, m.blocks[l], site, alpha);
      folds.push_back(to_json(fold_channel_affine(m, plan, site, l, s, no_shift, probe)));
    }
  return folds;
}

void run_smoothquant(PassContext& ctx, const nlohmann::json& p) {
  const int wb = p["w_bits"], ab = p["a_bits"];
  double alpha = p["alpha"];
  const auto& stats = ctx.stats();
  nlohmann::json note = {{"w_bits_for_sqnr", wb}};
  if (p["search"]) {
    // Each grid point: smooth a copy, quantize it with the recipes' per-token rtn step, score.
    Recipe quant = recipe_from_json({{"passes", {per_token_rtn_step(wb, ab, "qkv_in,o_in,up_in,down_in,q,k,v")}}},
                                    "smoothquant search");
    const double step = p["search_step"];
    const int n = (int)std::floor(1.0 / step + 1e-9);
    nlohmann::json scores = nlohmann::json::array();
    double best = INFINITY;
    for (int i = 0; i <= n; i++) {
      double a = std::min(1.0, i * step);
      Model trial = ctx.model;
      QuantPlan tp = ctx.plan;
      smooth(trial, tp, stats, a, 0);
      PassContext tctx(trial, tp, ctx.calib, ctx.seed);
      quant.steps[0].first->run(tctx, quant.steps[0].second);
      Model q = simulate_weights(trial, tp);
      SimHook sim(tp, q.cfg.n_layers);
      double kld = calib_kld(q, sim, ctx.model, ctx.calib);
      fmt::print(stderr, "smoothquant: alpha {:.2f}: calibration KLD {:.6f}\n", a, kld);
      scores.push_back({{"alpha", a}, {"kld", kld}});
      if (kld < best) {
        best = kld;
        alpha = a;
      }
    }
    note["search"] = {{"score", "mean KLD of the output distributions on the calibration data"},
                      {"quantizers", fmt::format("w{} per-row sym, a{} per-token dynamic sym", wb, ab)},
                      {"grid", scores}};
  }
  note["alpha"] = alpha;
  note["folds"] = smooth(ctx.model, ctx.plan, stats, alpha, wb);
  ctx.plan.notes["smoothquant"] = note;
  ctx.model_changed();
}

}  // namespace

PassDef smoothquant_pass() {
  return {"smoothquant",
          "SmoothQuant: fold s = max|X|^α / max|W|^(1−α) into qkv_in and up_in (then quantize with rtn)",
          {
              {"alpha", 0.5, "migration strength α (the search's result replaces it)", {}, 0.0, 1.0},
              {"search", false, "pick α on a grid by the calibration KLD of the quantized model", {}},
              {"search_step", 0.1, "grid step of the α search over [0, 1]", {}, 0.01, 0.5},
              {"w_bits", 8, "weight bits the search quantizes with and the fold SQNR report uses (0: float)", {}, 0, 8},
              {"a_bits", 8, "activation bits the search quantizes with (per token)", {}, 2, 8},
          },
          run_smoothquant};
}

}  // namespace tq
