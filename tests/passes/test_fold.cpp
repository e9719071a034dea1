// The channel-affine fold (docs/methods.md §0.3) leaves the float function unchanged
// (checks §6.2 items 6–7) on every family the project loads.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "io/load.h"
#include "nn/random_model.h"
#include "passes/fold.h"
#include "test_util.h"

namespace tq {

namespace {

constexpr Site kNormFed[] = {Site::qkv_in, Site::up_in};

// A fixed input for any model: varied tokens, or random patches.
struct TestInput {
  std::vector<int32_t> tokens;
  std::vector<float> patches;
  Input in;
};
TestInput test_input(const Config& c, uint64_t seed) {
  TestInput t;
  Rng rng(seed);
  const int B = 2, T = c.embed == EmbedKind::patches ? c.max_seq : std::min(c.max_seq, 12);
  if (c.embed == EmbedKind::patches) {
    t.patches.resize((size_t)B * T * c.patch_dim);
    for (float& v : t.patches) v = (float)rng.normal();
  } else {
    t.tokens.resize(B * T);
    for (int32_t& v : t.tokens) v = (int32_t)rng.below(c.vocab);
  }
  t.in = Input{B, T, t.tokens.empty() ? nullptr : t.tokens.data()};
  if (!t.patches.empty()) t.in.patches = t.patches.data();
  return t;
}

std::vector<float> logits(const Model& m, const Input& in, Hooks& h = no_hooks()) {
  Workspace ws;
  forward(m, in, ws, h);
  return ws.logits.data;
}

// Random a (log-uniform in [1e-3, 1e3], positive) and d (on the scale of the site's values).
void random_affine(Rng& rng, int C, double d_scale, std::vector<double>& a, std::vector<double>& d) {
  a.resize(C);
  d.resize(C);
  for (int c = 0; c < C; c++) {
    a[c] = std::pow(10.0, -3.0 + 6.0 * rng.uniform_f64());
    d[c] = d_scale * rng.normal();
  }
}

// Folds random transforms at every norm-fed site (twice when `twice`, to compose them)
// and returns the worst relative logit error against the unfolded model over two inputs.
double fold_everywhere_error(const Model& m0, uint64_t seed, bool twice = false, bool* argmax_same = nullptr) {
  Model m = m0;
  QuantPlan plan;
  Rng rng(seed);
  std::vector<double> a, d;
  // The site values start O(1); after a fold channel j is on the scale 1/a_j, and so is the next d.
  std::vector<std::vector<double>> scale(2 * m.cfg.n_layers, std::vector<double>(m.cfg.dim, 1.0));
  for (int rep = 0; rep < (twice ? 2 : 1); rep++)
    for (int l = 0; l < m.cfg.n_layers; l++)
      for (int k = 0; k < 2; k++) {
        random_affine(rng, m.cfg.dim, 0.5, a, d);
        auto& sc = scale[2 * l + k];
        for (int c = 0; c < m.cfg.dim; c++) d[c] *= sc[c], sc[c] /= a[c];
        fold_channel_affine(m, plan, kNormFed[k], l, a, d);
      }
  double worst = 0;
  if (argmax_same) *argmax_same = true;
  for (uint64_t k = 0; k < 2; k++) {
    TestInput t = test_input(m.cfg, seed + 100 + k);
    SimHook sim(plan, m.cfg.n_layers);  // applies the post-norm transforms (bits 0: float)
    std::vector<float> want = logits(m0, t.in), got = logits(m, t.in, sim);
    worst = std::max(worst, test::rel_err(got, want));
    const int V = m.cfg.n_out;
    for (size_t r = 0; argmax_same && r < want.size() / V; r++)
      if (std::max_element(want.begin() + r * V, want.begin() + (r + 1) * V) - want.begin() !=
          std::max_element(got.begin() + r * V, got.begin() + (r + 1) * V) - got.begin())
        *argmax_same = false;
  }
  return worst;
}

Config small(NormKind norm, bool post_norm) {
  Config c = llama_config(32, 3, 4, 2, 48, 300, 16);
  c.norm = norm;
  c.post_norm = post_norm;
  return c;
}

std::string fixture(const std::string& f) { return std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + f; }

bool bit_identical(Model& a, Model& b) {
  auto x = named_tensors(a), y = named_tensors(b);
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); i++)
    if (x[i].name != y[i].name || x[i].t->shape != y[i].t->shape ||
        std::memcmp(x[i].t->ptr(), y[i].t->ptr(), sizeof(float) * x[i].t->numel()) != 0)
      return false;
  return true;
}

}  // namespace

