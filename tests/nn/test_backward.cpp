// The whole-model backward (float32) against finite differences of the loss,
// and the gradients the block hands to Hooks::backward.
//
// The forward is float32, so the check is a directional derivative per tensor
// on a tiny model with large weights (std 0.3, so that every path carries a
// gradient of the same order): d/dh L(θ + h·v) for a random unit direction v
// inside one tensor, from central differences at h = 1e-2 and 5e-3 combined
// (Richardson) so that the h² truncation cancels. What remains is rounding:
// the float32 loss (about 2.8) carries noise of about 1e-6, which the
// combination turns into at most 5/3·1e-6/h, about 2e-4 absolute (measured:
// at most 3e-5). The tolerance is 2e-4 absolute plus 1e-3 relative, while the
// directional derivatives are of order 1e-2 to 1, so a wrong term of the
// backward (a missing residual, a transposed weight) cannot hide in it.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <functional>

#include "core/rng.h"
#include "nn/forward.h"
#include "nn/ops.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {
namespace {

constexpr double kStep = 1e-2;
bool agrees(double analytic, double fd) { return std::abs(analytic - fd) <= 2e-4 + 1e-3 * std::abs(fd); }

struct Data {
  Input in;
  std::vector<int32_t> tokens, types, targets;
  std::vector<float> patches;
};

// LM: next-token targets; classifier: one label per sequence.
Data make_data(const Config& c, int B, int T, uint64_t seed) {
  Rng rng(seed);
  Data d;
  d.in.B = B;
  d.in.T = T;
  if (c.embed == EmbedKind::tokens) {
    d.tokens.resize(B * T);
    for (auto& t : d.tokens) t = (int32_t)rng.below(c.vocab);
    d.in.tokens = d.tokens.data();
    if (c.n_types > 0) {
      d.types.resize(B * T);
      for (auto& t : d.types) t = (int32_t)rng.below(c.n_types);
      d.in.types = d.types.data();
    }
  } else {
    d.patches.resize((size_t)B * T * c.patch_dim);
    for (auto& p : d.patches) p = (float)rng.normal();
    d.in.patches = d.patches.data();
  }
  if (c.is_lm()) {
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) d.targets.push_back(t + 1 < T ? d.tokens[b * T + t + 1] : -1);
  } else {
    for (int b = 0; b < B; b++) d.targets.push_back((int32_t)rng.below(c.n_out));
  }
  return d;
}

double mean_loss(const Model& m, const Data& d, Hooks& h) {
  Workspace ws;
  forward(m, d.in, ws, h);
  int n = 0;
  for (int32_t t : d.targets) n += t >= 0;
  return cross_entropy_forward_backward<float>(nullptr, ws.logits.ptr(), d.targets.data(), (int)ws.logits.dim(0),
                                               (int)ws.logits.dim(1), 1.0f) /
         n;
}

Model gradients(const Model& m, const Data& d, Hooks& h) {
  Workspace ws;
  ws.train = true;
  forward(m, d.in, ws, h);
  int n = 0;
  for (int32_t t : d.targets) n += t >= 0;
  std::vector<float> dlogits(ws.logits.numel());
  cross_entropy_forward_backward(dlogits.data(), ws.logits.ptr(), d.targets.data(), (int)ws.logits.dim(0),
                                 (int)ws.logits.dim(1), 1.0f / n);
  Model g = zeros_like(m);
  backward(m, g, d.in, ws, dlogits.data(), h);
  return g;
}

// d/de f(e) at 0 by central differences at e and e/2, combined (Richardson) so that the
// e² truncation term cancels and what remains is the float32 rounding of f.
double derivative(const std::function<double(double)>& f, double e) {
  auto central = [&](double h) { return (f(h) - f(-h)) / (2 * h); };
  return (4 * central(e / 2) - central(e)) / 3;
}

// The derivative of the loss along direction v (a vector per named tensor; empty = 0).
double directional_fd(const Model& m0, const std::vector<std::vector<float>>& v, const Data& d, Hooks& h) {
  return derivative(
      [&](double e) {
        Model m = m0;
        auto nts = named_tensors(m);
        for (size_t i = 0; i < nts.size(); i++)
          for (size_t j = 0; j < v[i].size(); j++) nts[i].t->data[j] += (float)(e * v[i][j]);
        return mean_loss(m, d, h);
      },
      kStep);
}

