#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "nn/optim.h"
#include "nn/random_model.h"
#include "nn/train.h"
#include "test_util.h"

namespace tq {
namespace {

// One weight matrix and one norm gain: enough to see decay on matrices only.
Model two_tensor_model() {
  Model m;
  m.blocks.resize(1);
  m.blocks[0].q.w = Tensor({2, 2});
  m.blocks[0].attn_norm.g = Tensor({2});
  return m;
}

TEST(AdamW, MatchesTheUpdateWrittenOut) {
  Model p = two_tensor_model(), g = two_tensor_model();
  p.blocks[0].q.w.data = {0.5f, -1.0f, 2.0f, 0.0f};
  p.blocks[0].attn_norm.g.data = {1.0f, -0.25f};
  AdamState st = adam_state(p);
  AdamW opt;
  opt.weight_decay = 0.1f;
  std::vector<double> w = {0.5, -1.0, 2.0, 0.0, 1.0, -0.25}, m(6, 0.0), v(6, 0.0);
  const double lr = 0.01;
  for (int t = 1; t <= 3; t++) {
    std::vector<float> grads = {0.3f * t, -0.2f, 1.5f, 0.0f, -0.7f, 0.05f * t};
    std::copy(grads.begin(), grads.begin() + 4, g.blocks[0].q.w.data.begin());
    std::copy(grads.begin() + 4, grads.end(), g.blocks[0].attn_norm.g.data.begin());
    adamw_update(p, g, st, opt, (float)lr);
    for (int i = 0; i < 6; i++) {
      m[i] = 0.9 * m[i] + 0.1 * grads[i];
      v[i] = 0.95 * v[i] + 0.05 * grads[i] * grads[i];
      double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.95, t));
      double wd = i < 4 ? 0.1 : 0.0;  // the norm gain is not decayed
      w[i] -= lr * (mh / (std::sqrt(vh) + 1e-8) + wd * w[i]);
    }
  }
  EXPECT_EQ(st.step, 3);
  for (int i = 0; i < 4; i++) EXPECT_NEAR(p.blocks[0].q.w.data[i], w[i], 1e-6) << i;
  for (int i = 0; i < 2; i++) EXPECT_NEAR(p.blocks[0].attn_norm.g.data[i], w[4 + i], 1e-6) << i;
}

TEST(Schedule, WarmsUpLinearlyThenFollowsACosineToTheFloor) {
  Schedule s{1e-3f, 1e-4f, 10, 110};
  EXPECT_FLOAT_EQ(lr_at(s, 0), 1e-4f);
  EXPECT_FLOAT_EQ(lr_at(s, 9), 1e-3f);
  EXPECT_FLOAT_EQ(lr_at(s, 10), 1e-3f);
  EXPECT_NEAR(lr_at(s, 60), 5.5e-4f, 1e-9);  // half way: the mean of lr and min_lr
  EXPECT_FLOAT_EQ(lr_at(s, 110), 1e-4f);
  for (int64_t t = 11; t <= 110; t++) EXPECT_LE(lr_at(s, t), lr_at(s, t - 1));
}

