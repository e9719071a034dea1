// docs/methods.md §6.5 (items 20–25): HQQ, the features, the detector, the
// allocation and the small-model rule; and the budget allocator.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "eval/evaluate.h"
#include "io/load.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "quant/boost.h"
#include "quant/budget.h"
#include "quant/features.h"
#include "quant/hqq.h"
#include "test_util.h"

namespace tq {

namespace {

std::vector<float> samples(int n, uint64_t seed, char kind) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) {
    if (kind == 'n') x = (float)r.normal();
    if (kind == 'u') x = r.uniform();
    if (kind == 'l') {  // Laplace by inversion
      double u = r.uniform_f64() - 0.5;
      x = (float)(-(u < 0 ? -1 : 1) * std::log(1 - 2 * std::fabs(u)));
    }
  }
  return v;
}

// Feature sequences: 32 layers, ~1 % multiplicative noise, planted changes.
std::vector<double> noisy(int n, uint64_t seed, double base = 1.0) {
  Rng r(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = base * (1 + 0.01 * r.normal());
  return v;
}

std::string write_text(const test::TempDir& d) {
  std::string text;
  for (int i = 0; i < 40; i++) text += "once upon a time " + std::to_string(i * 53 % 97) + " a cat sat on the mat\n";
  std::ofstream(d.file("t.txt")) << text;
  return d.file("t.txt");
}

// A model with one heavy-tailed (Laplace-cubed) linear planted at `layer` in ffn_down.
Model planted_model(int layers, int layer, uint64_t seed) {
  Model m = random_model(llama_config(64, layers, 4, 2, 96, 300, 64), seed, 0.05f);
  if (layer >= 0) {
    Rng r(seed + 1);
    for (float& w : m.blocks[layer].down.w.data) {
      double u = r.uniform_f64() - 0.5, l = -(u < 0 ? -1 : 1) * std::log(1 - 2 * std::fabs(u));
      w = (float)(0.02 * l * l * l);
    }
  }
  return m;
}

QuantPlan run(Model& m, const std::string& recipe, const CalibData& cd = {}, uint64_t seed = 0,
              const std::vector<std::pair<std::string, nlohmann::json>>& sets = {}) {
  QuantPlan plan;
  Recipe r = parse_recipe(recipe);
  for (auto& [k, v] : sets) override_param(r, k, v);
  PassContext ctx(m, plan, cd, seed);
  run_recipe(r, ctx);
  return plan;
}

}  // namespace

// ---- item 20: kurtosis ----
TEST(Kurtosis, SeededSamplesAndConstant) {
  auto n = samples(1000000, 1, 'n'), u = samples(1000000, 2, 'u'), l = samples(1000000, 3, 'l');
  EXPECT_NEAR(kurtosis(n.data(), n.size()), 3.0, 0.02);
  EXPECT_NEAR(kurtosis(u.data(), u.size()), 1.8, 0.01);
  EXPECT_NEAR(kurtosis(l.data(), l.size()), 6.0, 0.3);
  std::vector<float> c(1000, 0.25f);
  EXPECT_TRUE(std::isnan(kurtosis(c.data(), c.size())));
  // Hand-computed: {0, 0, 0, 4}: mean 1, m2 = (1+1+1+9)/4 = 3, m4 = (1+1+1+81)/4 = 21, K = 21/9.
  std::vector<float> h = {0, 0, 0, 4};
  EXPECT_DOUBLE_EQ(kurtosis(h.data(), 4), 21.0 / 9.0);
  // A constant matrix (NaN) is skipped: only the planted step is flagged.
  auto v = noisy(32, 4, 3.0);
  v[5] = NAN;
  for (int i = 20; i < 32; i++) v[i] += 2.0;
  EXPECT_EQ(detect_jumps(v, JumpMode::difference, 0).layers, std::vector<int>({20}));
}