std::vector<float> unit_direction(size_t n, Rng& rng) {
  std::vector<float> v(n);
  double ss = 0;
  for (auto& x : v) {
    x = (float)rng.normal();
    ss += (double)x * x;
  }
  for (auto& x : v) x = (float)(x / std::sqrt(ss));
  return v;
}

double analytic(const Model& g, const std::vector<std::vector<float>>& v) {
  auto nts = named_tensors(const_cast<Model&>(g));
  double s = 0;
  for (size_t i = 0; i < nts.size(); i++)
    for (size_t j = 0; j < v[i].size(); j++) s += (double)nts[i].t->data[j] * v[i][j];
  return s;
}

// Every named tensor, one random direction each.
void check_every_tensor(const Model& m, const Data& d) {
  Model g = gradients(m, d, no_hooks());
  Rng rng(99);
  auto nts = named_tensors(const_cast<Model&>(m));
  double worst = 0;
  for (size_t i = 0; i < nts.size(); i++) {
    std::vector<std::vector<float>> v(nts.size());
    v[i] = unit_direction(nts[i].t->numel(), rng);
    double a = analytic(g, v), fd = directional_fd(m, v, d, no_hooks());
    worst = std::max(worst, std::abs(a - fd));
    EXPECT_TRUE(agrees(a, fd)) << nts[i].name << ": backward " << a << ", finite differences " << fd;
  }
  ::testing::Test::RecordProperty("worst_abs_err", fmt::format("{:.2e}", worst));
}

Config vit_config() {  // post-norm, LayerNorm, GELU, learned positions, patches, CLS pooling
  Config c;
  c.arch = "vit";
  c.dim = 8, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 2, c.head_dim = 4, c.hidden = 12;
  c.n_out = 3, c.max_seq = 4;
  c.norm = NormKind::layer, c.act = ActKind::gelu, c.gated = false, c.post_norm = true, c.causal = false;
  c.pos = PosKind::learned, c.embed = EmbedKind::patches, c.patch_dim = 6, c.cls_token = true;
  c.pool = PoolKind::first;
  return c;
}

Config bert_config() {  // tokens + types + embedding norm, post-norm, tanh GELU, pooler, mean pooling
  Config c = vit_config();
  c.arch = "bert";
  c.embed = EmbedKind::tokens, c.vocab = 20, c.n_types = 2, c.cls_token = false, c.patch_dim = 0;
  c.act = ActKind::gelu_tanh, c.pool = PoolKind::mean, c.pooler = true;
  return c;
}

Model bert_model(uint64_t seed) {
  Model m = random_model(bert_config(), seed, 0.3f, true);
  m.embd_norm.g = Tensor({m.cfg.dim}, 1.0f);
  m.embd_norm.b = Tensor({m.cfg.dim}, 0.1f);
  return m;
}

TEST(Backward, LlamaMatchesFiniteDifferences) {
  Config c = llama_config(8, 2, 4, 2, 12, 16, 16);  // GQA, RoPE, SwiGLU, RMSNorm
  check_every_tensor(random_model(c, 1, 0.3f), make_data(c, 2, 5, 2));
  c.tied_head = true;
  Data d = make_data(c, 2, 5, 4);
  check_every_tensor(random_model(c, 3, 0.3f), d);
  d.in.pos0 = 3;  // sequences that start later: RoPE's backward rotates by the same positions
  check_every_tensor(random_model(c, 3, 0.3f), d);
}

TEST(Backward, EncoderMatchesFiniteDifferences) {
  Config c = vit_config();
  check_every_tensor(random_model(c, 5, 0.3f, true), make_data(c, 3, 4, 6));
  c.pool = PoolKind::mean;
  c.cls_token = false;
  check_every_tensor(random_model(c, 7, 0.3f, true), make_data(c, 3, 4, 8));
  check_every_tensor(bert_model(9), make_data(bert_config(), 3, 4, 10));
}

