// Models with calibration data and helpers for the tests of the fold passes
// (OutlierTune, SmoothQuant, RepQuant): run passes on a copy, compare logits,
// capture site values, count code mismatches at rounding ties.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "io/load.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "test_util.h"

namespace tq::passtest {

constexpr Site kNormFed[] = {Site::qkv_in, Site::up_in};

inline constexpr const char* kStories = "models/stories260K/stories260K.gguf";
inline constexpr const char* kStoriesText = "data/tinystories/tinystories_valid_head.txt";

// Records the values at the chosen sites (the norm-fed ones by default), per site key, in call order.
struct Capture : Hooks {
  std::set<Site> sites = {Site::qkv_in, Site::up_in};
  std::map<std::string, std::vector<float>> values;
  void forward(Site s, int layer, float* x, int rows, int cols) override {
    if (!sites.count(s)) return;
    auto& v = values[site_key(s, layer)];
    v.insert(v.end(), x, x + (int64_t)rows * cols);
  }
};

// A model with its calibration data.
struct Case {
  std::string name;
  Model fp;
  CalibData calib;
};

// Random pre-norm RMSNorm (LLaMA-like) and post-norm LayerNorm models on sample text;
// stories260K and the post-norm MNIST ViT when ../shared is present. all_families adds
// a pre-norm LayerNorm and a post-norm RMSNorm random model, and the shared-norm ViT.
inline std::vector<Case> cases(const test::TempDir& d, bool all_families = false) {
  std::vector<Case> out;
  std::string text = test::write_sample_text(d);
  Config post = llama_config(32, 2, 4, 2, 48, 300, 64);
  post.norm = NormKind::layer;
  post.post_norm = true;
  std::vector<std::pair<std::string, Model>> random = {
      {"random rmsnorm", random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 21, 0.2f)},
      {"random post-norm", random_model(post, 22, 0.2f, true)}};
  if (all_families) {
    Config ln = llama_config(32, 2, 4, 2, 48, 300, 64), post_rms = ln;
    ln.norm = NormKind::layer;
    post_rms.post_norm = true;
    random.push_back({"random layernorm", random_model(ln, 23, 0.2f, true)});
    random.push_back({"random post-norm rmsnorm", random_model(post_rms, 24, 0.2f)});
  }
  for (auto& [name, m] : random) {
    CalibData c = load_calib(parse_data_spec(text + "?limit=16"), m);
    out.push_back({name, std::move(m), std::move(c)});
  }
  if (all_families && is_directory(test::shared("models/vit-mnist-sonjuhy"))) {
    Model m = load_model(test::shared("models/vit-mnist-sonjuhy"));
    CalibData c = load_calib(parse_data_spec("mnist:" + test::shared("data/mnist") + "?from=0.9&limit=16"), m);
    out.push_back({"vit-mnist-sonjuhy (shared norm)", std::move(m), std::move(c)});
  }
  if (file_exists(test::shared(kStories))) {
    Model m = load_model(test::shared(kStories));
    CalibData c = load_calib(parse_data_spec(test::shared(kStoriesText) + "?from=0.9&limit=4"), m);
    out.push_back({"stories260K", std::move(m), std::move(c)});
  }
  if (is_directory(test::shared("models/vit-mnist-tiny-agentzz1"))) {
    Model m = load_model(test::shared("models/vit-mnist-tiny-agentzz1"));
    CalibData c = load_calib(parse_data_spec("mnist:" + test::shared("data/mnist") + "?from=0.9&limit=16"), m);
    out.push_back({"vit-mnist-tiny-agentzz1", std::move(m), std::move(c)});
  }
  return out;
}

// Runs the passes of a JSON list on a copy of the case's model.
struct Folded {
  Model m;
  QuantPlan plan;
};
inline Folded run_passes(const Case& c, const std::vector<nlohmann::json>& passes) {
  Folded r{c.fp, {}};
  PassContext ctx(r.m, r.plan, c.calib);
  run_recipe(recipe_from_json({{"passes", passes}}, "test"), ctx);
  return r;
}

// The plan with every quantizer off (transforms kept): the float function of a folded model.
inline QuantPlan float_only(QuantPlan p) {
  for (auto& [k, s] : p.sites) s.bits = 0;
  p.weights.clear();
  return p;
}

// Site values (through the plan's hook) over the calibration data.
inline Capture capture(const Model& m, const QuantPlan& plan, const CalibData& calib) {
  SimHook sim(plan, m.cfg.n_layers);
  Capture cap;
  HookChain chain(sim, cap);
  run_calibration(m, calib, chain);
  return cap;
}

// Worst relative logit error over the calibration batches, and whether every argmax agrees.
inline double logits_error(const Model& ref, const Model& m, const QuantPlan& plan, const CalibData& calib,
                    bool* argmax_same) {
  SimHook sim(plan, m.cfg.n_layers);
  Workspace wa, wb;
  double worst = 0;
  *argmax_same = true;
  for (const Batch& b : calib.batches) {
    forward(ref, b.input(), wa);
    forward(m, b.input(), wb, sim);
    worst = std::max(worst, test::rel_err(wb.logits.data, wa.logits.data));
    const int V = ref.cfg.n_out;
    for (int64_t r = 0; r < wa.logits.rows(); r++)
      if (std::max_element(wa.logits.row(r), wa.logits.row(r) + V) - wa.logits.row(r) !=
          std::max_element(wb.logits.row(r), wb.logits.row(r) + V) - wb.logits.row(r))
        *argmax_same = false;
  }
  return worst;
}

// Per-channel steps Δ = max|x|/Qs of the site values in `cap` (the reference for the pass).
inline std::vector<double> steps_of(const std::vector<float>& v, int C, int bits) {
  std::vector<float> mx(C, 0.0f);
  for (size_t i = 0; i < v.size(); i++) mx[i % C] = std::max(mx[i % C], std::fabs(v[i]));
  float amax = *std::max_element(mx.begin(), mx.end());
  std::vector<double> d(C);
  for (int c = 0; c < C; c++) d[c] = sym_step(mx[c], bits, amax);
  return d;
}

// Counts code mismatches of `got` against the rounding of `ref`; every mismatch must
// be off by one at a rounding tie of ref (within tie_tol of n + 1/2).
struct CodeDiff {
  int64_t total = 0, mismatches = 0, not_at_tie = 0;
};
inline CodeDiff compare_codes(const std::vector<double>& ref, const std::vector<float>& got, double tie_tol) {
  CodeDiff d;
  for (size_t i = 0; i < ref.size(); i++) {
    d.total++;
    double r = std::nearbyint(ref[i]);
    if (r == got[i]) continue;
    d.mismatches++;
    double frac = ref[i] - std::floor(ref[i]);
    if (std::fabs(r - got[i]) != 1 || std::fabs(frac - 0.5) > tie_tol) d.not_at_tie++;
  }
  return d;
}

}  // namespace tq::passtest