// ---- item 21: the detector ----
TEST(Detector, PlantedStepAndModes) {
  auto v = noisy(32, 5);
  for (int i = 17; i < 32; i++) v[i] *= 10;
  Jumps j = detect_jumps(v, JumpMode::ratio, 2);
  EXPECT_EQ(j.rule, "trimmed");
  EXPECT_EQ(j.layers, std::vector<int>({17}));
  auto a = noisy(32, 5, 3.0);  // an additive step for difference mode
  for (int i = 17; i < 32; i++) a[i] += 1.0;
  EXPECT_EQ(detect_jumps(a, JumpMode::difference, 2).layers, std::vector<int>({17}));
  // Geometric growth: constant ratios (nothing in ratio mode), growing differences (the last ones).
  std::vector<double> g(32);
  for (int i = 0; i < 32; i++) g[i] = std::pow(1.3, i);
  EXPECT_TRUE(detect_jumps(g, JumpMode::ratio, 0).layers.empty());
  auto dl = detect_jumps(g, JumpMode::difference, 0).layers;
  ASSERT_FALSE(dl.empty());
  EXPECT_EQ(dl[0], 31);
}

TEST(Detector, ZOfExactlyThreeIsNotFlagged) {
  // Steps: 14 × (+1), 15 × (−1), one 0 and the candidate at step 16. Trimming one per end drops a −1
  // and the candidate, leaving mean 0 and sample std exactly 1 (Σd² = 28 over 28 degrees of freedom).
  auto seq = [](double cand) {
    std::vector<double> d;
    for (int i = 0; i < 31; i++) d.push_back(i == 16 ? cand : i == 30 ? 0.0 : i % 2 ? -1.0 : 1.0);
    std::vector<double> v = {10.0};
    for (double x : d) v.push_back(v.back() + x);
    return v;
  };
  Jumps at = detect_jumps(seq(3.0), JumpMode::difference, 0);
  EXPECT_EQ(at.center, 0.0);
  EXPECT_EQ(at.spread, 1.0);
  EXPECT_EQ(at.z[16], 3.0);
  EXPECT_TRUE(at.layers.empty());
  EXPECT_EQ(detect_jumps(seq(3.001), JumpMode::difference, 0).layers, std::vector<int>({17}));
}

TEST(Detector, TopMKeepsTheHighestZ) {
  // Steps +3 (into 15), −2.5 (into 8), +2 (into 25): trimming drops the largest and the smallest.
  auto v = noisy(32, 6, 5.0);
  for (int i = 8; i < 32; i++) v[i] -= 2.5;
  for (int i = 15; i < 32; i++) v[i] += 3.0;
  for (int i = 25; i < 32; i++) v[i] += 2.0;
  EXPECT_EQ(detect_jumps(v, JumpMode::difference, 2).layers, std::vector<int>({15, 8}));
  EXPECT_EQ(detect_jumps(v, JumpMode::difference, 1).layers, std::vector<int>({15}));
  EXPECT_EQ(detect_jumps(v, JumpMode::difference, 0).layers, std::vector<int>({15, 8, 25}));
}

TEST(Detector, TrimmedStatsMatchScipyMstats) {
  // Hand-computed golden (SciPy mstats.trimmed_mean/trimmed_std, limits (0.05, 0.05), ddof 1):
  // 1..19 and 100, n = 20 → one value dropped per end → 2..19: mean 10.5, var 484.5/17 = 28.5.
  std::vector<double> x;
  for (int i = 1; i <= 19; i++) x.push_back(i);
  x.push_back(100);
  double mean, sd;
  trimmed_stats(x, 0.05, mean, sd);
  EXPECT_DOUBLE_EQ(mean, 10.5);
  EXPECT_NEAR(sd, 5.338539126015656, 1e-12);
  // ⌊0.05·n⌋ per end against an independent transcription (sort, drop k each end, two-pass moments).
  for (int n : {7, 19, 20, 31, 39, 40, 61}) {
    Rng r(n);
    std::vector<double> v(n);
    for (auto& e : v) e = std::exp(2 * r.normal());
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    int k = n / 20;  // ⌊0.05·n⌋
    double m = 0, q = 0;
    for (int i = k; i < n - k; i++) m += s[i];
    m /= n - 2 * k;
    for (int i = k; i < n - k; i++) q += (s[i] - m) * (s[i] - m);
    trimmed_stats(v, 0.05, mean, sd);
    EXPECT_NEAR(mean, m, 1e-12 * std::fabs(m)) << n;
    EXPECT_NEAR(sd, std::sqrt(q / (n - 2 * k - 1)), 1e-12 * sd) << n;
  }
}

