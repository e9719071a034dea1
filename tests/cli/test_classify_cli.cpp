// finetune and quanttune of an image classifier: a small random ViT on synthetic MNIST-format images.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mmap.h"
#include "nn/accuracy.h"
#include "io/load.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "nn/train.h"
#include "passes/quanttune.h"
#include "test_util.h"
#include "text/images.h"

namespace tq {
namespace {

// 28×28 grey images in 14×14 patches: 4 patches and the class token.
Model tiny_vit(uint64_t seed) {
  Config c;
  c.arch = "vit";
  c.dim = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 2, c.head_dim = 8, c.hidden = 32;
  c.n_out = 10, c.max_seq = 5;
  c.norm = NormKind::layer, c.act = ActKind::gelu, c.gated = false, c.post_norm = false, c.causal = false;
  c.pos = PosKind::learned, c.embed = EmbedKind::patches, c.cls_token = true, c.pool = PoolKind::first;
  c.image_size = 28, c.patch_size = 14, c.channels = 1, c.patch_dim = 196;
  c.pixel_mean = {0.1307f}, c.pixel_std = {0.3081f};
  return random_model(c, seed, 0.1f, true);
}

// All images of DIR as one batch, normalised as the model expects.
Batch all_images(const Model& m, const std::string& dir) {
  ImageSet s = read_mnist(dir);
  return image_batches(m.cfg, s, (int)s.n)[0];
}

std::vector<float> logits(const Model& m, const Batch& b) {
  Workspace ws;
  forward(m, b.input(), ws);
  return ws.logits.data;
}

// λ/|S|·Σ L_s with λ = 1 on the default sites, over one batch.
double outlier_loss_of(const Model& m, const Batch& b) {
  QuantTuneOptions q;
  q.lambda = 1;
  OutlierLossHook hook(q);
  hook.begin();
  Workspace ws;
  forward(m, b.input(), ws, hook);
  return hook.value();
}

TEST(ClassifyTraining, FineTunedVitSavedAndReloadedGivesTheSameLogits) {
  test::TempDir d;
  test::write_synthetic_mnist(d, 64, 1);
  Model m = tiny_vit(2);
  // The norms only some families have: none at the end (as vit-mnist-sonjuhy), one after the embeddings (as BERT).
  m.final_norm = Norm{};
  m.embd_norm = {Tensor({m.cfg.dim}, 1.5f), Tensor({m.cfg.dim}, 0.1f)};
  const Model before = m;
  Batch all = all_images(m, d.path);
  LabelledExamples data = labelled_examples({all}, m.cfg.patch_dim);
  ASSERT_EQ(data.size(), 64);
  TrainOptions o;
  o.steps = 10, o.batch = 8, o.schedule.lr = 3e-3f, o.label = "test";
  Trainer(m, data, o).run();
  std::vector<float> trained = logits(m, all);
  ASSERT_NE(trained, logits(before, all));  // the run changed the model

  QuantPlan empty;
  save_tquant_dir(d.file("ft"), m, empty);
  Model back = load_model(d.file("ft"));
  std::vector<float> reloaded = logits(back, all);
  ASSERT_EQ(reloaded.size(), trained.size());
  EXPECT_EQ(std::memcmp(reloaded.data(), trained.data(), trained.size() * sizeof(float)), 0);
  EXPECT_TRUE(back.final_norm.g.empty());
  EXPECT_FALSE(back.embd_norm.b.empty());
}

TEST(ClassifyCli, FinetuneWritesADirectoryThatEvalAndQuantizeRead) {
  test::TempDir d;
  test::write_synthetic_mnist(d, 200, 3);
  save_tquant_dir(d.file("base"), tiny_vit(4), QuantPlan{});
  const std::string data = " --data mnist:" + d.path;
  auto f = test::run_cli("finetune " + d.file("base") + data + " --steps 20 --batch 8 --lr 3e-3 --threads 2 -o " +
                         d.file("ft"));
  ASSERT_EQ(f.status, 0) << f.err;
  // 180 images fitted, the last 20 held out; eval on those 20 prints the same accuracy.
  EXPECT_NE(f.out.find("20 steps on 180 images"), std::string::npos) << f.out;
  const char* key = "held-out accuracy ";
  size_t at = f.out.find(key);
  ASSERT_NE(at, std::string::npos) << f.out;
  std::string after = f.out.substr(f.out.find("-> ", at) + 3, f.out.find('%', f.out.find("-> ", at)) - f.out.find("-> ", at) - 3);
  auto e = test::run_cli("eval " + d.file("ft") + data + " --offset 180");
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.out.find("accuracy " + after + "% (") , std::string::npos) << e.out << f.out;
  EXPECT_NE(e.out.find("/20)"), std::string::npos) << e.out;
  auto plan = nlohmann::json::parse(read_text_file(d.file("ft/plan.json")));
  EXPECT_EQ(plan["passes"][0]["pass"], "finetune");
  EXPECT_EQ(plan["passes"][0]["task_loss"], "label cross-entropy");

