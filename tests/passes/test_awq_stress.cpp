// Outlier-stress variants and AWQ: the stress keeps every pre-norm model's float
// function (logits within 1e-5) and refuses what it cannot express; AWQ's search
// never scores worse than round-to-nearest, undoes most of a planted outlier's
// damage, folds exactly, and its Hessian update equals a re-measured Hessian.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "io/ggml_types.h"
#include "pass_cases.h"
#include "passes/awq.h"
#include "passes/site_scale.h"
#include "passes/stress.h"
#include "quant/ggml_fit.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "io/tquant_dir.h"

namespace tq {

using passtest::Case;

namespace {

Tensor q4_0(const std::string&, const Tensor& w, const std::vector<float>& imp) {
  return decode_ggml(encode_ggml(ggml_q4_0, w, imp), w.shape);
}

std::map<std::string, Hessian> hessians(const Model& m, const CalibData& c) {
  HessianObserver obs;
  run_calibration(m, c, obs);
  return obs.h;
}

}  // namespace

TEST(Stress, KeepsTheFloatFunctionOfEveryPreNormModel) {
  test::TempDir d;
  int stressed = 0;
  for (const Case& c : passtest::cases(d, true)) {
    Model m = c.fp;
    StressOptions o;
    o.channels = 3;
    o.factor = 50;
    if (!m.cfg.gated) o.sites = {Site::qkv_in, Site::up_in};
    if (m.cfg.post_norm) {
      EXPECT_THROW(stress_model(m, o), Error) << c.name;
      continue;
    }
    nlohmann::json rec = stress_model(m, o);
    EXPECT_LT(logit_drift(m, c.fp), 1e-5) << c.name;
    EXPECT_EQ(rec["chosen"].size(), (size_t)m.cfg.n_layers * o.sites.size()) << c.name;
    // The chosen channels of qkv_in carry the factor in the norm's gain.
    int ch = rec["chosen"][site_key(Site::qkv_in, 0)][0];
    EXPECT_NEAR(m.blocks[0].attn_norm.g.data[ch] / c.fp.blocks[0].attn_norm.g.data[ch], 50.0f, 1e-3) << c.name;
    Model again = c.fp;
    stress_model(again, o);
    EXPECT_EQ(again.blocks[0].up.w.data, m.blocks[0].up.w.data) << c.name;  // same seed, same bits
    stressed++;
  }
  EXPECT_GE(stressed, 2);
}

TEST(Stress, RefusesWhatItCannotExpress) {
  Config c = llama_config(32, 1, 4, 2, 48, 300, 64);
  c.gated = false;
  c.act = ActKind::gelu;
  Model m = random_model(c, 3, 0.2f);
  StressOptions o;
  EXPECT_THROW(stress_model(m, o), Error);  // down_in without a gated MLP
  o.sites = {Site::o_in};
  EXPECT_THROW(stress_model(m, o), Error);
  o.sites = {Site::qkv_in};
  o.channels = 33;
  EXPECT_THROW(stress_model(m, o), Error);
  o.channels = 2;
  stress_model(m, o);
}

// Outliers at the norm-fed sites (qkv_in, up_in): AWQ's fold brings the stressed layer's error
// most of the way back to the unstressed model's round-to-nearest error (its σ = x̄^α family
// also moves the ordinary channels, so not all the way); the folded model computes the
// same function and the rescaled Hessians are those of the folded model.
TEST(Awq, UndoesNormFedOutliersAndFoldsExactly) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 31, 0.1f);
  CalibData calib = load_calib(parse_data_spec(text + "?limit=16"), fp);
  Model stressed = fp;
  StressOptions so;
  so.channels = 2;
  so.factor = 40;
  so.sites = {Site::qkv_in, Site::up_in};
  stress_model(stressed, so);
  auto h_fp = hessians(fp, calib), h = hessians(stressed, calib);
  Model folded = stressed;
  QuantPlan plan;
  nlohmann::json rec = awq_block(folded, plan, 1, h, q4_0);
  EXPECT_LT(logit_drift(folded, stressed), 1e-5);
  for (const char* key : {"blk.1.qkv_in", "blk.1.up_in"}) {
    double rtn = rec[key]["error_rtn"], awq = rec[key]["error"];
    nlohmann::json plain = awq_block(*std::make_unique<Model>(fp), plan, 1, h_fp, q4_0)[key];
    EXPECT_LT(awq, 0.5 * rtn) << key;                                  // the outliers are found
    EXPECT_LT(awq, 2.5 * plain["error_rtn"].get<double>()) << key;     // near the unstressed layer
    EXPECT_GT(rec[key]["alpha"].get<double>(), 0.3) << key;
    EXPECT_LE(plain["error"].get<double>(), plain["error_rtn"].get<double>()) << key;  // α = 0 is a candidate
  }
  auto re = hessians(folded, calib);
  for (const char* s : {"blk.1.qkv_in", "blk.1.up_in", "blk.1.down_in"}) {
    const Hessian &a = h.at(s), &b = re.at(s);
    double num = 0, den = 0;
    for (size_t i = 0; i < a.xtx.size(); i++) {
      num += (a.xtx[i] - b.xtx[i]) * (a.xtx[i] - b.xtx[i]);
      den += b.xtx[i] * b.xtx[i];
    }
    EXPECT_LT(std::sqrt(num / den), 1e-5) << s;
  }
}