// ---- item 22: the small-model rule ----
TEST(Detector, SmallModelRuleEngagesBelowTwelveLayers) {
  double med, sd;
  robust_stats({1.0, 1.1, 1.2, 10.0}, med, sd);  // median 1.15, |dev| {0.15, 0.05, 0.05, 8.85}: MAD 0.1
  EXPECT_NEAR(med, 1.15, 1e-12);
  EXPECT_NEAR(sd, 0.14826, 1e-12);
  std::vector<double> v = {2.0, 2.1, 2.2, 2.3, 12.3};  // 5 layers, a jump into layer 4
  Jumps j = detect_jumps(v, JumpMode::difference, 2);
  EXPECT_EQ(j.rule, "robust");
  EXPECT_EQ(j.threshold, 2.5);
  EXPECT_EQ(j.layers, std::vector<int>({4}));
  // The trimmed rule can never fire on 4 steps (the largest sample z of 4 points is 1.5).
  Jumps t = detect_jumps(v, JumpMode::difference, 2, 0);
  EXPECT_EQ(t.rule, "trimmed");
  EXPECT_TRUE(t.layers.empty());
  for (double z : t.z) EXPECT_LE(z, 1.5 + 1e-12);
  // Recorded in the plan.
  Model small = planted_model(5, 4, 7), deep = planted_model(24, 23, 8);
  QuantPlan ps = run(small, "w4-kurtboost"), pd = run(deep, "w4-kurtboost");
  EXPECT_NE(ps.notes["boost"]["rule"].get<std::string>().find("robust"), std::string::npos);
  EXPECT_EQ(ps.notes["boost"]["modules"]["ffn_down"]["rule"], "robust");
  EXPECT_EQ(pd.notes["boost"]["modules"]["ffn_down"]["rule"], "trimmed");
  EXPECT_EQ(ps.notes["boost"]["modules"]["ffn_down"]["boosted"], nlohmann::json::array({4}));
  EXPECT_EQ(pd.notes["boost"]["modules"]["ffn_down"]["boosted"], nlohmann::json::array({23}));
}