  auto q = test::run_cli("quantize " + d.file("ft") + " --recipe w8a8-rtn --calib mnist:" + d.path +
                         "?limit=16 --threads 2 -o " + d.file("q"));
  ASSERT_EQ(q.status, 0) << q.err;
  auto qplan = nlohmann::json::parse(read_text_file(d.file("q/plan.json")));
  ASSERT_EQ(qplan["passes"].size(), 2u);  // finetune, then the recipe's rtn
  EXPECT_EQ(qplan["passes"][0]["pass"], "finetune");
  EXPECT_EQ(qplan["passes"][1]["pass"], "rtn");

  // The same flags give the same bits.
  auto f2 = test::run_cli("finetune " + d.file("base") + data + " --steps 20 --batch 8 --lr 3e-3 --threads 2 -o " +
                          d.file("ft2"));
  ASSERT_EQ(f2.status, 0) << f2.err;
  EXPECT_EQ(read_text_file(d.file("ft/model.safetensors")), read_text_file(d.file("ft2/model.safetensors")));

  // Data the model cannot take: one-line errors, exit status 2.
  std::ofstream(d.file("t.txt")) << "some text\nmore text\n";
  auto bad = test::run_cli("finetune " + d.file("base") + " --data " + d.file("t.txt") + " -o " + d.file("x"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("not a language model"), std::string::npos) << bad.err;
  bad = test::run_cli("quanttune " + d.file("base") + " --data sst2:" + d.file("t.txt") + " -o " + d.file("x"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("padding mask"), std::string::npos) << bad.err;
  bad = test::run_cli("finetune " + d.file("base") + data + " -o " + d.file("x.gguf"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("GGUF output holds LLaMA models"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.out.find("steps"), std::string::npos) << bad.out;  // refused before training
  bad = test::run_cli("finetune " + d.file("base") + data + "?limit=1 -o " + d.file("x"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("no images to train on"), std::string::npos) << bad.err;
}

TEST(ClassifyCli, QuanttuneLowersTheOutlierLossAndRepeatsBitForBit) {
  test::TempDir d;
  test::write_synthetic_mnist(d, 200, 5);
  Model base = tiny_vit(6);
  save_tquant_dir(d.file("base"), base, QuantPlan{});
  std::string args = "quanttune " + d.file("base") + " --data mnist:" + d.path +
                     " --steps 30 --batch 16 --lr 3e-3 --guard-every 10 --guard-tolerance 1 --threads 2 -o ";
  // L_s is ~1e-3 here against a task loss ~2: λ 100 makes the outlier term count.
  auto a = test::run_cli(args + d.file("a") + " --lambda 100");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.out.find("guard accuracy"), std::string::npos) << a.out;
  auto control = test::run_cli(args + d.file("control") + " --lambda 0");  // plain fine-tuning, same steps
  ASSERT_EQ(control.status, 0) << control.err;
  auto b = test::run_cli(args + d.file("b") + " --lambda 100");
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(read_text_file(d.file("a/model.safetensors")), read_text_file(d.file("b/model.safetensors")));

  auto rec = nlohmann::json::parse(read_text_file(d.file("a.quanttune.json")));
  EXPECT_EQ(rec["guard"]["metric"], "accuracy");
  EXPECT_EQ(rec["guard"]["history"].size(), 3u);
  EXPECT_EQ(rec["pool"]["fit"], 180);
  EXPECT_EQ(rec["pool"]["guard"], 20);
  EXPECT_EQ(rec["task_loss"], "label cross-entropy");
  EXPECT_EQ(rec["sites_before"].size(), 2u * 4 + 1);
  auto rec_b = nlohmann::json::parse(read_text_file(d.file("b.quanttune.json")));
  EXPECT_EQ(rec["sites_after"], rec_b["sites_after"]);
  EXPECT_EQ(rec["guard"], rec_b["guard"]);

  Batch all = all_images(base, d.path);
  double before = outlier_loss_of(base, all), after = outlier_loss_of(load_model(d.file("a")), all),
         plain = outlier_loss_of(load_model(d.file("control")), all);
  EXPECT_GT(before, 0);
  EXPECT_LT(after, 0.8 * before) << before << " -> " << after;
  EXPECT_LT(after, 0.8 * plain) << "QuantTune " << after << ", plain fine-tuning " << plain;
}

}  // namespace
}  // namespace tq
