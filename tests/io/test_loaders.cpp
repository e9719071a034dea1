#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "nn/forward.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {

namespace {

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void spit(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write((const char*)b.data(), b.size());
}

// Writes m in the Hugging Face LLaMA layout: HF names, q/k rows in the rotate-half
// order (the inverse of llama.cpp's convert permutation), config.json.
void write_hf_llama(const Model& m, const std::string& dir) {
  const Config& c = m.cfg;
  auto unpermute = [&](const Tensor& w, int heads) {  // pairs layout -> halves layout
    Tensor o = w;
    int hd = c.head_dim, half = hd / 2;
    for (int h = 0; h < heads; h++)
      for (int j = 0; j < half; j++)
        for (int i2 = 0; i2 < 2; i2++)
          std::memcpy(o.row(h * hd + i2 * half + j), w.row(h * hd + 2 * j + i2), sizeof(float) * w.cols());
    return o;
  };
  std::vector<SafeTensorOut> ts;
  ts.push_back(f32_tensor("model.embed_tokens.weight", m.tok_embd));
  for (int l = 0; l < c.n_layers; l++) {
    const Block& b = m.blocks[l];
    std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back(f32_tensor(p + "input_layernorm.weight", b.attn_norm.g));
    ts.push_back(f32_tensor(p + "self_attn.q_proj.weight", unpermute(b.q.w, c.n_heads)));
    ts.push_back(f32_tensor(p + "self_attn.k_proj.weight", unpermute(b.k.w, c.n_kv_heads)));
    ts.push_back(f32_tensor(p + "self_attn.v_proj.weight", b.v.w));
    ts.push_back(f32_tensor(p + "self_attn.o_proj.weight", b.o.w));
    ts.push_back(f32_tensor(p + "post_attention_layernorm.weight", b.mlp_norm.g));
    ts.push_back(f32_tensor(p + "mlp.gate_proj.weight", b.gate.w));
    ts.push_back(f32_tensor(p + "mlp.up_proj.weight", b.up.w));
    ts.push_back(f32_tensor(p + "mlp.down_proj.weight", b.down.w));
  }
  ts.push_back(f32_tensor("model.norm.weight", m.final_norm.g));
  ts.push_back(f32_tensor("lm_head.weight", m.head.w));
  write_safetensors(dir + "/model.safetensors", ts);
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", c.dim},
                      {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads},
                      {"num_key_value_heads", c.n_kv_heads},
                      {"intermediate_size", c.hidden},
                      {"vocab_size", c.vocab},
                      {"max_position_embeddings", c.max_seq},
                      {"rms_norm_eps", c.norm_eps},
                      {"rope_theta", c.rope_theta},
                      {"hidden_act", "silu"},
                      {"tie_word_embeddings", false}};
  std::ofstream(dir + "/config.json") << j.dump(2);
}

int expect_bad_input(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 2) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "multi-line message: " << e.what();
    return 1;
  }
  return 0;
}

}  // namespace

TEST(Loaders, GgufAndHuggingFaceLayoutsGiveTheSameLogits) {
  test::TempDir d;
  Config c = llama_config(48, 2, 6, 2, 64, 300, 32);
  Model m = random_model(c, 11, 0.1f);
  write_gguf_f32(m, d.file("m.gguf"));
  make_dirs(d.file("hf"));
  write_hf_llama(m, d.file("hf"));
  Model g = load_model(d.file("m.gguf"));
  Model h = load_model(d.file("hf"));
  EXPECT_EQ(g.cfg.rope_layout, RopeLayout::pairs);
  EXPECT_EQ(h.cfg.rope_layout, RopeLayout::halves);
  std::vector<int32_t> toks = {1, 50, 7, 299, 3, 3, 120, 8, 9, 10, 11, 12};
  Workspace wg, wh;
  Input in{1, (int)toks.size(), toks.data()};
  forward(g, in, wg);
  forward(h, in, wh);
  EXPECT_LT(test::rel_err(wh.logits.data, wg.logits.data), 1e-5);
  EXPECT_EQ(g.tok.pieces, m.tok.pieces);
}

TEST(Loaders, GgufRoundTripIsBitExact) {
  test::TempDir d;
  Model m = random_model(llama_config(32, 1, 4, 4, 40, 260, 16), 3);
  write_gguf_f32(m, d.file("m.gguf"));
  Model g = load_model(d.file("m.gguf"));
  auto a = named_tensors(m), b = named_tensors(g);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].t->data, b[i].t->data) << a[i].name;
  }
}