// ---- item 23: allocation and memory ----
TEST(Allocation, FollowsTheLadderAndCountsMemory) {
  const auto& l = hqq_ladder();
  std::vector<std::string> names;
  std::vector<double> bpp;
  for (auto& r : l) names.push_back(r.name()), bpp.push_back(std::round(bpp_hqq(r) * 100) / 100);
  EXPECT_EQ(names, std::vector<std::string>({"b2g128", "b2g64", "b2g32", "b3g128", "b3g64", "b3g32", "b4g128",
                                             "b4g64", "b4g32", "b8g128", "b8g64", "b8g32"}));
  EXPECT_EQ(bpp, std::vector<double>({2.13, 2.25, 2.51, 3.13, 3.25, 3.51, 4.13, 4.25, 4.51, 8.13, 8.25, 8.51}));
  int b4g64 = ladder_index("b4g64"), b3g128 = ladder_index("b3g128");
  EXPECT_EQ(l[boosted_rung(b4g64, 1, 12)].name(), "b4g32");
  EXPECT_EQ(l[boosted_rung(b4g64, 2, 12)].name(), "b8g128");
  EXPECT_EQ(l[boosted_rung(b4g64, 3, 12)].name(), "b8g64");
  EXPECT_EQ(l[boosted_rung(b3g128, 2, 12)].name(), "b3g32");
  EXPECT_EQ(l[boosted_rung(b3g128, 3, 12)].name(), "b4g128");
  EXPECT_EQ(boosted_rung(10, 3, 12), 11);  // clamped at the top rung
  EXPECT_EQ(bpp_ours(l[b4g64]), 4.5);

  Model m = planted_model(24, 23, 9);
  QuantPlan p = run(m, "w4-kurtboost");
  double bytes = 0;
  int boosted = 0;
  for (int layer = 0; layer < 24; layer++)
    for (auto& nl : block_linears(m.blocks[layer])) {
      const QuantSpec& s = p.weights.at("blk." + std::to_string(layer) + "." + nl.name + ".weight");
      auto flagged = p.notes["boost"]["modules"][nl.name]["flagged"];
      bool up = std::find(flagged.begin(), flagged.end(), layer) != flagged.end();
      EXPECT_EQ(s.bits, up ? 8 : 4) << layer << nl.name;
      EXPECT_EQ(s.group, up ? 128 : 64) << layer << nl.name;
      if (up) {
        boosted++;
        bytes += (double)nl.lin->w.numel() *
                 ((8 + 16.0 / 128 + 32.0 / (128 * 128)) - (4 + 16.0 / 64 + 32.0 / (64 * 128))) / 8;
      }
    }
  EXPECT_EQ(p.notes["boost"]["modules"]["ffn_down"]["flagged"], nlohmann::json::array({23}));
  EXPECT_GE(boosted, 1);
  EXPECT_NEAR(p.notes["boost"]["memory_increase_bytes"]["hqq_meta8"].get<double>(), bytes, 1e-9 * bytes);
}

// ---- item 24: sensitivity ----
TEST(Sensitivity, IdentityIsZeroAndPartsAreIndependent) {
  test::TempDir d;
  Model m = random_model(llama_config(32, 3, 4, 2, 48, 300, 64), 11, 0.1f);
  CalibData cd = load_calib(parse_data_spec(write_text(d) + "?limit=6"), m);
  auto ident = sensitivity(m, cd.batches, [](const std::string&, const Tensor& w) { return w; });
  for (auto& row : ident)
    for (double s : row) EXPECT_EQ(s, 0.0);
  auto hqq4 = [](const std::string&, const Tensor& w) {
    Tensor q = w;
    fake_quant(q.ptr(), (int)w.dim(0), (int)w.dim(1), hqq_fit(w, 4, 16));
    return q;
  };
  auto all = sensitivity(m, cd.batches, hqq4);
  // Quantizing only one module type changes exactly the score of its part, to the same value.
  for (const char* only : {"attn_output", "ffn_down"}) {
    auto one = sensitivity(m, cd.batches, [&](const std::string& name, const Tensor& w) {
      return name.find(only) != std::string::npos ? hqq4(name, w) : w;
    });
    for (int l = 0; l < 3; l++)
      for (int p = 0; p < kNumParts; p++) {
        bool mine = (Part)p == part_of(only);
        EXPECT_EQ(one[l][p], mine ? all[l][p] : 0.0) << only << " " << l << " " << p;
        if (mine) {
          EXPECT_GT(one[l][p], 0.0);
        }
      }
  }
}