// Hook forward x ← 2x, backward dx ← 2dx, at one (site, layer).
struct ScaleHook : Hooks {
  Site site;
  int layer;
  ScaleHook(Site s, int l) : site(s), layer(l) {}
  void forward(Site s, int l, float* x, int rows, int cols) override {
    if (s == site && l == layer)
      for (int64_t i = 0; i < (int64_t)rows * cols; i++) x[i] *= 2;
  }
  void backward(Site s, int l, float* dx, int rows, int cols) override {
    if (s == site && l == layer)
      for (int64_t i = 0; i < (int64_t)rows * cols; i++) dx[i] *= 2;
  }
};

// Hook forward x ← x + δ·u at one (site, layer); backward records the gradient it receives.
struct ProbeHook : Hooks {
  Site site;
  int layer;
  double delta = 0;
  std::vector<float> u, seen;
  ProbeHook(Site s, int l) : site(s), layer(l) {}
  void forward(Site s, int l, float* x, int rows, int cols) override {
    if (s != site || l != layer) return;
    if (u.empty()) {
      Rng rng(7);
      u = unit_direction((size_t)rows * cols, rng);
    }
    for (size_t i = 0; i < u.size(); i++) x[i] += (float)(delta * u[i]);
  }
  void backward(Site s, int l, float* dx, int rows, int cols) override {
    if (s == site && l == layer) seen.assign(dx, dx + (int64_t)rows * cols);
  }
};

void check_hooks(const Model& m, const Data& d) {
  for (int si = 0; si < kNumSites; si++) {
    Site s = (Site)si;
    int layer = s == Site::head_in ? -1 : 1;
    // The gradient reaching the site is dL/d(site value): against d/dδ L(x + δu).
    ProbeHook probe(s, layer);
    Model g = gradients(m, d, probe);
    ASSERT_EQ(probe.seen.size(), probe.u.size()) << site_name(s);
    double a = 0;
    for (size_t i = 0; i < probe.u.size(); i++) a += (double)probe.seen[i] * probe.u[i];
    double fd = derivative(
        [&](double e) {
          probe.delta = e;
          return mean_loss(m, d, probe);
        },
        kStep);
    EXPECT_TRUE(agrees(a, fd)) << site_name(s) << ": gradient at the site " << a << ", finite differences " << fd;
    // A hook that scales its value by 2 (and its gradient by 2) gives the gradient of the scaled model.
    ScaleHook scale(s, layer);
    Model gs = gradients(m, d, scale);
    Rng rng(si);
    auto nts = named_tensors(const_cast<Model&>(m));
    std::vector<std::vector<float>> v(nts.size());
    for (size_t i = 0; i < nts.size(); i++) v[i] = unit_direction(nts[i].t->numel(), rng);
    double as = analytic(gs, v), fds = directional_fd(m, v, d, scale);
    EXPECT_TRUE(agrees(as, fds)) << site_name(s) << " scaled by 2: backward " << as << ", finite differences " << fds;
    EXPECT_GT(std::abs(as - analytic(g, v)), 4e-3) << site_name(s) << ": the hook changed nothing";
  }
}

TEST(Backward, HooksReceiveTheGradientOfTheirSite) {
  Config c = llama_config(8, 2, 4, 2, 12, 16, 16);
  check_hooks(random_model(c, 11, 0.3f), make_data(c, 2, 5, 12));
  Config e = vit_config();
  check_hooks(random_model(e, 13, 0.3f, true), make_data(e, 3, 4, 14));
  check_hooks(bert_model(15), make_data(bert_config(), 3, 4, 16));  // the pooler's tanh sits before head_in
}

// Without a cache, a sequence that starts at position pos0 sees only its own past: with
// RoPE (relative positions) its logits equal those of the same tokens at position 0.
TEST(Forward, StartPositionWithoutCacheKeepsCausality) {
  Config c = llama_config(16, 2, 4, 2, 24, 300, 64);
  Model m = random_model(c, 15, 0.1f);
  Data d = make_data(c, 2, 6, 16);
  Workspace a, b;
  forward(m, d.in, a);
  Input shifted = d.in;
  shifted.pos0 = 9;
  forward(m, shifted, b);
  EXPECT_LT(test::rel_err(b.logits.data, a.logits.data), 1e-5);
}

}  // namespace
}  // namespace tq
