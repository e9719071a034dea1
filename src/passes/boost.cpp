// SensiBoost / KurtBoost (docs/methods.md §3.3–3.6): HQQ at a base rung; the layers
// where a feature (weight kurtosis, or activation sensitivity) jumps along the
// depth get a higher rung, or as many random other layers at equal memory (the
// paper's ablation).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/rng.h"
#include "passes/hqq.h"
#include "quant/boost.h"
#include "quant/features.h"

namespace tq {

namespace {

// The feature of every (slot, layer): kurtosis of the weights, or the
// sensitivity of the slot's part at b4g64 (docs/methods.md §3.3); NaN where a block lacks the slot.
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
  std::vector<std::pair<LinearRef, Rung>> linears;
  for (auto& ref : block_weights(ctx.model)) {
    bool up = boosted[(int)ref.slot][ref.layer];
    linears.push_back({ref, ladder[up ? top : base]});
    if (up) {  // docs/methods.md §3.5: Σ boosted params · (bpp_new − bpp_base) / 8 bytes
      extra_hqq += (double)ref.w->numel() * (bpp_hqq(ladder[top]) - bpp_hqq(ladder[base])) / 8;
      extra_ours += (double)ref.w->numel() * (bpp_ours(ladder[top]) - bpp_ours(ladder[base])) / 8;
    }
  }
  plan_rungs(ctx, linears, o);
  note_hqq(ctx, o);
  std::string rule = rules.count("robust")
                         ? fmt::format("robust (median/MAD, z > 2.5): {} layers < {} [ours, docs/methods.md §3.6]", L,
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

}  // namespace

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

}  // namespace tq
