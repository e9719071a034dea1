// safetensors export (compressed-tensors): the directory is read back with tquant's own
// safetensors reader; codes and scales are compared with the plan's, the packing is undone
// here independently of the writer, and the dequantized weights, loaded as a float Hugging
// Face model, compute the plan's simulated weights' function.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/json.h"
#include "core/mmap.h"
#include "io/atomic_file.h"
#include "quant/observer.h"
#include "export/safetensors_export.h"
#include "io/hf.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "nn/block.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "small_inputs.h"
#include "test_util.h"

namespace tq {

namespace {

using test::expect_refusal;

struct Quantized {
  Model sim;
  QuantPlan plan;
};

CalibData random_calib(int n, int T) {
  CalibData cd;
  for (int b = 0; b < n; b++) {
    Batch x{1, T, std::vector<int32_t>(T), {}, {}, {}};
    for (int t = 0; t < T; t++) x.tokens[t] = 3 + (b * 101 + t * 37 + 11) % 290;
    cd.batches.push_back(x);
  }
  return cd;
}

// A small LLaMA (GQA, pairs rotary layout as from GGUF) quantized by a recipe.
Quantized quantize(Recipe r) {
  Model m = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 3, 0.2f);
  Quantized q;
  CalibData cd = random_calib(6, 24);
  PassContext ctx(m, q.plan, cd);
  run_recipe(r, ctx);
  q.sim = simulate_weights(m, q.plan);
  return q;
}

std::vector<float> f32s(const SafeTensor& t) {
  EXPECT_EQ(t.dtype, "F32") << t.name;
  std::vector<float> v(t.numel());
  std::memcpy(v.data(), t.bytes.data(), v.size() * 4);
  return v;
}
std::vector<int32_t> i32s(const SafeTensor& t) {
  std::vector<int32_t> v(t.numel());
  std::memcpy(v.data(), t.bytes.data(), v.size() * 4);
  return v;
}

std::string module_of(const Model& m, const std::string& name) {
  std::string hf = *hf_name(llama_hf_rules(), name, m.cfg.n_layers);
  return hf.substr(0, hf.size() - 7);
}

// The float HF directory of what the export holds: each weight decoded as
// compressed-tensors defines it, (q − z)·Δ, with the config minus quantization_config.
void write_dequantized(const std::string& qdir, const std::string& fdir, const nlohmann::json& cfg) {
  SafetensorsFile f = read_safetensors(qdir + "/model.safetensors");
  std::vector<SafeTensorOut> outs;
  for (auto& t : f.tensors) {
    const std::string& n = t.name;
    auto ends = [&](const std::string& s) { return n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
    std::string mod;
    if (ends(".weight") && t.dtype == "F32") {
      outs.push_back({n, "F32", t.shape, std::vector<uint8_t>(t.bytes.begin(), t.bytes.end()), {}});
      continue;
    }
    if (ends(".weight") && t.dtype == "I8") mod = n.substr(0, n.size() - 7);
    else if (ends(".weight_packed")) mod = n.substr(0, n.size() - 14);
    else continue;
    const SafeTensor* sc = f.find(mod + ".weight_scale");
    EXPECT_TRUE(sc) << mod;
    if (!sc) continue;
    std::vector<float> scale = f32s(*sc);
    std::vector<int64_t> shape = t.shape;
    std::vector<int32_t> codes;  // signed compressed-tensors values
    std::vector<int32_t> zp;     // per scale entry, signed
    int64_t rows = shape[0], cols;
    if (t.dtype == "I8") {
      cols = shape[1];
      for (int64_t k = 0; k < t.numel(); k++) codes.push_back((int8_t)t.bytes[k]);
    } else {
      std::vector<int64_t> s64(2);
      std::memcpy(s64.data(), f.find(mod + ".weight_shape")->bytes.data(), 16);
      rows = s64[0], cols = s64[1];
      shape = s64;
      std::vector<int32_t> packed = i32s(t);
      const int64_t words = t.shape[1];
      for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++)  // 4 bits: value k % 8 of word k / 8, from the low end; offset 8
          codes.push_back((int32_t)(((uint32_t)packed[r * words + k / 8] >> (4 * (k % 8))) & 15) - 8);
    }
    const int64_t per_row = sc->numel() == 1 ? 0 : sc->shape[1];
    zp.assign(scale.size(), 0);
    if (const SafeTensor* z = f.find(mod + ".weight_zero_point")) {
      std::vector<int32_t> zpk = i32s(*z);  // packed along the rows: [ceil(rows/8), groups]
      for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < per_row; g++)
          zp[r * per_row + g] = (int32_t)(((uint32_t)zpk[(r / 8) * per_row + g] >> (4 * (r % 8))) & 15) - 8;
    }
    std::vector<uint8_t> bytes(rows * cols * 4);
    float* w = (float*)bytes.data();
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = 0; k < cols; k++) {
        int64_t p = per_row == 0 ? 0 : r * per_row + k / (cols / per_row);
        w[r * cols + k] = (float)(codes[r * cols + k] - zp[p]) * scale[p];
      }
    outs.push_back({mod + ".weight", "F32", shape, std::move(bytes), {}});
  }
  make_dirs(fdir);
  nlohmann::json c = cfg;
  c.erase("quantization_config");
  write_file_atomic(fdir + "/config.json", c.dump());
  write_safetensors(fdir + "/model.safetensors", outs);
}