TEST(Sensitivity, MonotoneInBitsOnStories260K) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  CalibData cd = load_calib(
      parse_data_spec(test::shared("data/tinystories/tinystories_valid_head.txt") + "?from=0.9&limit=16"), m);
  auto at = [&](int bits) {
    return sensitivity(m, cd.batches, [&](const std::string&, const Tensor& w) {
      Tensor q = w;
      fake_quant(q.ptr(), (int)w.dim(0), (int)w.dim(1), hqq_fit(w, bits, 64));
      return q;
    });
  };
  auto s8 = at(8), s4 = at(4), s3 = at(3);
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (int p = 0; p < kNumParts; p++) {
      EXPECT_LE(s8[l][p], s4[l][p]) << l << part_name((Part)p);
      EXPECT_LE(s4[l][p], s3[l][p]) << l << part_name((Part)p);
      EXPECT_GT(s8[l][p], 0.0);
    }
}

TEST(Forward, BlockByBlockEqualsForward) {
  Model m = random_model(llama_config(32, 3, 4, 2, 48, 300, 64), 12, 0.1f);
  std::vector<int32_t> toks = {1, 50, 60, 70, 80, 90, 100};
  Input in;
  in.T = (int)toks.size();
  in.tokens = toks.data();
  struct Grab : Hooks {
    std::vector<std::vector<float>> seen;
    void forward(Site s, int l, float* x, int rows, int cols) override {
      if (s == Site::qkv_in || s == Site::down_in) seen.emplace_back(x, x + (int64_t)rows * cols);
    }
  } a, b;
  Workspace ws, ws2;
  forward(m, in, ws, a);
  forward_embed(m, in, ws2);
  for (int l = 0; l < 3; l++) forward_block(m, l, in, ws2, b);
  EXPECT_EQ(a.seen, b.seen);
}

// ---- item 25: HQQ ----
TEST(Hqq, ZeroIterationsIsMinMaxRtn) {
  auto w = samples(64 * 96, 13, 'n');
  Tensor t({64, 96});
  t.data = w;
  QuantSpec h = hqq_fit(t, 4, 32, {.iters = 0});
  QuantSpec r;
  r.bits = 4, r.scheme = Scheme::asym, r.gran = Gran::group, r.group = 32;
  fit_minmax(t.ptr(), 64, 96, r);
  std::vector<int32_t> ch(w.size()), cr(w.size());
  quantize_codes(t.ptr(), 64, 96, h, ch.data());
  quantize_codes(t.ptr(), 64, 96, r, cr.data());
  EXPECT_EQ(ch, cr);
  EXPECT_EQ(h.zero, r.zero);
  for (size_t p = 0; p < h.scale.size(); p++) EXPECT_NEAR(h.scale[p], r.scale[p], 1e-6f * r.scale[p]);
  // 3 bits: the zero is not rounded; the group's min and max land exactly on codes 0 and 7.
  QuantSpec h3 = hqq_fit(t, 3, 32, {.iters = 0});
  quantize_codes(t.ptr(), 64, 96, h3, ch.data());
  for (int g = 0; g < 3; g++) {
    const float* x = t.row(5) + g * 32;
    int lo = (int)(std::min_element(x, x + 32) - x), hi = (int)(std::max_element(x, x + 32) - x);
    EXPECT_EQ(ch[5 * 96 + g * 32 + lo], 0);
    EXPECT_EQ(ch[5 * 96 + g * 32 + hi], 7);
  }
}

TEST(Hqq, OptimisationNeverWorsensAGroup) {
  for (char kind : {'n', 'l'})
    for (int bits : {2, 3, 4, 8}) {
      auto w = samples(40 * 128, 20 + bits, kind);
      for (int g = 0; g < 40 * 128; g += 128) {
        float s0, z0, s1, z1;
        hqq_group(w.data() + g, 128, bits, {.iters = 0}, s0, z0);
        hqq_group(w.data() + g, 128, bits, {}, s1, z1);
        EXPECT_EQ(s0, s1);
        EXPECT_LE(hqq_group_error(w.data() + g, 128, bits, s1, z1), hqq_group_error(w.data() + g, 128, bits, s0, z0));
      }
    }
  // And it does improve something: the summed error drops at 2 bits.
  auto w = samples(40 * 64, 30, 'n');
  double e0 = 0, e1 = 0;
  for (int g = 0; g < 40 * 64; g += 64) {
    float s, z;
    hqq_group(w.data() + g, 64, 2, {.iters = 0}, s, z);
    e0 += hqq_group_error(w.data() + g, 64, 2, s, z);
    hqq_group(w.data() + g, 64, 2, {}, s, z);
    e1 += hqq_group_error(w.data() + g, 64, 2, s, z);
  }
  EXPECT_LT(e1, 0.98 * e0);
}