TEST(Fold, RandomAffineKeepsTheFunction) {
  struct Case {
    const char* name;
    NormKind norm;
    bool post, biases;
  } cases[] = {{"layernorm", NormKind::layer, false, true},
               {"rmsnorm (gains a bias)", NormKind::rms, false, false},
               {"post-norm layernorm (quantize op)", NormKind::layer, true, true},
               {"post-norm rmsnorm (quantize op)", NormKind::rms, true, false}};
  for (auto& c : cases) {
    Model m0 = random_model(small(c.norm, c.post), 7, 0.2f, c.biases);
    bool same = false;
    double once = fold_everywhere_error(m0, 11, false, &same), twice = fold_everywhere_error(m0, 12, true);
    std::printf("%s: logits rel err %.2e (one fold per site), %.2e (two composed)\n", c.name, once, twice);
    EXPECT_LT(once, 1e-5) << c.name;
    EXPECT_LT(twice, 1e-5) << c.name;
    EXPECT_TRUE(same) << c.name;
  }
}

TEST(Fold, RmsNormGainsABiasAndConsumersGainBiasesOnlyWhenShifted) {
  Model m = random_model(small(NormKind::rms, false), 3, 0.2f);
  QuantPlan plan;
  std::vector<double> a(32, 2.0), zero(32, 0.0), d(32, 0.25);
  fold_channel_affine(m, plan, Site::qkv_in, 0, a, zero);
  EXPECT_TRUE(m.blocks[0].attn_norm.b.empty());
  EXPECT_TRUE(m.blocks[0].q.b.empty());
  fold_channel_affine(m, plan, Site::up_in, 1, a, d);
  EXPECT_EQ(m.blocks[1].mlp_norm.b.numel(), 32);
  EXPECT_EQ(m.blocks[1].gate.b.numel(), 48);
  EXPECT_EQ(m.blocks[1].up.b.numel(), 48);
  EXPECT_TRUE(m.blocks[1].down.b.empty());
  EXPECT_TRUE(plan.sites.empty());  // pre-norm: nothing goes into the quantize op
}

TEST(Fold, IdentityLeavesEveryTensorBitIdentical) {
  std::vector<std::string> paths = {fixture("opt"), fixture("gpt2"), fixture("bert"), fixture("vit")};
  for (const char* f : {"models/vit-mnist-sonjuhy", "models/vit-mnist-tiny-agentzz1", "models/stories260K/stories260K.gguf"})
    if (file_exists(test::shared(f)) || is_directory(test::shared(f))) paths.push_back(test::shared(f));
  for (auto& path : paths) {
    Model m0 = load_model(path), m = m0;
    QuantPlan plan;
    std::vector<double> one(m.cfg.dim, 1.0), zero(m.cfg.dim, 0.0);
    for (int l = 0; l < m.cfg.n_layers; l++)
      for (Site s : kNormFed) fold_channel_affine(m, plan, s, l, one, zero, {8, std::vector<double>(m.cfg.dim, 1.0)});
    EXPECT_TRUE(bit_identical(m, m0)) << path;
    EXPECT_TRUE(plan.sites.empty()) << path;
  }
}

// Done-when 1 of issue 7: every family the project loads (the fixtures and the real models).
TEST(Fold, EveryFamilyKeepsItsLogits) {
  std::vector<std::string> paths = {fixture("opt"), fixture("gpt2"), fixture("bert"), fixture("vit")};
  for (const char* f : {"models/vit-mnist-sonjuhy", "models/vit-mnist-tiny-agentzz1", "models/stories260K/stories260K.gguf"})
    if (file_exists(test::shared(f)) || is_directory(test::shared(f))) paths.push_back(test::shared(f));
  for (auto& path : paths) {
    Model m0 = load_model(path);
    bool same = false;
    double err = fold_everywhere_error(m0, 5, true, &same);
    std::printf("%s (%s, %s): logits rel err %.2e after two random folds per site\n", path.c_str(),
                to_string(m0.cfg.norm), m0.cfg.post_norm ? "post-norm" : "pre-norm", err);
    EXPECT_LT(err, 1e-5) << path;
    EXPECT_TRUE(same) << path;
  }
}