// Exports q, checks every quantized linear's codes and scales against the plan, and the function.
void export_and_check(const Quantized& q, const test::TempDir& d, nlohmann::json& qc,
                      const SafetensorsExportOptions& opt = {}) {
  auto res = export_safetensors(q.sim, q.plan, d.file("st"), opt);
  nlohmann::json cfg = read_json_file(d.file("st/config.json"));
  qc = cfg["quantization_config"];
  EXPECT_EQ(cfg["quantization_config"], res.quantization_config);
  SafetensorsFile f = read_safetensors(d.file("st/model.safetensors"));
  const Model& m = q.sim;
  int checked = 0;
  for (auto& [name, s] : q.plan.weights) {
    if (!s.enabled()) continue;
    const Tensor* wp = nullptr;
    for (auto& nt : named_tensors(const_cast<Model&>(m)))
      if (nt.name == name) wp = nt.t;
    ASSERT_TRUE(wp) << name;
    const Tensor& w = *wp;
    const int rows = (int)w.dim(0), cols = (int)w.dim(1);
    std::vector<int32_t> codes(w.numel());
    quantize_codes(w.ptr(), rows, cols, s, codes.data());
    const std::string mod = module_of(m, name);
    auto ref = parse_weight_name(name, m.cfg.n_layers);
    const Slot slot = ref ? ref->slot : Slot::o;
    const SafeTensor* st_scale = f.find(mod + ".weight_scale");
    ASSERT_TRUE(st_scale) << mod;
    std::vector<float> scale = f32s(*st_scale);
    const int64_t per_row = s.gran == Gran::tensor ? 0 : (int64_t)s.scale.size() / rows;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t g = 0; g < std::max<int64_t>(per_row, 1); g++) {
        const int64_t src = hf_source_row(m.cfg, slot, r);
        const int64_t ours = per_row ? src * per_row + g : 0, theirs = per_row ? r * per_row + g : 0;
        ASSERT_EQ(scale[theirs], s.scale[ours]) << mod;
      }
    if (const SafeTensor* i8 = f.find(mod + ".weight"); i8 && i8->dtype == "I8") {
      for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++)
          ASSERT_EQ((int8_t)i8->bytes[r * cols + k], codes[hf_source_row(m.cfg, slot, r) * cols + k]) << mod;
    } else {
      const SafeTensor* p = f.find(mod + ".weight_packed");
      ASSERT_TRUE(p) << mod;
      EXPECT_EQ(p->dtype, "I32");
      EXPECT_EQ(p->shape, (std::vector<int64_t>{rows, (cols + 7) / 8}));
      std::vector<int32_t> words = i32s(*p);
      const int offset = s.scheme == Scheme::sym ? 8 : 0;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++)
          ASSERT_EQ((int)(((uint32_t)words[r * p->shape[1] + k / 8] >> (4 * (k % 8))) & 15),
                    codes[hf_source_row(m.cfg, slot, r) * cols + k] + offset)
              << mod;
      const SafeTensor* shape = f.find(mod + ".weight_shape");
      ASSERT_TRUE(shape);
      EXPECT_EQ(shape->dtype, "I64");
    }
    checked++;
  }
  EXPECT_GT(checked, 0);
  // The dequantized export, loaded as a float HF model, is the simulated model.
  write_dequantized(d.file("st"), d.file("fl"), cfg);
  Model back = load_model(d.file("fl"));
  std::vector<int32_t> toks = {5, 77, 140, 9, 260, 33, 18, 201};
  Workspace want, got;
  forward(q.sim, Input{1, (int)toks.size(), toks.data()}, want);
  forward(back, Input{1, (int)toks.size(), toks.data()}, got);
  EXPECT_EQ(back.cfg.rope_layout, RopeLayout::halves);
  EXPECT_LT(test::rel_err(got.logits.data, want.logits.data), 1e-5);
}

}  // namespace