TEST(Hqq, ZeroUpdateOnAnEightElementGroup) {
  std::vector<float> w = {0.0f, 0.1f, 0.2f, 0.35f, 0.45f, 0.62f, 0.8f, 1.0f};
  float step, zero;
  hqq_init(w.data(), 8, 2, step, zero);  // s = 3/(1 − 0) = 3, z = −0·3 = 0 (2 bits: not rounded)
  EXPECT_FLOAT_EQ(1.0f / step, 3.0f);
  EXPECT_EQ(zero, 0.0f);
  // Wq = round(3W) = {0,0,1,1,1,2,2,3}; e = W − Wq/3; at β = 10 every |e| < |e|^(−0.3)/10, so
  // We = 0 and z' = mean(Wq − 3W) = (0 − .3 + .4 − .05 − .35 + .14 − .4 + 0)/8 = −0.07.
  EXPECT_NEAR(hqq_zero_update(w.data(), 8, 2, step, zero, 10.0f, 0.7f), -0.07, 1e-6);
  // At β = 100 the shrinkage is partial: the closed form of §3.2 in double precision.
  const int wq[8] = {0, 0, 1, 1, 1, 2, 2, 3};
  double sum = 0;
  for (int i = 0; i < 8; i++) {
    double e = w[i] - wq[i] / 3.0, a = std::fabs(e);
    double we = a > 0 ? (e < 0 ? -1 : 1) * std::max(a - std::pow(a, 0.7 - 1) / 100.0, 0.0) : 0.0;
    sum += wq[i] - (w[i] - we) * 3.0;
  }
  EXPECT_NEAR(hqq_zero_update(w.data(), 8, 2, step, zero, 100.0f, 0.7f), sum / 8, 1e-6);
  EXPECT_NE(sum / 8, -0.07);  // the shrinkage branch was taken
}

TEST(Hqq, ShortLastGroupAndSavedModelAreExact) {
  test::TempDir d;
  Model fp = random_model(llama_config(32, 2, 4, 2, 44, 300, 64), 14, 0.2f);  // down: in = 44 = 32 + 12
  std::string text = write_text(d);
  DataSpec eval = parse_data_spec(text + "?from=0.5");
  CalibData cd = load_calib(parse_data_spec(text + "?limit=8"), fp);
  for (std::string recipe : {"w3-hqq-g32", "w8-hqq-g64", "w4-kurtboost", "w3-sensiboost", "w4-budget"}) {
    Model m = fp;
    QuantPlan plan = run(m, recipe, cd);
    const QuantSpec& down = plan.weights.at("blk.0.ffn_down.weight");
    EXPECT_EQ(down.scale.size(), down.n_params(32, 44)) << recipe;
    Model q = simulate_weights(m, plan);
    EvalResult a = evaluate(q, eval, no_hooks(), &fp);
    save_tquant_dir(d.file("out"), m, plan);
    QuantPlan lp;
    Model loaded = load_tquant_dir(d.file("out"), &lp);
    for (auto& [name, spec] : plan.weights) EXPECT_EQ(spec.zero, lp.weights.at(name).zero) << recipe;
    EvalResult b = evaluate(loaded, eval, no_hooks(), &fp);
    EXPECT_EQ(a.json.dump(), b.json.dump()) << recipe;
    EXPECT_GT(a.json["kld_mean"].get<double>(), 0) << recipe;
  }
  // Fractional zero points survive (HQQ's optimised zeros are not integers at 3 bits).
  Model m = fp;
  QuantPlan plan = run(m, "w3-hqq-g32");
  int fractional = 0;
  for (float z : plan.weights.at("blk.1.attn_q.weight").zero) fractional += z != std::rint(z);
  EXPECT_GT(fractional, 0);
}

