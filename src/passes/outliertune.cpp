// OutlierTune (docs/methods.md §2): two folds at the norm-fed sites (qkv_in, up_in),
// then the rtn step of the recipe quantizes the weights per row and the other
// sites per token.
//   symmetrize  centre c_j = mean over calibration calls of the per-call mid-range
//               of channel j; fold a = 1, d = c (into the norm bias and consumer biases)
//   step_fold   re-measure m_j = max|x̃_j| (optionally clipped), Δ_j = m_j/Qs; fold
//               a = Δ, so the site emits the integer codes and the dequantization is
//               pre-executed in the weights: a per-tensor symmetric quantizer of step 1
#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "passes/fold.h"
#include "passes/pass.h"

namespace tq {

namespace {

// The folds an earlier block step of the same pass recorded (a block-sequential run
// notes each block as it goes); none in a whole run.
nlohmann::json earlier_folds(const PassContext& ctx, const char* pass) {
  auto it = ctx.plan.notes.find(pass);
  if (ctx.whole() || it == ctx.plan.notes.end() || !it->contains("folds")) return nlohmann::json::array();
  return (*it)["folds"];
}

void run_symmetrize(PassContext& ctx, const nlohmann::json& p) {
  if (!p["symmetrize"]) {
    ctx.plan.notes["symmetrize"] = "off (ablation: OutlierTune without symmetrization)";
    return;
  }
  Model& m = ctx.model;
  const auto& stats = ctx.stats();
  const std::vector<double> one(m.cfg.dim, 1.0);
  nlohmann::json folds = earlier_folds(ctx, "symmetrize");
  for (int l : ctx.layers())
    for (Site site : norm_fed_sites()) {
      const SiteStats& st = site_stats(stats, site, l);
      std::vector<double> c(st.cols);
      // Σ_j max|x_j| before and after centring, from the calibration extremes: what the step fold will see.
      double absmax_before = 0, absmax_after = 0, max_centre = 0;
      for (int j = 0; j < st.cols; j++) {
        c[j] = st.col_mid_sum[j] / (double)st.calls;
        absmax_before += st.col_absmax(j);
        absmax_after += std::max(std::fabs(st.col_min[j] - c[j]), std::fabs(st.col_max[j] - c[j]));
        max_centre = std::max(max_centre, std::fabs(c[j]));
      }
      nlohmann::json rec = to_json(fold_channel_affine(m, ctx.plan, site, l, one, c));
      rec.erase("weights");  // a = 1: the weights do not change
      rec["max_abs_centre"] = max_centre;
      rec["absmax_sum_before"] = absmax_before;
      rec["absmax_sum_after"] = absmax_after;
      folds.push_back(rec);
    }
  ctx.plan.notes["symmetrize"] = {{"centre", "mean over calibration calls of the per-call channel mid-range"},
                                  {"folds", folds}};
  ctx.model_changed();
}

void run_step_fold(PassContext& ctx, const nlohmann::json& p) {
  Model& m = ctx.model;
  const int ab = p["a_bits"], wb = p["w_bits"];
  const float rho = p["clip"].get<float>();
  const int qs = (1 << (ab - 1)) - 1;
  // The clipped statistic needs per-call extremes, which only a dedicated observer keeps.
  Observer clipped;
  if (rho < 1) {
    clipped.sites = {norm_fed_sites().begin(), norm_fed_sites().end()};
    clipped.clip_ratio = rho;
    ctx.observe(clipped);
  }
  const auto& stats = rho < 1 ? clipped.stats : ctx.stats();
  const std::vector<double> no_shift(m.cfg.dim, 0.0);
  nlohmann::json folds = earlier_folds(ctx, "step_fold");
  for (int l : ctx.layers())
    for (Site site : norm_fed_sites()) {
      const SiteStats& st = site_stats(stats, site, l);
      std::vector<float> mx(st.cols);
      float amax = 0;
      for (int j = 0; j < st.cols; j++) {
        mx[j] = rho < 1 ? st.col_clip_absmax[j] : st.col_absmax(j);
        amax = std::max(amax, mx[j]);
      }
      std::vector<double> step(st.cols);
      SqnrProbe probe{wb, {}};
      for (int j = 0; j < st.cols; j++) {
        step[j] = sym_step(mx[j], ab, amax);  // m_j/Qs with the degenerate rules
        if (wb > 0) probe.x_scale.push_back(st.col_mean_abs(j));
      }
      FoldRecord rec = fold_channel_affine(m, ctx.plan, site, l, step, no_shift, probe);
      // The site now carries the codes: per-tensor symmetric, step 1 (after any post-norm transform).
      QuantSpec& q = ctx.plan.sites[rec.site];
      q.bits = ab;
      q.scheme = Scheme::sym;
      q.gran = Gran::tensor;
      q.dynamic = false;
      q.scale = {1.0f};
      q.calibrator = rho < 1 ? fmt::format("outliertune step fold (clip {})", rho) : "outliertune step fold";
      folds.push_back(to_json(rec));
    }
  ctx.plan.notes["step_fold"] = {{"a_bits", ab}, {"qs", qs}, {"clip", rho}, {"w_bits_for_sqnr", wb}, {"folds", folds}};
  ctx.model_changed();
}

}  // namespace

PassDef symmetrize_pass() {
  return {"symmetrize",
          "OutlierTune symmetrization: centre each channel of qkv_in and up_in on its mean mid-range (exact fold)",
          {{"symmetrize", true, "false: fold nothing (the ablation 'OutlierTune without symmetrization')", {}}},
          run_symmetrize, [](const nlohmann::json&) { return true; }};
}

PassDef step_fold_pass() {
  return {"step_fold",
          "OutlierTune step fold: per-channel steps Δ = max|x|/Qs into the norm and the next weights; the site emits codes",
          {
              {"a_bits", 8, "activation bits of qkv_in and up_in (Qs = 2^(b−1) − 1)", {}, 2, 8},
              {"clip", 1.0, "clip ratio ρ: each calibration call is clamped to ρ·[min, max] of its tensor", {}, 0.01,
               1.0},
              {"w_bits", 8, "weight bits for the fold's SQNR report (0: none)", {}, 0, 8},
          },
          run_step_fold, [](const nlohmann::json&) { return true; }};
}

}  // namespace tq