TEST(SafetensorsExport, W8A8StaticIsIntQuantizedWithThePlansCodesAndScales) {
  test::TempDir d;
  Quantized q = quantize(parse_recipe("w8a8-rtn"));
  nlohmann::json qc;
  export_and_check(q, d, qc);
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_EQ(qc["format"], "int-quantized");
  EXPECT_EQ(qc["quantization_status"], "compressed");
  ASSERT_TRUE(qc["config_groups"].contains("group_0"));
  const auto& g = qc["config_groups"]["group_0"];
  for (const char* k : {"targets", "weights", "input_activations"}) EXPECT_TRUE(g.contains(k)) << k;
  EXPECT_EQ(g["weights"]["num_bits"], 8);
  EXPECT_EQ(g["weights"]["type"], "int");
  EXPECT_EQ(g["weights"]["symmetric"], true);
  EXPECT_EQ(g["weights"]["strategy"], "channel");
  EXPECT_EQ(g["input_activations"]["strategy"], "tensor");
  EXPECT_EQ(g["input_activations"]["dynamic"], false);
  EXPECT_EQ(g["input_activations"]["symmetric"], false);
  // Every static input carries its plan step as input_scale.
  SafetensorsFile f = read_safetensors(d.file("st/model.safetensors"));
  int inputs = 0;
  for (auto& [key, s] : q.plan.sites) {
    auto site = parse_site_key(key, q.sim.cfg.n_layers);
    if (!s.enabled() || !site || site->first == Site::q || site->first == Site::k || site->first == Site::v) continue;
    for (const LinearDef& l : linear_table())
      if (l.input == site->first && site->first != Site::head_in) {
        const SafeTensor* t = f.find(module_of(q.sim, weight_name(site->second, l.slot)) + ".input_scale");
        ASSERT_TRUE(t) << key;
        EXPECT_EQ(f32s(*t), s.scale) << key;
        // The plan's asymmetric static steps: compressed-tensors' signed zero point, z − 128.
        ASSERT_EQ(s.scheme, Scheme::asym) << key;
        const SafeTensor* z = f.find(module_of(q.sim, weight_name(site->second, l.slot)) + ".input_zero_point");
        ASSERT_TRUE(z) << key;
        EXPECT_EQ(z->dtype, "I8");
        EXPECT_EQ((int)(int8_t)z->bytes[0], (int)s.zero[0] - 128) << key;
        inputs++;
      }
  }
  EXPECT_EQ(inputs, 2 * 7);
}

TEST(SafetensorsExport, W4A16GroupsArePackQuantizedWithPackedZeroPoints) {
  test::TempDir d;
  Quantized q = quantize(parse_recipe("w4a16-g32-rtn"));
  nlohmann::json qc;
  export_and_check(q, d, qc);
  EXPECT_EQ(qc["format"], "pack-quantized");
  const auto& w = qc["config_groups"]["group_0"]["weights"];
  EXPECT_EQ(w["num_bits"], 4);
  EXPECT_EQ(w["strategy"], "group");
  EXPECT_EQ(w["group_size"], 32);
  EXPECT_EQ(w["symmetric"], false);
  EXPECT_TRUE(qc["config_groups"]["group_0"]["input_activations"].is_null());
  SafetensorsFile f = read_safetensors(d.file("st/model.safetensors"));
  const SafeTensor* z = f.find("model.layers.0.mlp.down_proj.weight_zero_point");
  ASSERT_TRUE(z);
  EXPECT_EQ(z->shape, (std::vector<int64_t>{64 / 8, 3}));  // down: 64 rows, 96 columns in groups of 32
}

