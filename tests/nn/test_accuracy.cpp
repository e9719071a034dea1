// Classification evaluation, the eval/run command lines, and the loaders' refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "nn/accuracy.h"
#include "io/hf.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace tq {

namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& family) { return std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + family; }

// A copy of a fixture with config.json edited.
std::string edited(const test::TempDir& d, const std::string& family, const nlohmann::json& patch) {
  std::string dir = d.file(family);
  fs::copy(fixture(family), dir, fs::copy_options::recursive);
  nlohmann::json j = read_json_file(dir + "/config.json");
  j.merge_patch(patch);
  std::ofstream(dir + "/config.json") << j.dump();
  return dir;
}

int bad_input_of(const std::string& dir) {
  try {
    load_model(dir);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.exit_code;
  }
  return 0;
}

}  // namespace

TEST(Accuracy, CountsAndComparesWithAReference) {
  Model m = load_model(fixture("bert"));
  std::vector<TextExample> ex = {{"a good film", 1}, {"a bad film", 0}, {"not good", 0}, {"charming", 1}};
  ClassEval self = eval_classifier(m, text_batches(m, ex), no_hooks(), &m);
  EXPECT_EQ(self.total, 4);
  EXPECT_EQ(self.top1_agree(), 1.0);
  for (float k : self.kld) EXPECT_EQ(k, 0.0f);
  // Against a model with another classifier: same examples, different distributions.
  Model other = m;
  for (float& w : other.head.w.data) w = -w;
  ClassEval r = eval_classifier(m, text_batches(m, ex), no_hooks(), &other);
  EXPECT_EQ(r.correct, self.correct);
  EXPECT_LT(r.top1_agree(), 1.0);
  for (float k : r.kld) EXPECT_GT(k, 0.0f);
  // Accuracy counts argmax against labels: flipping every label flips the count (two classes).
  for (auto& e : ex) e.label = 1 - e.label;
  EXPECT_EQ(eval_classifier(m, text_batches(m, ex)).correct, 4 - self.correct);
  ex[0].label = 2;
  EXPECT_THROW(eval_classifier(m, text_batches(m, ex)), Error);
}

TEST(Accuracy, ImagesMustFitTheModel) {
  Model m = load_model(fixture("vit"));
  ImageSet s;
  s.n = 1, s.channels = 1, s.height = s.width = 8;
  s.pixels.assign(64, 0);
  EXPECT_THROW(image_batches(m.cfg, s), Error);  // three channels expected
  Model bert = load_model(fixture("bert"));
  EXPECT_THROW(image_batches(bert.cfg, s), Error);
}

TEST(FamilyLoaders, UnsupportedVariantsAreRefused) {
  test::TempDir d;
  EXPECT_EQ(bad_input_of(edited(d, "opt", {{"word_embed_proj_dim", 8}})), 2);  // OPT-350m's project_in/out
  fs::remove_all(d.file("opt"));
  EXPECT_EQ(bad_input_of(edited(d, "opt", {{"do_layer_norm_before", false}})), 2);
  EXPECT_EQ(bad_input_of(edited(d, "gpt2", {{"n_embd", 32}})), 2);  // shapes disagree
  EXPECT_EQ(bad_input_of(edited(d, "bert", {{"position_embedding_type", "relative_key"}})), 2);
  EXPECT_EQ(bad_input_of(edited(d, "vit", {{"architectures", {"ViTForMaskedImageModeling"}}})), 2);
  // A lone safetensors file of no known layout, and a folder with two.
  write_safetensors(d.file("x.safetensors"), {f32_tensor("w", Tensor({2, 2}))});
  EXPECT_EQ(bad_input_of(d.file("x.safetensors")), 2);
  fs::create_directory(d.file("two"));
  fs::copy(d.file("x.safetensors"), d.file("two/a.safetensors"));
  fs::copy(d.file("x.safetensors"), d.file("two/b.safetensors"));
  EXPECT_EQ(bad_input_of(d.file("two")), 2);
}

TEST(Cli, EvalReportsAccuracy) {
  test::TempDir d;
  std::ofstream(d.file("dev.tsv")) << "sentence\tlabel\na good film \t1\na bad film \t0\nnot good \t0\n";
  auto r = test::run_cli("eval " + fixture("bert") + " --data sst2:" + d.file("dev.tsv") + " --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["total"], 3);
  EXPECT_EQ(j["accuracy"].get<double>(), j["correct"].get<double>() / 3);
  r = test::run_cli("eval " + fixture("bert") + " --data sst2:" + d.file("missing.tsv"));
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(Cli, EvalMnistAgainstAReference) {
  TQ_REQUIRE_SHARED("models/vit-mnist-tiny-agentzz1");
  std::string model = test::shared("models/vit-mnist-tiny-agentzz1"), data = "mnist:" + test::shared("data/mnist");
  auto r = test::run_cli("eval " + model + " --data " + data + " --offset 100 --limit 200 --compare " + model +
                         " --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["total"], 200);
  EXPECT_EQ(j["top1_agree"], 1.0);
  EXPECT_EQ(j["kld_mean"], 0.0);
  r = test::run_cli("eval " + fixture("gpt2") + " --data " + data);  // a language model has no accuracy
  EXPECT_EQ(r.status, 2);
}

TEST(Cli, RunClassifiesOneInput) {
  // The ViT fixture's first reference image, written as a PPM: the class is the reference's argmax.
  test::TempDir d;
  SafetensorsFile ref = read_safetensors(fixture("vit") + "/reference.safetensors");
  const SafeTensor* px = ref.find("pixels.0");
  ASSERT_TRUE(px);
  std::string ppm = "P6\n8 8\n255\n";
  for (int p = 0; p < 64; p++)
    for (int c = 0; c < 3; c++) ppm += (char)px->bytes[8 * (c * 64 + p)];  // low byte of each I64
  std::ofstream(d.file("x.ppm"), std::ios::binary) << ppm;
  Tensor logits = ref.read_f32(*ref.find("logits.0"));
  int want = (int)(std::max_element(logits.data.begin(), logits.data.end()) - logits.data.begin());
  auto r = test::run_cli("run " + fixture("vit") + " --image " + d.file("x.ppm") + " --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["class"], want);
  r = test::run_cli("run " + fixture("bert") + " --text \"a charming film\"");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("class"), std::string::npos);
  r = test::run_cli("run " + fixture("gpt2") + " -p \"the rest\" -n 4");  // generation still works
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("the rest", 0), 0u) << r.out;
  r = test::run_cli("run " + fixture("vit") + " -p hello");
  EXPECT_EQ(r.status, 2);
  r = test::run_cli("run " + fixture("gpt2") + " --text hello");
  EXPECT_EQ(r.status, 2);
}

TEST(Cli, RunClassifiesAnMnistDigit) {
  TQ_REQUIRE_SHARED("models/vit-mnist-sonjuhy");
  auto r = test::run_cli("run " + test::shared("models/vit-mnist-sonjuhy") + " --mnist " +
                         test::shared("data/mnist") + " --index 0 --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["true_class"], 7);
  EXPECT_EQ(j["class"], 7);
}

}  // namespace tq
