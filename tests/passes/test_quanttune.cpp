// QuantTune: docs/methods.md §6.6 items 26–29.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "core/rng.h"
#include "nn/random_model.h"
#include "passes/quanttune.h"
#include "test_util.h"

namespace tq {
namespace {

// 26. Nothing outside the band: no loss, no gradient.
TEST(QuantTune, NoOutlierNoLossNoGradient) {
  Rng rng(1);
  std::vector<double> a(500), grad(500, 0.0);
  for (auto& x : a) x = 2 * rng.uniform_f64() - 1;  // uniform: |a − μ| ≤ 1 < 3σ ≈ 1.73
  double mu = 0, sigma = 0;
  for (double x : a) mu += x / a.size();
  for (double x : a) sigma += (x - mu) * (x - mu) / a.size();
  sigma = std::sqrt(sigma);
  EXPECT_EQ(outlier_loss(a.data(), 500, mu, sigma, 3.0, 1e-6, grad.data(), 1.0), 0.0);
  for (double g : grad) EXPECT_EQ(g, 0.0);

  // Through the hook: the value is 0 and the gradient arriving at the site leaves unchanged.
  OutlierLossHook hook({3.0, 0.05, 1e-6, {Site::up_in}});
  std::vector<float> x(a.begin(), a.end()), dx(500, 0.25f);
  hook.begin();
  hook.forward(Site::up_in, 0, x.data(), 50, 10);
  hook.backward(Site::up_in, 0, dx.data(), 50, 10);
  EXPECT_EQ(hook.value(), 0.0);
  for (float g : dx) EXPECT_EQ(g, 0.25f);
}

// 27. The added gradient against central differences of L_s in float64, μ and σ held.
TEST(QuantTune, OutlierGradientMatchesFiniteDifferences) {
  Rng rng(2);
  const int n = 400;
  std::vector<double> a(n);
  for (auto& x : a) x = rng.normal();
  for (int i : {3, 50, 51, 300}) a[i] = (i % 2 ? -1 : 1) * (6 + i % 7);  // planted outliers
  a[100] = 40;
  const double mu = 0.3, sigma = 1.7, k = 3, eps = 1e-6, scale = 0.8;
  std::vector<double> grad(n, 0.0);
  outlier_loss(a.data(), n, mu, sigma, k, eps, grad.data(), scale);
  const double h = 1e-6;
  double num = 0, den = 0;
  int outside = 0;
  for (int i = 0; i < n; i++) {
    double keep = a[i];
    a[i] = keep + h;
    double lp = outlier_loss<double>(a.data(), n, mu, sigma, k, eps, nullptr, 0);
    a[i] = keep - h;
    double lm = outlier_loss<double>(a.data(), n, mu, sigma, k, eps, nullptr, 0);
    a[i] = keep;
    double fd = scale * (lp - lm) / (2 * h);
    num += (fd - grad[i]) * (fd - grad[i]);
    den += fd * fd;
    outside += std::abs(a[i] - mu) > k * sigma;
  }
  EXPECT_GE(outside, 5);
  EXPECT_LT(std::sqrt(num / den), 1e-4);
  ::testing::Test::RecordProperty("rel_err", fmt::format("{:.2e}", std::sqrt(num / den)));

  // The hook adds (λ/|S|)·∂L_s/∂a with the batch's own μ and σ; |S| = 2 sites here.
  std::vector<float> x(a.begin(), a.end()), y(x), dx(n, 0.0f), dy(n, 0.0f), expect(n, 0.0f);
  OutlierLossHook hook({k, 0.1, eps, {Site::qkv_in, Site::down_in}});
  hook.begin();
  hook.forward(Site::qkv_in, 0, x.data(), 20, 20);
  hook.forward(Site::o_in, 0, y.data(), 20, 20);  // not monitored
  hook.forward(Site::down_in, 0, y.data(), 20, 20);
  hook.backward(Site::qkv_in, 0, dx.data(), 20, 20);
  hook.backward(Site::o_in, 0, dy.data(), 20, 20);
  for (float g : dy) EXPECT_EQ(g, 0.0f);
  double m = 0, s = 0;  // the batch statistics, summed as the hook sums them
  for (float v : x) m += v;
  m /= n;
  for (float v : x) s += (v - m) * (v - m);
  double ls = outlier_loss<float>(x.data(), n, m, std::sqrt(s / n), k, eps, expect.data(), 0.1 / 2);
  EXPECT_EQ(dx, expect);
  EXPECT_DOUBLE_EQ(hook.value(), 0.1 * (ls + ls) / 2);
}

// A Markov chain over a small vocabulary: each token has three likely successors.
TokenWindows markov_stream(int vocab, int T, int windows, uint64_t table_seed, uint64_t seed) {
  Rng table_rng(table_seed), rng(seed);
  std::vector<std::array<int32_t, 3>> next(vocab);
  for (auto& n : next)
    for (auto& t : n) t = (int32_t)table_rng.below(vocab);
  std::vector<int32_t> s = {0};
  while ((int)s.size() < windows * T + 1) s.push_back(next[s.back()][rng.below(3)]);
  return TokenWindows(s, T);
}

TrainOptions options(int64_t steps, float lr) {
  TrainOptions o;
  o.steps = steps;
  o.batch = 8;
  o.schedule = {lr, 0.0f, steps / 20, 0};
  o.seed = 3;
  o.label = "";
  return o;
}

// 28. λ = 0 is plain fine-tuning, bit for bit.
TEST(QuantTune, ZeroLambdaIsPlainFineTuning) {
  Config c = llama_config(16, 2, 4, 2, 32, 24, 32);
  TokenWindows data = markov_stream(24, 16, 40, 1, 2);
  Model plain = random_model(c, 4, 0.2f), tuned = plain;
  Trainer tp(plain, data, options(30, 3e-3f));
  tp.run();
  OutlierLossHook hook({3.0, 0.0, 1e-6, QuantTuneOptions{}.sites});
  Trainer tq_(tuned, data, options(30, 3e-3f), &hook);
  tq_.run();
  for (size_t i = 0; i < tp.log.size(); i++) EXPECT_EQ(tp.log[i].loss, tq_.log[i].loss) << i;
  auto a = named_tensors(plain), b = named_tensors(tuned);
  for (size_t i = 0; i < a.size(); i++) EXPECT_EQ(a[i].t->data, b[i].t->data) << a[i].name;
}

const SiteRange& find(const std::vector<SiteRange>& r, Site s, int layer) {
  for (auto& x : r)
    if (x.site == s && x.layer == layer) return x;
  throw std::runtime_error("site not measured");
}

// 29. A trained toy model gets an outlier channel planted at down_in of layer 0 by a
// function-preserving rescale (up row ×8, down column ÷8). Fine-tuning with λ > 0 shrinks
// that site's dynamic range and raises its 8-bit SQNR; plain fine-tuning does not; the
// task loss stays within the guard (0.5 % relative).
TEST(QuantTune, PlantedOutlierChannelShrinks) {
  Config c = llama_config(16, 2, 4, 2, 32, 24, 32);
  TokenWindows train = markov_stream(24, 16, 1000, 1, 2), held = markov_stream(24, 16, 32, 1, 3);
  Model m = init_model(c, 5);
  Trainer(m, train, options(300, 1e-2f)).run();
  Workspace w0, w1;
  Batch b;
  std::vector<int32_t> targets;
  std::vector<int64_t> idx = {0, 1, 2, 3};
  held.fill(idx.data(), 4, b, targets);
  forward(m, b.input(), w0);
  const int j = 5;
  for (int i = 0; i < c.dim; i++) m.blocks[0].up.w.row(j)[i] *= 8;
  for (int o = 0; o < c.dim; o++) m.blocks[0].down.w.row(o)[j] /= 8;
  forward(m, b.input(), w1);
  EXPECT_LT(test::rel_err(w1.logits.data, w0.logits.data), 1e-5);  // the plant does not change the function

  std::vector<Site> sites = {Site::down_in};
  auto before = site_ranges(m, held, 8, sites, 3.0);
  double loss_before = task_loss(m, held, 8).loss;
  Model plain = m, tuned = m;
  Trainer(plain, train, options(100, 3e-3f)).run();
  OutlierLossHook hook(QuantTuneOptions{});
  Trainer(tuned, train, options(100, 3e-3f), &hook).run();
  auto after_plain = site_ranges(plain, held, 8, sites, 3.0), after = site_ranges(tuned, held, 8, sites, 3.0);
  const SiteRange &r0 = find(before, Site::down_in, 0), &rp = find(after_plain, Site::down_in, 0),
                  &rq = find(after, Site::down_in, 0);
  RecordProperty("dr", testing::PrintToString(std::vector<double>{r0.dr, rp.dr, rq.dr}));
  RecordProperty("sqnr", testing::PrintToString(std::vector<double>{r0.sqnr_db, rp.sqnr_db, rq.sqnr_db}));
  EXPECT_LT(rq.dr, 0.7 * r0.dr);
  EXPECT_LT(rq.dr, 0.7 * rp.dr);
  EXPECT_GT(rq.sqnr_db, r0.sqnr_db + 3.0);
  double loss_after = task_loss(tuned, held, 8).loss;
  RecordProperty("loss", testing::PrintToString(std::vector<double>{loss_before, task_loss(plain, held, 8).loss, loss_after}));
  EXPECT_LE(loss_after, loss_before * 1.005);
}

}  // namespace
}  // namespace tq