TEST(SafetensorsExport, OutlierTuneExportsWithoutSymmetrizationAndAttentionInFloat) {
  test::TempDir d;
  Recipe r = parse_recipe("w8a8-outliertune");
  // Symmetrization gives the RMSNorms a bias, which LLaMA has no place for.
  {
    Quantized q = quantize(r);
    SafetensorsExportOptions opt;
    opt.float_attention = true;
    expect_refusal([&] { export_safetensors(q.sim, q.plan, d.file("x"), opt); }, "blk.0.attn_norm.bias");
  }
  override_param(r, "symmetrize", false);
  Quantized q = quantize(r);
  // Per-token q, k, v inside attention have no compressed-tensors field.
  expect_refusal([&] { export_safetensors(q.sim, q.plan, d.file("x")); }, "site blk.0.k");
  EXPECT_FALSE(file_exists(d.file("x/config.json")));
  SafetensorsExportOptions opt;
  opt.float_attention = true;
  nlohmann::json qc;
  export_and_check(q, d, qc, opt);
  EXPECT_EQ(qc["format"], "int-quantized");
  // qkv_in and up_in static (step 1 after the step fold), o_in and down_in per token.
  int stat = 0, tok = 0;
  for (auto& [name, g] : qc["config_groups"].items()) {
    const auto& in = g["input_activations"];
    if (in["dynamic"] == false) stat += (int)g["targets"].size();
    if (in["dynamic"] == true && in["strategy"] == "token") tok += (int)g["targets"].size();
  }
  EXPECT_EQ(stat, 2 * 5);  // q, k, v, gate, up
  EXPECT_EQ(tok, 2 * 2);   // o, down
}

// The case: W8A8 OutlierTune of stories260K on its calibration slice (README), without
// symmetrization and with attention left in float, reads back to the plan's codes and scales.
TEST(SafetensorsExport, StoriesOutlierTuneReadsBackToThePlan) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  test::TempDir d;
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  Quantized q;
  CalibData cd = load_calib(test::shared("data/tinystories/tinystories_valid_head.txt") + "?from=0.9&limit=128", m);
  Recipe r = parse_recipe("w8a8-outliertune");
  override_param(r, "symmetrize", false);
  PassContext ctx(m, q.plan, cd);
  run_recipe(r, ctx);
  q.sim = simulate_weights(m, q.plan);
  SafetensorsExportOptions opt;
  opt.float_attention = true;
  nlohmann::json qc;
  export_and_check(q, d, qc, opt);
  EXPECT_EQ(qc["format"], "int-quantized");
  EXPECT_EQ(qc["config_groups"].size(), 2u);  // static per-tensor inputs (qkv_in, up_in), per-token (o_in, down_in)
  EXPECT_EQ(qc["ignore"], nlohmann::json::array({"lm_head"}));
}

TEST(SafetensorsExport, RefusesWhatTheFormatCannotHold) {
  test::TempDir d;
  Quantized hqq = quantize(parse_recipe("w4-hqq-g32"));
  expect_refusal([&] { export_safetensors(hqq.sim, hqq.plan, d.file("x")); }, "fractional zero point");
  // RepQ-ViT's log-sqrt2 softmax codes: refused by name, and --float-attention drops them.
  Quantized rep = quantize(parse_recipe("w8a8-repqvit"));
  expect_refusal([&] { export_safetensors(rep.sim, rep.plan, d.file("x")); }, "site blk.0.");
  EXPECT_FALSE(file_exists(d.file("x/config.json")));
}

}  // namespace tq

namespace tq {

// The tokenizer.json the export writes reads back (load_hf_tokenizer) to a tokenizer that
// encodes like the model's own: stories260K's SentencePiece vocabulary, merges from its scores.
TEST(SafetensorsExport, TokenizerJsonEncodesLikeTheModelsTokenizer) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  test::TempDir d;
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  write_file_atomic(d.file("tokenizer.json"), hf_tokenizer_json(m.tok).dump());
  Tokenizer back = load_hf_tokenizer(d.path, {{"bos_token_id", m.tok.bos}, {"eos_token_id", m.tok.eos}});
  ASSERT_EQ(back.size(), m.tok.size());
  std::string text = read_text_file(test::shared("data/tinystories/tinystories_valid_head.txt")).substr(0, 20000);
  size_t lines = 0;
  for (size_t a = 0, b; a < text.size() && lines < 200; a = b + 1, lines++) {
    b = text.find('\n', a);
    if (b == std::string::npos) b = text.size();
    const std::string line = text.substr(a, b - a);
    ASSERT_EQ(encode(back, line, true), encode(m.tok, line, true)) << line;
  }
  EXPECT_GT(lines, 50u);
}

}  // namespace tq