// sonjuhy's one LayerNorm is cloned per site by the loader: folding qkv_in leaves up_in's norm alone.
TEST(Fold, SonjuhyNormsAreClonedPerSite) {
  TQ_REQUIRE_SHARED("models/vit-mnist-sonjuhy");
  Model m0 = load_model(test::shared("models/vit-mnist-sonjuhy")), m = m0;
  QuantPlan plan;
  Rng rng(9);
  std::vector<double> a, d;
  for (int l = 0; l < m.cfg.n_layers; l++) {
    EXPECT_EQ(m0.blocks[l].attn_norm.g.data, m0.blocks[l].mlp_norm.g.data);  // one norm, two copies
    EXPECT_EQ(m0.blocks[l].attn_norm.b.data, m0.blocks[l].mlp_norm.b.data);
    random_affine(rng, m.cfg.dim, 0.5, a, d);
    fold_channel_affine(m, plan, Site::qkv_in, l, a, d);
    EXPECT_EQ(m.blocks[l].mlp_norm.g.data, m0.blocks[l].mlp_norm.g.data);
    EXPECT_EQ(m.blocks[l].mlp_norm.b.data, m0.blocks[l].mlp_norm.b.data);
    EXPECT_NE(m.blocks[l].attn_norm.g.data, m0.blocks[l].attn_norm.g.data);
  }
  TestInput t = test_input(m.cfg, 1);
  EXPECT_LT(test::rel_err(logits(m, t.in), logits(m0, t.in)), 1e-5);
}

TEST(Fold, RefusesWhatIsAlreadyQuantized) {
  Model m = random_model(small(NormKind::rms, false), 3, 0.2f);
  std::vector<double> a(32, 2.0), d(32, 0.0);
  QuantPlan plan;
  plan.weights["blk.0.attn_k.weight"] = QuantSpec{};
  EXPECT_THROW(fold_channel_affine(m, plan, Site::qkv_in, 0, a, d), Error);
  QuantPlan site_plan;
  site_plan.sites["blk.0.up_in"] = QuantSpec{};
  EXPECT_THROW(fold_channel_affine(m, site_plan, Site::up_in, 0, a, d), Error);
  a[3] = 0;
  EXPECT_THROW(fold_channel_affine(m, site_plan, Site::qkv_in, 0, a, d), Error);
  EXPECT_THROW(fold_channel_affine(m, site_plan, Site::o_in, 0, d, d), Error);
}

// The record carries the weight error the fold causes: scaling columns by wildly
// different factors hurts per-row quantization; a uniform power-of-two scale changes nothing.
TEST(Fold, RecordsTheWeightSqnrItCauses) {
  Model m = random_model(small(NormKind::rms, false), 3, 0.2f);
  QuantPlan plan;
  Rng rng(4);
  std::vector<double> a, d, two(32, 2.0);
  random_affine(rng, 32, 0.0, a, d);
  SqnrProbe probe{8, std::vector<double>(32, 1.0)};
  FoldRecord r = fold_channel_affine(m, plan, Site::qkv_in, 0, a, d, probe);
  ASSERT_EQ(r.weights.size(), 3u);
  EXPECT_EQ(r.weights[0], "blk.0.attn_q.weight");
  for (size_t i = 0; i < 3; i++) EXPECT_LT(r.sqnr_after_db[i], r.sqnr_before_db[i] - 10);
  auto j = to_json(r);
  EXPECT_EQ(j["site"], "blk.0.qkv_in");
  EXPECT_TRUE(j["weights"]["blk.0.attn_v.weight"].contains("sqnr_db_after"));
  FoldRecord u = fold_channel_affine(m, plan, Site::up_in, 0, two, d, probe);
  ASSERT_EQ(u.weights.size(), 2u);
  for (size_t i = 0; i < 2; i++) EXPECT_EQ(u.sqnr_after_db[i], u.sqnr_before_db[i]);
  EXPECT_THROW(fold_channel_affine(m, plan, Site::up_in, 1, two, d, SqnrProbe{8, {}}), Error);
}

// A fold asked of a site that no norm computes is a caller's bug, not bad input: exit
// status 1 with the place (TQ_ASSERT), where an already-quantized weight is the user's (2).
TEST(Fold, ABrokenInvariantIsAnInternalError) {
  Model m = random_model(small(NormKind::rms, false), 3, 0.2f);
  std::vector<double> a(32, 2.0), d(32, 0.0);
  QuantPlan plan;
  try {
    fold_channel_affine(m, plan, Site::o_in, 0, a, d);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 1);
    EXPECT_EQ(std::string(e.what()).rfind("internal error at src/passes/fold.cpp:", 0), 0u) << e.what();
  }
  plan.weights["blk.0.attn_k.weight"] = QuantSpec{};
  try {
    fold_channel_affine(m, plan, Site::qkv_in, 0, a, d);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 2) << e.what();
  }
}

}  // namespace tq
