// OutlierTune and SmoothQuant: the checks of docs/methods.md §6.4 (items 15–19) and
// §6.2 item 8 (whole-model folds on the bundled models).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "eval/evaluate.h"
#include "export/gguf_writer.h"
#include "io/load.h"
#include "nn/ops.h"
#include "nn/random_model.h"
#include "passes/fold.h"
#include "passes/pass.h"
#include "pass_cases.h"
#include "test_util.h"

namespace tq {

using namespace passtest;

namespace {

const nlohmann::json kSym = {{"pass", "symmetrize"}};
nlohmann::json step_fold(int bits, double clip = 1.0, const char* sites = "qkv_in,up_in,down_in,k") {
  return {{"pass", "step_fold"}, {"a_bits", bits}, {"clip", clip}, {"fold_sites", sites}};
}

}  // namespace

TEST(Recipe, MethodRecipesExpand) {
  Recipe ot = parse_recipe("w6a6-outliertune");
  ASSERT_EQ(ot.steps.size(), 3u);
  EXPECT_EQ(ot.steps[0].first->name, "symmetrize");
  EXPECT_EQ(ot.steps[1].first->name, "step_fold");
  EXPECT_EQ(ot.steps[1].second["a_bits"], 6);
  EXPECT_EQ(ot.steps[2].second["sites"], "o_in,down_in,q,k,v");
  EXPECT_EQ(ot.steps[2].second["a_gran"], "token_head");
  EXPECT_EQ(ot.steps[2].second["w_bits"], 6);
  override_param(ot, "symmetrize", false);
  EXPECT_EQ(ot.steps[0].second["symmetrize"], false);
  Recipe sq = parse_recipe("w8a8-smoothquant");
  ASSERT_EQ(sq.steps.size(), 2u);
  EXPECT_EQ(sq.steps[0].second["alpha"], 0.5);
  EXPECT_EQ(sq.steps[1].second["sites"], "qkv_in,o_in,up_in,down_in,q,k,v");
  EXPECT_THROW(parse_recipe("w9a8-outliertune"), Error);
}

// §6.4 item 15: symmetrization is exact and centres every channel.
TEST(OutlierTune, SymmetrizationIsExactAndCentres) {
  test::TempDir d;
  for (const Case& c : cases(d)) {
    Folded r = run_passes(c, {kSym});
    bool same;
    double err = logits_error(c.fp, r.m, r.plan, c.calib, &same);
    EXPECT_LT(err, 1e-5) << c.name;
    EXPECT_TRUE(same) << c.name;
    // Re-measure the mean per-call mid-range on the same data.
    Observer obs;
    obs.sites = {Site::qkv_in, Site::up_in};
    observe(r.m, r.plan, c.calib, obs);
    double worst = 0, before_max = 0;
    for (auto& [key, st] : obs.stats)
      for (int j = 0; j < st.cols; j++) {
        double range = (double)st.col_max[j] - st.col_min[j];
        worst = std::max(worst, std::fabs(st.col_mid_sum[j] / st.calls) / range);
      }
    for (auto& f : r.plan.notes["symmetrize"]["folds"]) before_max = std::max(before_max, f.at("max_abs_centre").template get<double>());
    std::printf("%s: logits rel err %.2e; centre before up to %.3g, after max |c|/range %.2e\n", c.name.c_str(), err,
                before_max, worst);
    EXPECT_LE(worst, 1e-6) << c.name;
    EXPECT_GT(before_max, 1e-3) << c.name;  // there was something to centre
  }
}

// §6.2 item 8 on the bundled models (and the random ones): the whole OutlierTune
// fold (symmetrize + step fold, with the smoothing at down_in and o_in and the k balance)
// and SmoothQuant keep logits and argmax.
TEST(OutlierTune, WholeModelFoldsKeepTheFloatFunction) {
  test::TempDir d;
  std::vector<Case> all = cases(d);
  if (is_directory(test::shared("models/vit-mnist-sonjuhy"))) {
    Model m = load_model(test::shared("models/vit-mnist-sonjuhy"));
    CalibData c = load_calib(parse_data_spec("mnist:" + test::shared("data/mnist") + "?from=0.9&limit=32"), m);
    all.push_back({"vit-mnist-sonjuhy", std::move(m), std::move(c)});
  }
  for (const Case& c : all) {
    for (auto& [what, passes] : {std::pair<const char*, std::vector<nlohmann::json>>{"outliertune", {kSym, step_fold(8)}},
                                 {"outliertune, every fold site", {kSym, step_fold(8, 1.0, "qkv_in,up_in,down_in,o_in,k")}},
                                 {"smoothquant", {{{"pass", "smoothquant"}}}}}) {
      Folded r = run_passes(c, passes);
      bool same;
      double err = logits_error(c.fp, r.m, float_only(r.plan), c.calib, &same);
      std::printf("%s, %s folds: logits rel err %.2e, argmax %s\n", c.name.c_str(), what, err,
                  same ? "identical" : "differs");
      EXPECT_LT(err, 1e-5) << c.name << " " << what;
      EXPECT_TRUE(same) << c.name << " " << what;
    }
  }
}

// §6.4 item 17: after the step fold the site values of the float model on the
// calibration data are codes within ±Qs, the extreme channel at exactly Qs. In the
// simulation upstream quantization noise may push a few values past Qs: they are
// clamped and counted; a clip ratio makes the quantizer clamp more, counted too.
TEST(OutlierTune, CodesStayWithinQsOnCalibrationData) {
  test::TempDir d;
  for (const Case& c : cases(d)) {
    for (int bits : {8, 6}) {
      Folded r = run_passes(c, {kSym, step_fold(bits)});
      EXPECT_EQ(r.plan.sites.at("blk.0.qkv_in").scale, std::vector<float>{1.0f});
      const int qs = (1 << (bits - 1)) - 1;
      Capture cap = capture(r.m, float_only(r.plan), c.calib);
      double amax = 0;
      for (auto& [key, v] : cap.values)
        for (float x : v) amax = std::max(amax, std::fabs((double)std::nearbyint(x)));
      EXPECT_EQ(amax, qs) << c.name << " bits " << bits;
      SimHook sim(r.plan, r.m.cfg.n_layers);
      run_calibration(r.m, c.calib, sim);
      Folded clipped = run_passes(c, {kSym, step_fold(bits, 0.8)});
      SimHook csim(clipped.plan, clipped.m.cfg.n_layers);
      run_calibration(clipped.m, c.calib, csim);
      std::printf("%s W%d: largest float code %g; clamped in simulation %lld, with clip 0.8 %lld\n", c.name.c_str(),
                  bits, amax, (long long)sim.saturated, (long long)csim.saturated);
      EXPECT_GT(csim.saturated, sim.saturated) << c.name;
    }
  }
}

// §6.4 item 16: the step fold pre-executes the dequantization. With float weights,
// (W·diag(Δ))·q + b' equals W·(Δ ⊙ q) + b'; with quantized weights an int32 reference
// matmul on the codes (K2 without the kernels branch) equals the fake-quant simulation.
// Follow-up: compare the runtime's K2 on whole-model logits when src/kernels lands.
TEST(OutlierTune, DequantizationIsPreExecutedInTheWeights) {
  test::TempDir d;
  for (const Case& c : cases(d)) {
    for (int bits : {8, 6}) {
      Folded sym = run_passes(c, {kSym});
      // The paper's sites: the consumers of qkv_in and up_in change by their columns alone.
      Folded ot = run_passes(c, {kSym, step_fold(bits, 1.0, "qkv_in,up_in")});
      Folded full = run_passes(c, {kSym, step_fold(bits, 1.0, "qkv_in,up_in"),
                                   per_token_rtn_step(bits, bits, "o_in,down_in,q,k,v")});
      Capture before = capture(sym.m, sym.plan, c.calib), codes = capture(full.m, full.plan, c.calib);
      Model qw = simulate_weights(full.m, full.plan);
      double worst_float = 0, worst_int = 0;
      int64_t worst_acc = 0;
      for (int l = 0; l < c.fp.cfg.n_layers; l++)
        for (Site s : kNormFed) {
          const std::string key = site_key(s, l);
          const std::vector<float>& q = codes.values.at(key);
          const int C = c.fp.cfg.dim, N = (int)(q.size() / C);
          std::vector<double> step = steps_of(before.values.at(key), C, bits);
          std::vector<float> dq(q.size());
          for (size_t i = 0; i < q.size(); i++) dq[i] = (float)(step[i % C] * q[i]);
          auto folded = site_consumers(ot.m.blocks[l], s), orig = site_consumers(sym.m.blocks[l], s),
               quant = site_consumers(qw.blocks[l], s);
          for (size_t k = 0; k < folded.size(); k++) {
            const Linear &lf = *folded[k].lin, &lo = *orig[k].lin, &lq = *quant[k].lin;
            const int O = lf.out();
            const float* bias = lf.b.empty() ? nullptr : lf.b.ptr();
            std::vector<float> y1((size_t)N * O), y2((size_t)N * O), ysim((size_t)N * O), yint((size_t)N * O);
            linear_forward(y1.data(), q.data(), lf.w.ptr(), bias, N, C, O);
            linear_forward(y2.data(), dq.data(), lo.w.ptr(), bias, N, C, O);
            worst_float = std::max(worst_float, test::rel_err(y1, y2));
            // Integer path: s8 weight codes × s8 activation codes in int32, epilogue s_o·acc + b'.
            const QuantSpec& ws = full.plan.weights.at(fmt::format("blk.{}.{}.weight", l, folded[k].name));
            std::vector<int32_t> wq((size_t)O * C), aq(q.begin(), q.end());
            quantize_codes(lf.w.ptr(), O, C, ws, wq.data());
            for (int n = 0; n < N; n++)
              for (int o = 0; o < O; o++) {
                int32_t acc = 0;
                for (int j = 0; j < C; j++) acc += wq[(size_t)o * C + j] * aq[(size_t)n * C + j];
                worst_acc = std::max<int64_t>(worst_acc, std::abs(acc));
                yint[(size_t)n * O + o] = ws.scale[o] * (float)acc + (bias ? bias[o] : 0.0f);
              }
            linear_forward(ysim.data(), q.data(), lq.w.ptr(), bias, N, C, O);
            worst_int = std::max(worst_int, test::rel_err(yint, ysim));
          }
        }
      std::printf("%s W%dA%d: float pre-executed vs reference %.2e; int32 path vs simulation %.2e (|acc| ≤ %lld)\n",
                  c.name.c_str(), bits, bits, worst_float, worst_int, (long long)worst_acc);
      EXPECT_LT(worst_float, 1e-6) << c.name;
      EXPECT_LT(worst_int, 1e-5) << c.name;
    }
  }
}

// §6.4 item 18: the norm epilogue (γ⊘Δ, (β−c)⊘Δ, then round) gives the codes of
// norm → subtract c → divide by Δ → round, ties aside.
TEST(OutlierTune, NormEpilogueGivesTheSubtractDivideRoundCodes) {
  test::TempDir d;
  for (const Case& c : cases(d)) {
    const int bits = 8, C = c.fp.cfg.dim;
    Folded ot = run_passes(c, {kSym, step_fold(bits)});
    Capture fp = capture(c.fp, {}, c.calib), folded = capture(ot.m, float_only(ot.plan), c.calib);
    Observer obs;
    run_calibration(c.fp, c.calib, obs);
    CodeDiff total;
    for (auto& [key, x] : fp.values) {
      const SiteStats& st = obs.stats.at(key);
      std::vector<float> centred(x.size());
      for (size_t i = 0; i < x.size(); i++) centred[i] = (float)(x[i] - st.col_mid_sum[i % C] / st.calls);
      std::vector<double> step = steps_of(centred, C, bits), ref(x.size());
      for (size_t i = 0; i < x.size(); i++) ref[i] = ((double)x[i] - st.col_mid_sum[i % C] / st.calls) / step[i % C];
      std::vector<float> got(folded.values.at(key));
      for (float& v : got) v = std::nearbyint(v);
      CodeDiff cd = compare_codes(ref, got, 1e-3);
      total.total += cd.total, total.mismatches += cd.mismatches, total.not_at_tie += cd.not_at_tie;
    }
    std::printf("%s: %lld of %lld codes differ (all at ties: %s)\n", c.name.c_str(), (long long)total.mismatches,
                (long long)total.total, total.not_at_tie ? "no" : "yes");
    EXPECT_LE(total.mismatches, 1e-4 * total.total) << c.name;
    EXPECT_EQ(total.not_at_tie, 0) << c.name;
  }
}

// §6.4 item 19: SmoothQuant with α = 1 and a per-tensor symmetric quantizer of step
// 1/Qs produces the codes of OutlierTune without symmetrization or clipping.
TEST(OutlierTune, SmoothQuantAlphaOneIsTheStepFold) {
  test::TempDir d;
  for (const Case& c : cases(d)) {
    for (int bits : {8, 6}) {
      const int qs = (1 << (bits - 1)) - 1;
      Folded sq = run_passes(c, {{{"pass", "smoothquant"}, {"alpha", 1.0}}});
      QuantPlan sq_plan = sq.plan;
      for (int l = 0; l < c.fp.cfg.n_layers; l++)
        for (Site s : kNormFed) {
          QuantSpec& q = sq_plan.sites[site_key(s, l)];  // keeps a post-norm transform
          q.bits = bits, q.scheme = Scheme::sym, q.gran = Gran::tensor, q.scale = {1.0f / qs};
        }
      Folded ot = run_passes(c, {{{"pass", "symmetrize"}, {"symmetrize", false}}, step_fold(bits)});
      // Float site values of both models (no cascade of one tie through later layers), then each quantizer.
      Capture a = capture(sq.m, float_only(sq_plan), c.calib), b = capture(ot.m, float_only(ot.plan), c.calib);
      CodeDiff total;
      for (auto& [key, v] : a.values) {
        const QuantSpec& sq_spec = sq_plan.sites.at(key);
        std::vector<double> ref(v.size());
        std::vector<float> got(b.values.at(key));
        for (size_t i = 0; i < v.size(); i++) ref[i] = (double)v[i] / sq_spec.scale[0];
        for (float& x : got) x = (float)q_sym(x, 1.0f, bits);
        CodeDiff cd = compare_codes(ref, got, 1e-3);
        total.total += cd.total, total.mismatches += cd.mismatches, total.not_at_tie += cd.not_at_tie;
      }
      std::printf("%s W%dA%d: %lld of %lld codes differ\n", c.name.c_str(), bits, bits, (long long)total.mismatches,
                  (long long)total.total);
      EXPECT_LE(total.mismatches, 1e-4 * total.total) << c.name;
      EXPECT_EQ(total.not_at_tie, 0) << c.name;
    }
  }
}

// The α search scores each grid point with the recipe's own quantizers: redoing the
// chosen α by hand reproduces the recorded score and the model bit for bit.
TEST(SmoothQuant, AlphaSearchPicksTheBestScoredGridPoint) {
  test::TempDir d;
  Case c = std::move(cases(d)[0]);
  const nlohmann::json rtn = per_token_rtn_step(6, 6, "qkv_in,o_in,up_in,down_in,q,k,v");
  Folded s = run_passes(c, {{{"pass", "smoothquant"}, {"search", true}, {"search_step", 0.25}, {"w_bits", 6}, {"a_bits", 6}}, rtn});
  const nlohmann::json& note = s.plan.notes["smoothquant"];
  ASSERT_EQ(note["search"]["grid"].size(), 5u);
  double best = INFINITY, alpha = note["alpha"];
  for (auto& g : note["search"]["grid"]) best = std::min(best, g["kld"].get<double>());
  Folded fixed = run_passes(c, {{{"pass", "smoothquant"}, {"alpha", alpha}, {"w_bits", 6}, {"a_bits", 6}}, rtn});
  Model q = simulate_weights(fixed.m, fixed.plan);
  SimHook sim(fixed.plan, q.cfg.n_layers);
  EXPECT_EQ(calib_kld(q, sim, c.fp, c.calib), best);
  EXPECT_EQ(s.plan.to_json(true)["weights"], fixed.plan.to_json(true)["weights"]);
  EXPECT_EQ(note["folds"].size(), 2u * c.fp.cfg.n_layers);
}

// The quantize command: the plan records every fold with its weight SQNR, the
// figures count saturation, and the saved model evaluates to the same figures.
TEST(OutlierTune, QuantizeCommandRecordsFoldsAndSaturation) {
  test::TempDir d;
  Model m = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 3, 0.2f);
  write_gguf_f32(m, d.file("m.gguf"));
  std::string text = test::write_sample_text(d);
  auto r = test::run_cli("quantize " + d.file("m.gguf") + " --recipe w6a6-outliertune --set clip=0.5 --calib '" + text +
                         "?limit=16' --eval '" + text + "?from=0.5' -o " + d.file("q") + " --report " + d.file("rep") +
                         " --json " + d.file("f.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto figures = nlohmann::json::parse(read_text_file(d.file("f.json")));
  EXPECT_GT(figures["saturated"].get<int64_t>(), 0);
  EXPECT_NE(r.err.find("activation values clamped"), std::string::npos);
  auto report = nlohmann::json::parse(read_text_file(d.file("rep/report.json")));
  EXPECT_EQ(report["saturated"], figures["saturated"]);
  const auto& folds = report["notes"]["step_fold"]["folds"];
  ASSERT_EQ(folds.size(), 8u);  // per layer qkv_in, up_in, down_in (through ffn_up), k (against q)
  EXPECT_EQ(folds[0]["site"], "blk.0.qkv_in");
  EXPECT_TRUE(folds[1]["weights"]["blk.0.ffn_gate.weight"].contains("sqnr_db_after"));
  EXPECT_EQ(folds[2]["site"], "blk.0.down_in");
  EXPECT_EQ(folds[2]["into"], "ffn_up rows");
  EXPECT_EQ(folds[3]["site"], "blk.0.k");
  EXPECT_EQ(report["notes"]["step_fold"]["clip"], 0.5);
  EXPECT_EQ(report["notes"]["symmetrize"]["folds"].size(), 4u);
  EXPECT_NE(read_text_file(d.file("rep/report.md")).find("| step_fold | blk.1.ffn_up.weight |"), std::string::npos);
  auto plan = nlohmann::json::parse(read_text_file(d.file("q/plan.json")));
  EXPECT_EQ(plan["sites"]["blk.1.up_in"]["scale"], nlohmann::json::array({1.0}));
  EXPECT_EQ(plan["sites"]["blk.1.o_in"]["dynamic"], true);
  EXPECT_EQ(plan["sites"]["blk.1.down_in"]["dynamic"], true);  // per token over the folded codes
  EXPECT_EQ(plan["sites"]["blk.1.k"]["gran"], "group");         // per token and head
  EXPECT_EQ(plan["sites"]["blk.1.k"]["group"], 8);
  auto again = test::run_cli("eval " + d.file("q") + " --simulate --data '" + text + "?from=0.5' --json -");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["ppl"], figures["eval"]["ppl"]);
  EXPECT_EQ(nlohmann::json::parse(again.out)["saturated"], figures["saturated"]);
}

// An ordering that must hold on the bundled LM (docs/methods.md §2.8, §6.8): at W6A6 OutlierTune
// loses less than per-tensor RTN on the same sites (calibration and evaluation slices disjoint).
TEST(OutlierTune, BeatsPerTensorRtnAtW6A6OnStories260K) {
  TQ_REQUIRE_SHARED(kStories);
  Model fp = load_model(test::shared(kStories));
  CalibData calib = load_calib(parse_data_spec(test::shared(kStoriesText) + "?from=0.9&limit=32"), fp);
  DataSpec eval = parse_data_spec(test::shared(kStoriesText) + "?to=0.9&limit=64");
  auto kld = [&](const std::string& recipe, const std::vector<std::pair<std::string, nlohmann::json>>& sets) {
    Recipe r = parse_recipe(recipe);
    for (auto& [k, v] : sets) override_param(r, k, v);
    Model m = fp;
    QuantPlan plan;
    PassContext ctx(m, plan, calib);
    run_recipe(r, ctx);
    Model q = simulate_weights(m, plan);
    SimHook sim(plan, q.cfg.n_layers);
    return evaluate(q, eval, sim, &fp).json["kld_mean"].get<double>();
  };
  double ot = kld("w6a6-outliertune", {});
  double rtn = kld("w6a6-rtn", {{"sites", "qkv_in,o_in,up_in,down_in,q,k,v"}, {"head", false}});
  std::printf("stories260K W6A6 KLD: OutlierTune %.4f, per-tensor RTN (min-max) %.4f\n", ot, rtn);
  EXPECT_LT(ot, 0.5 * rtn);
}

}  // namespace tq