// Outliers pushed into the up rows: at down_in AWQ lowers the error; at up_in the stressed rows'
// errors are large only in up's own output (ffn_down divides them back), so the score needs the
// rows weighted by what reaches the output: with those weights (1/factor² on the stressed rows)
// the search sees the unstressed layer's error.
TEST(Awq, RowWeightsSayWhatReachesTheOutput) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 32, 0.1f);
  CalibData calib = load_calib(parse_data_spec(text + "?limit=16"), fp);
  Model stressed = fp;
  StressOptions so;
  so.channels = 2;
  so.factor = 40;
  so.sites = {Site::down_in};
  nlohmann::json chosen = stress_model(stressed, so)["chosen"];
  auto h_fp = hessians(fp, calib), h = hessians(stressed, calib);
  RowWeights rows;
  rows["blk.1.ffn_up.weight"].assign(96, 1.0);
  for (int c : chosen["blk.1.down_in"]) rows["blk.1.ffn_up.weight"][c] = 1.0 / (40.0 * 40.0);
  Model folded = stressed;
  QuantPlan plan;
  nlohmann::json rec = awq_block(folded, plan, 1, h, q4_0, {}, rows);
  nlohmann::json plain = awq_block(*std::make_unique<Model>(fp), plan, 1, h_fp, q4_0);
  EXPECT_LT(rec["blk.1.down_in"]["error"].get<double>(), rec["blk.1.down_in"]["error_rtn"].get<double>());
  EXPECT_GT(rec["blk.1.down_in"]["alpha"].get<double>(), 0);
  // up_in's readers: gate unchanged, up with the stressed rows ×40 (exactly representable scalings of
  // the same rows), so the weighted round-to-nearest error equals the unstressed one closely.
  EXPECT_NEAR(rec["blk.1.up_in"]["error_rtn"].get<double>(), plain["blk.1.up_in"]["error_rtn"].get<double>(),
              0.02 * plain["blk.1.up_in"]["error_rtn"].get<double>());
  EXPECT_LT(logit_drift(folded, stressed), 1e-5);
}

TEST(Awq, DownInScaleGoesIntoTheUpRows) {
  Model fp = random_model(llama_config(32, 1, 4, 2, 48, 300, 64), 5, 0.2f);
  Model m = fp;
  QuantPlan plan;
  std::vector<double> s(48, 1.0);
  s[7] = 8, s[30] = 0.125;
  scale_site_channels(m, plan, Site::down_in, 0, s);
  EXPECT_EQ(m.blocks[0].up.w.row(7)[3], (float)((double)fp.blocks[0].up.w.row(7)[3] * 8));
  EXPECT_EQ(m.blocks[0].gate.w.data, fp.blocks[0].gate.w.data);
  EXPECT_LT(logit_drift(m, fp), 1e-5);
  plan.weights["blk.0.ffn_down.weight"].bits = 4;
  EXPECT_THROW(scale_site_channels(m, plan, Site::down_in, 0, s), Error);
}

// o_in through v's rows: with 4 query heads on 2 kv heads, heads 0, 1 (and 2, 3) read the same v
// channels, so they share a scale; the float function stays, a split scale is refused.
TEST(SiteScale, OInScaleGoesIntoTheVRowsPerKvHead) {
  Model fp = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 6, 0.2f);
  Model m = fp;
  QuantPlan plan;
  std::vector<double> s(32);
  for (int h = 0; h < 4; h++)
    for (int d = 0; d < 8; d++) s[h * 8 + d] = h < 2 ? 0.3 + d : 1.0 / (1.5 + d);
  scale_site_channels(m, plan, Site::o_in, 1, s);
  EXPECT_EQ(m.blocks[1].v.w.row(8 + 3)[5], (float)((double)fp.blocks[1].v.w.row(8 + 3)[5] / 4.5));  // kv head 1, d 3
  EXPECT_EQ(m.blocks[1].q.w.data, fp.blocks[1].q.w.data);
  EXPECT_LT(logit_drift(m, fp), 1e-5);
  std::vector<double> split = s;
  split[8] *= 2;  // head 1 apart from head 0
  EXPECT_THROW(scale_site_channels(m, plan, Site::o_in, 1, split), Error);
  plan.weights["blk.1.attn_output.weight"].bits = 8;
  EXPECT_THROW(scale_site_channels(m, plan, Site::o_in, 1, s), Error);
}