TEST(Clip, ScalesTheGlobalNormDownOnly) {
  Model g = two_tensor_model();
  g.blocks[0].q.w.data = {3, 0, 0, 0};
  g.blocks[0].attn_norm.g.data = {0, 4};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 10.0), 5.0);  // below the limit: unchanged
  EXPECT_EQ(g.blocks[0].q.w.data[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  EXPECT_NEAR(grad_norm(g), 1.0, 1e-7);
  EXPECT_FLOAT_EQ(g.blocks[0].attn_norm.g.data[1], 0.8f);
}

TEST(Sampler, EveryEpochIsAPermutationAndTheSeedDecidesIt) {
  Sampler a(7, 3), b(7, 3), c(7, 4);
  std::vector<int64_t> sa, sb, sc;
  for (int i = 0; i < 21; i++) sa.push_back(a.next()), sb.push_back(b.next()), sc.push_back(c.next());
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  for (int e = 0; e < 3; e++) EXPECT_EQ(std::set<int64_t>(sa.begin() + 7 * e, sa.begin() + 7 * e + 7).size(), 7u);
  EXPECT_NE(std::vector<int64_t>(sa.begin(), sa.begin() + 7), std::vector<int64_t>(sa.begin() + 7, sa.begin() + 14));
}

// A stream that repeats one random phrase: learnable from context.
TokenWindows phrase_stream(int vocab, int T, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> phrase(13), s;
  for (auto& t : phrase) t = (int32_t)rng.below(vocab);
  while ((int)s.size() < 40 * T) s.insert(s.end(), phrase.begin(), phrase.end());
  return TokenWindows(s, T);
}

TrainOptions small_options(int64_t steps) {
  TrainOptions o;
  o.steps = steps;
  o.batch = 4;
  o.schedule = {1e-2f, 1e-3f, 5, 0};
  o.adam.weight_decay = 0.01f;
  o.seed = 7;
  o.label = "";
  return o;
}

Config tiny_llama() { return llama_config(16, 2, 4, 2, 32, 24, 32); }

TEST(Trainer, LanguageModelLossFallsAndRepeatsBitForBit) {
  TokenWindows data = phrase_stream(24, 12, 1);
  Model a = init_model(tiny_llama(), 2), b = a;
  Trainer ta(a, data, small_options(60)), tb(b, data, small_options(60));
  ta.run();
  tb.run();
  double first = ta.log.front().loss, last = ta.log.back().loss;
  EXPECT_NEAR(first, std::log(24.0), 0.2);  // a fresh model is close to uniform
  EXPECT_LT(last, 0.3 * first);
  ASSERT_EQ(ta.log.size(), tb.log.size());
  for (size_t i = 0; i < ta.log.size(); i++) EXPECT_EQ(ta.log[i].loss, tb.log[i].loss) << i;
  auto pa = named_tensors(a), pb = named_tensors(b);
  for (size_t i = 0; i < pa.size(); i++) EXPECT_EQ(pa[i].t->data, pb[i].t->data) << pa[i].name;
}

TEST(Trainer, ResumeFromACheckpointIsBitIdentical) {
  test::TempDir dir;
  TokenWindows data = phrase_stream(24, 12, 3);
  Model whole = init_model(tiny_llama(), 4), first = whole, second = whole;
  Trainer tw(whole, data, small_options(24));
  tw.run();

  TrainOptions o = small_options(24);
  o.checkpoint = dir.file("ckpt.safetensors");
  Trainer t1(first, data, o);
  t1.run(10, [](Trainer&) { return false; });  // stops after 10 updates and writes the checkpoint
  EXPECT_EQ(t1.adam.step, 10);

  Trainer t2(second, data, o);  // a fresh process would start here
  t2.resume(o.checkpoint);
  EXPECT_EQ(t2.adam.step, 10);
  t2.run();
  ASSERT_EQ(t2.log.size(), tw.log.size());
  for (size_t i = 0; i < tw.log.size(); i++) {
    EXPECT_EQ(t2.log[i].loss, tw.log[i].loss) << i;
    EXPECT_EQ(t2.log[i].grad_norm, tw.log[i].grad_norm) << i;
  }
  auto pw = named_tensors(whole), p2 = named_tensors(second);
  auto mw = named_tensors(tw.adam.v), m2 = named_tensors(t2.adam.v);
  for (size_t i = 0; i < pw.size(); i++) {
    EXPECT_EQ(pw[i].t->data, p2[i].t->data) << pw[i].name;
    EXPECT_EQ(mw[i].t->data, m2[i].t->data) << pw[i].name;
  }
}

TEST(Trainer, ResumeRefusesAnotherModel) {
  test::TempDir dir;
  TokenWindows data = phrase_stream(24, 12, 3);
  Model m = init_model(tiny_llama(), 4);
  TrainOptions o = small_options(2);
  o.checkpoint = dir.file("ckpt.safetensors");
  Trainer(m, data, o).run();
  Config other = tiny_llama();
  other.hidden = 48;
  Model m2 = init_model(other, 4);
  Trainer t(m2, data, o);
  EXPECT_THROW(t.resume(o.checkpoint), Error);
}

// Classification: a ViT-like model learns labels that depend on the image.
TEST(Trainer, ClassifierLearnsSyntheticLabels) {
  Config c;
  c.arch = "vit";
  c.dim = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 2, c.head_dim = 8, c.hidden = 32;
  c.n_out = 3, c.max_seq = 4;
  c.norm = NormKind::layer, c.act = ActKind::gelu, c.gated = false, c.post_norm = true, c.causal = false;
  c.pos = PosKind::learned, c.embed = EmbedKind::patches, c.patch_dim = 6, c.cls_token = true;
  c.pool = PoolKind::first;
  Model m = random_model(c, 5, 0.1f, true);
  LabelledExamples data;
  data.T = 4, data.P = 6;
  Rng rng(6);
  for (int i = 0; i < 96; i++) {
    int label = (int)rng.below(3);
    for (int t = 0; t < 4; t++)
      for (int p = 0; p < 6; p++) data.patches.push_back((float)rng.normal() * 0.5f + (p % 3 == label ? 1.0f : 0.0f));
    data.labels.push_back(label);
  }
  TaskLoss before = task_loss(m, data, 16);
  TrainOptions o = small_options(80);
  o.batch = 8;
  Trainer t(m, data, o);
  t.run();
  TaskLoss after = task_loss(m, data, 16);
  EXPECT_EQ(after.rows, 96);
  EXPECT_LT(after.loss, 0.5 * before.loss);
  EXPECT_GT(after.accuracy, 0.9);
}

}  // namespace
}  // namespace tq