// ---- the budget allocator ----
TEST(Budget, GreedyHullPointsAreOptimal) {
  Rng r(15);
  std::vector<std::vector<Choice>> items(4);
  for (auto& it : items)
    for (int k = 0; k < 4; k++) it.push_back({(double)(1 + r.below(6)), std::exp(2 * r.normal())});
  std::vector<Allocation> path;
  allocate_budget(items, 1e9, &path);
  for (size_t i = 1; i < path.size(); i++) {
    EXPECT_GT(path[i].size, path[i - 1].size);
    EXPECT_LT(path[i].error, path[i - 1].error);
  }
  for (auto& pt : path) {  // brute force over 4^4 assignments at the same size budget
    double best = INFINITY;
    for (int code = 0; code < 256; code++) {
      double s = 0, e = 0;
      for (int i = 0; i < 4; i++) s += items[i][(code >> (2 * i)) & 3].size, e += items[i][(code >> (2 * i)) & 3].error;
      if (s <= pt.size + 1e-12) best = std::min(best, e);
    }
    EXPECT_NEAR(pt.error, best, 1e-12 * best);
    Allocation a = allocate_budget(items, pt.size);
    EXPECT_EQ(a.pick, pt.pick);
  }
  EXPECT_THROW(allocate_budget(items, path[0].size - 1), Error);
}

TEST(Budget, PassMeetsTheBudgetAndRecordsTheFrontier) {
  test::TempDir d;
  Model fp = random_model(llama_config(64, 3, 4, 2, 128, 300, 64), 16, 0.1f);
  CalibData cd = load_calib(parse_data_spec(write_text(d) + "?limit=8"), fp);
  for (std::string measure : {"output_kl", "block"}) {
    double prev_err = INFINITY;
    for (double b : {3.0, 4.5, 6.0}) {
      Model m = fp;
      QuantPlan p = run(m, "w4-budget", cd, 0, {{"budget", b}, {"measure", measure}, {"kl_batches", 2}});
      double bpw = p.notes["budget"]["bits_per_weight"];
      EXPECT_LE(bpw, b + 1e-12);
      EXPECT_NEAR(bpw, p.notes["hqq"]["bits_per_weight"]["fp16_params"].get<double>(), 1e-9);
      double err = p.notes["budget"]["error"];
      EXPECT_LT(err, prev_err) << measure;
      prev_err = err;
      EXPECT_GT(p.notes["budget"]["frontier"].size(), 10u);
    }
  }
  Model m = fp;
  EXPECT_THROW(run(m, "w4-budget", cd, 0, {{"budget", 2.0}}), Error);
}

TEST(Boost, RandomSelectionMatchesMemoryAndAvoidsFlaggedLayers) {
  Model m = planted_model(24, 23, 17);
  QuantPlan det = run(m, "w4-kurtboost");
  for (uint64_t seed : {1, 2, 3}) {
    QuantPlan rnd = run(m, "w4-kurtboost", {}, seed, {{"select", "random"}});
    EXPECT_EQ(rnd.notes["boost"]["memory_increase_bytes"], det.notes["boost"]["memory_increase_bytes"]);
    for (auto& [module, j] : rnd.notes["boost"]["modules"].items()) {
      auto flagged = det.notes["boost"]["modules"][module]["flagged"];
      EXPECT_EQ(j["boosted"].size(), flagged.size()) << module;
      for (auto& l : j["boosted"]) EXPECT_EQ(std::find(flagged.begin(), flagged.end(), l), flagged.end()) << module;
    }
  }
}

}  // namespace tq