// k against q: k ⊙ s and q ⊘ s leave every score, under either RoPE layout and with grouped
// kv heads; RoPE mixes a pair's channels, so a scale split within a pair is refused.
TEST(SiteScale, KeyScaleAgainstQueryKeepsEveryScore) {
  for (RopeLayout layout : {RopeLayout::pairs, RopeLayout::halves}) {
    Config c = llama_config(32, 2, 4, 2, 48, 300, 64);
    c.rope_layout = layout;
    Model fp = random_model(c, 7, 0.2f);
    Model m = fp;
    QuantPlan plan;
    std::vector<double> s(c.kv_dim());
    for (int kv = 0; kv < c.n_kv_heads; kv++)
      for (auto [i, j] : rope_pairs(c)) s[kv * 8 + i] = s[kv * 8 + j] = 0.2 + 1.7 * i + kv;
    for (int l = 0; l < 2; l++) scale_key_channels(m, plan, l, s);
    EXPECT_NE(m.blocks[0].k.w.data, fp.blocks[0].k.w.data);
    EXPECT_LT(logit_drift(m, fp), 1e-5) << (layout == RopeLayout::pairs ? "pairs" : "halves");
    std::vector<double> split = s;
    split[rope_pairs(c)[1].second] *= 3;
    EXPECT_THROW(scale_key_channels(m, plan, 0, split), Error);
  }
}

}  // namespace tq

namespace tq {

namespace {

double recipe_kl(const Model& fp, const CalibData& calib, const std::string& recipe, QuantPlan* plan_out = nullptr,
                 Model* m_out = nullptr) {
  Model m = fp;
  QuantPlan plan;
  PassContext ctx(m, plan, calib);
  run_recipe(parse_recipe(recipe), ctx);
  double kl = calib_kld(simulate_weights(m, plan), no_hooks(), fp, calib);
  if (plan_out) *plan_out = plan;
  if (m_out) *m_out = m;
  return kl;
}

}  // namespace

// The passes on tquant's own quantizers: GPTQ loses less than round-to-nearest at the same
// quantizer and its result is an ordinary plan (saved and reloaded bit for bit); AWQ before it
// recovers most of what outlier channels cost.
TEST(GptqPass, BeatsRoundToNearestAndReloadsExactly) {
  test::TempDir d;
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 41, 0.1f);
  CalibData calib = load_calib(parse_data_spec(test::write_sample_text(d) + "?limit=16"), fp);
  QuantPlan plan;
  Model m;
  double gptq = recipe_kl(fp, calib, "w4-gptq-g32", &plan, &m), rtn = recipe_kl(fp, calib, "w4a16-g32-rtn");
  EXPECT_LT(gptq, 0.8 * rtn);
  EXPECT_EQ(plan.weights.at("blk.0.attn_q.weight").group, 32);
  save_tquant_dir(d.file("q"), m, plan);
  QuantPlan back;
  Model loaded = load_tquant_dir(d.file("q"), &back);
  Model sim = simulate_weights(m, plan);
  auto a = named_tensors(loaded), b = named_tensors(sim);
  for (size_t i = 0; i < a.size(); i++) EXPECT_EQ(a[i].t->data, b[i].t->data) << a[i].name;
  EXPECT_EQ(sim.blocks[1].down.w.data, m.blocks[1].down.w.data);  // GPTQ's weights are on the plan's grid
}

TEST(AwqPass, RecoversOutlierChannels) {
  test::TempDir d;
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 42, 0.1f);
  CalibData calib = load_calib(parse_data_spec(test::write_sample_text(d) + "?limit=16"), fp);
  StressOptions so;
  so.channels = 2;
  so.factor = 40;
  so.sites = {Site::qkv_in, Site::up_in};
  Model stressed = fp;
  stress_model(stressed, so);
  double rtn = recipe_kl(stressed, calib, "w4a16-g32-rtn"), awq = recipe_kl(stressed, calib, "w4-awq-g32");
  EXPECT_LT(awq, 0.5 * rtn);
  EXPECT_LT(recipe_kl(stressed, calib, "w4-awq-gptq-g32"), awq);
}

}  // namespace tq