// Every truncation of a valid file is rejected with a one-line bad-input error.
TEST(Loaders, TruncatedGgufIsRejectedAtEveryLength) {
  test::TempDir d;
  Model m = random_model(llama_config(16, 1, 2, 2, 16, 259, 8), 4);
  write_gguf_f32(m, d.file("m.gguf"));
  auto bytes = slurp(d.file("m.gguf"));
  int rejected = 0, tried = 0;
  for (size_t n = 0; n < bytes.size(); n += (n < 4096 ? 1 : 97)) {
    tried++;
    rejected += expect_bad_input([&] {
      auto g = parse_gguf(std::span<const uint8_t>(bytes.data(), n));
      (void)g;
      spit(d.file("t.gguf"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
      load_model(d.file("t.gguf"));
    });
  }
  EXPECT_EQ(rejected, tried);
}

TEST(Loaders, HostileGgufFieldsAreRejected) {
  test::TempDir d;
  Model m = random_model(llama_config(16, 1, 2, 2, 16, 259, 8), 4);
  write_gguf_f32(m, d.file("m.gguf"));
  const auto good = slurp(d.file("m.gguf"));
  GgufFile g = parse_gguf(good);
  auto patch = [&](size_t off, const void* v, size_t n) {
    auto b = good;
    std::memcpy(b.data() + off, v, n);
    return b;
  };
  auto rejects = [&](const std::vector<uint8_t>& b) {
    return expect_bad_input([&] { parse_gguf(b); });
  };
  uint32_t bad_magic = 0x12345678, bad_version = 9;
  uint64_t huge = 1ull << 60;
  EXPECT_TRUE(rejects(patch(0, &bad_magic, 4)));
  EXPECT_TRUE(rejects(patch(4, &bad_version, 4)));
  EXPECT_TRUE(rejects(patch(8, &huge, 8)));   // tensor count
  EXPECT_TRUE(rejects(patch(16, &huge, 8)));  // metadata count
  // The first key's length, then a key with invalid UTF-8.
  EXPECT_TRUE(rejects(patch(24, &huge, 8)));
  uint8_t ff = 0xff;
  EXPECT_TRUE(rejects(patch(32, &ff, 1)));
  // Find the first tensor info by its name and corrupt its dims, type and offset.
  std::string name = g.tensors[0].name;
  size_t at = std::search(good.begin(), good.end(), name.begin(), name.end()) - good.begin();
  ASSERT_LT(at, good.size());
  size_t dims = at + name.size() + 4;
  size_t type = dims + 8 * g.tensors[0].ne.size(), off = type + 4;
  uint64_t absurd_dim = 1ull << 50;
  uint32_t bad_type = 77;
  uint64_t past_end = good.size() * 4, overlap = 0;
  EXPECT_TRUE(rejects(patch(dims, &absurd_dim, 8)));
  EXPECT_TRUE(rejects(patch(type, &bad_type, 4)));
  EXPECT_TRUE(rejects(patch(off, &past_end, 8)));
  // Second tensor placed on top of the first.
  std::string name1 = g.tensors[1].name;
  size_t at1 = std::search(good.begin(), good.end(), name1.begin(), name1.end()) - good.begin();
  size_t off1 = at1 + name1.size() + 4 + 8 * g.tensors[1].ne.size() + 4;
  EXPECT_TRUE(rejects(patch(off1, &overlap, 8)));
  EXPECT_FALSE(rejects(good));
}

TEST(Loaders, HostileSafetensorsAreRejected) {
  auto make = [](const std::string& header, size_t data) {
    std::vector<uint8_t> b(8);
    uint64_t n = header.size();
    std::memcpy(b.data(), &n, 8);
    b.insert(b.end(), header.begin(), header.end());
    b.resize(b.size() + data, 0);
    return b;
  };
  auto rejects = [](const std::vector<uint8_t>& b) { return expect_bad_input([&] { parse_safetensors(b); }); };
  EXPECT_FALSE(rejects(make(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 16)));
  EXPECT_TRUE(rejects(make(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 15)));  // past end
  EXPECT_TRUE(rejects(make(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16)));  // size mismatch
  EXPECT_TRUE(rejects(make(R"({"a":{"dtype":"Q9","shape":[2,2],"data_offsets":[0,16]}})", 16)));   // dtype
  EXPECT_TRUE(rejects(make(R"({"a":{"dtype":"F32","shape":[1099511627777,1],"data_offsets":[0,16]}})", 16)));
  EXPECT_TRUE(rejects(make(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                           16)));  // overlap
  EXPECT_TRUE(rejects(make(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}})", 16)));
  EXPECT_TRUE(rejects(make("{\"\xff\":{}}", 0)));  // invalid UTF-8 key
  EXPECT_TRUE(rejects(make(R"([1,2])", 0)));
  EXPECT_TRUE(rejects(make(R"({"a":)", 0)));
  std::vector<uint8_t> lies(16, 0);
  uint64_t big = 1ull << 40;
  std::memcpy(lies.data(), &big, 8);
  EXPECT_TRUE(rejects(lies));
  EXPECT_TRUE(rejects({1, 2, 3}));
}

TEST(Loaders, TruncatedLlama2cIsRejected) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  test::TempDir d;
  auto bytes = slurp(test::shared("models/stories260K/stories260K.bin"));
  auto tok = test::shared("models/stories260K/tok512.bin");
  for (size_t n : {0ul, 10ul, 28ul, 1000ul, bytes.size() / 2, bytes.size() - 1}) {
    spit(d.file("t.bin"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    EXPECT_EQ(expect_bad_input([&] { load_llama2c_model(d.file("t.bin"), tok); }), 1) << n;
  }
  auto big = bytes;
  int32_t dim = 1 << 20;
  std::memcpy(big.data(), &dim, 4);
  spit(d.file("b.bin"), big);
  EXPECT_EQ(expect_bad_input([&] { load_llama2c_model(d.file("b.bin"), tok); }), 1);
}

TEST(Loaders, CliReportsBadFilesInOneLine) {
  test::TempDir d;
  spit(d.file("x.gguf"), {'G', 'G', 'U', 'F', 3, 0, 0, 0});
  auto r = test::run_cli("inspect " + d.file("x.gguf"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = test::run_cli("inspect " + d.file("missing.gguf"));
  EXPECT_EQ(r.status, 2);
  r = test::run_cli("inspect");
  EXPECT_EQ(r.status, 2);
}

}  // namespace tq
