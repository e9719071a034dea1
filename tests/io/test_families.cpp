// The Hugging Face families against the independent NumPy reference written by
// tests/fixtures/make_families.py (outputs stored beside each fixture model).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "nn/accuracy.h"
#include "io/hf.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "nn/forward.h"
#include "test_util.h"

namespace tq {

namespace {

std::string fixture(const std::string& family) { return std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + family; }

struct Reference {
  SafetensorsFile file;
  std::vector<int32_t> ints(const std::string& name) const {
    const SafeTensor* t = file.find(name);
    EXPECT_TRUE(t && t->dtype == "I64") << name;
    std::vector<int32_t> v(t ? t->numel() : 0);
    for (size_t i = 0; i < v.size(); i++) {
      int64_t x;
      std::memcpy(&x, t->bytes.data() + 8 * i, 8);
      v[i] = (int32_t)x;
    }
    return v;
  }
  Tensor floats(const std::string& name) const { return file.read_f32(*file.find(name)); }
  bool has(const std::string& name) const { return file.find(name) != nullptr; }
};
Reference reference(const std::string& family) { return {read_safetensors(fixture(family) + "/reference.safetensors")}; }

std::vector<std::string> texts(const std::string& family) {
  return read_json_file(fixture(family) + "/texts.json").get<std::vector<std::string>>();
}

// Logits of the NumPy reference against ours: float32 here, float64 there.
constexpr double kTol = 1e-5;

void check_lm(const std::string& family, bool bos) {
  Model m = load_model(fixture(family));
  Reference ref = reference(family);
  auto txt = texts(family);
  for (size_t i = 0; i < txt.size(); i++) {
    std::string k = std::to_string(i);
    std::vector<int32_t> ids = ref.ints("input_ids." + k);
    EXPECT_EQ(encode(m.tok, txt[i], bos), ids) << family << " text " << i;
    Workspace ws;
    forward(m, Input{1, (int)ids.size(), ids.data()}, ws);
    Tensor want = ref.floats("logits." + k);
    ASSERT_EQ(ws.logits.shape, want.shape);
    double err = test::rel_err(ws.logits.data, want.data);
    EXPECT_LT(err, kTol) << family << " sequence " << i;
    std::printf("%s sequence %zu: %zu tokens, logits rel err %.2e\n", family.c_str(), i, ids.size(), err);
  }
}

}  // namespace

TEST(Families, OptMatchesNumpyReference) {
  check_lm("opt", true);
  Model m = load_model(fixture("opt"));
  EXPECT_EQ(m.cfg.pos_offset, 2);
  EXPECT_TRUE(m.cfg.tied_head);
  EXPECT_EQ(m.cfg.act, ActKind::relu);
}

TEST(Families, Gpt2MatchesNumpyReference) {
  check_lm("gpt2", false);
  Model m = load_model(fixture("gpt2"));
  EXPECT_EQ(m.cfg.act, ActKind::gelu_tanh);
}

TEST(Families, BertMatchesNumpyReference) {
  Model m = load_model(fixture("bert"));
  Reference ref = reference("bert");
  auto txt = texts("bert");
  EXPECT_EQ(m.labels, (std::vector<std::string>{"negative", "positive"}));
  for (int i = 0; ref.has("logits." + std::to_string(i)); i++) {
    std::string k = std::to_string(i);
    std::vector<int32_t> ids = ref.ints("input_ids." + k), types = ref.ints("token_type_ids." + k);
    if (i < (int)txt.size()) {
      EXPECT_EQ(encode(m.tok, txt[i], true), ids) << "text " << i;
    }
    Input in{1, (int)ids.size(), ids.data()};
    in.types = types.data();
    Workspace ws;
    forward(m, in, ws);
    Tensor want = ref.floats("logits." + k);
    ASSERT_EQ(ws.logits.shape, want.shape);
    double err = test::rel_err(ws.logits.data, want.data);
    EXPECT_LT(err, kTol) << "input " << i;
    std::printf("bert input %d: %zu tokens, logits rel err %.2e\n", i, ids.size(), err);
  }
}

TEST(Families, VitMatchesNumpyReference) {
  Model m = load_model(fixture("vit"));
  Reference ref = reference("vit");
  ImageSet s;
  s.channels = 3, s.height = s.width = 8;
  for (; ref.has("pixels." + std::to_string(s.n)); s.n++) {
    for (int32_t v : ref.ints("pixels." + std::to_string(s.n))) s.pixels.push_back((uint8_t)v);
    s.labels.push_back(0);
  }
  ASSERT_EQ(s.n, 3);
  auto batches = image_batches(m.cfg, s, 8);  // one batch of three images
  ASSERT_EQ(batches.size(), 1u);
  Workspace ws;
  forward(m, batches[0].input(), ws);
  for (int i = 0; i < 3; i++) {
    Tensor want = ref.floats("logits." + std::to_string(i));
    double err = test::rel_err(ws.logits.row(i), want.ptr(), 3);
    EXPECT_LT(err, kTol) << "image " << i;
    std::printf("vit image %d: logits rel err %.2e\n", i, err);
  }
}

}  // namespace tq
