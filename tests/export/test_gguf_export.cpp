// GGUF export: the file is read back with tquant's own GGUF reader and every
// tensor compared with the plan's simulation: equal where the type holds the
// plan exactly, within the type's rounding where it approximates it.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "eval/evaluate.h"
#include "export/gguf_export.h"
#include "io/gguf.h"
#include "io/load.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "test_util.h"

namespace tq {


namespace {

struct Quantized {
  Model fp, sim;
  QuantPlan plan;
};
Quantized quantize(const Model& fp, const std::string& recipe, const CalibData& cd = {}) {
  Quantized q{fp, {}, {}};
  Model m = fp;
  PassContext ctx(m, q.plan, cd);
  run_recipe(parse_recipe(recipe), ctx);
  q.sim = simulate_weights(m, q.plan);
  return q;
}

// Every tensor of the file against the simulation; returns the reports by name.
std::map<std::string, GgufTensorReport> check_file(const Quantized& q, const std::string& path,
                                                   const GgufExportOptions& opt = {}) {
  auto reports = export_gguf(q.sim, q.plan, path, opt);
  Model back = model_from_gguf(read_gguf(path));
  std::map<std::string, GgufTensorReport> by;
  auto a = named_tensors(const_cast<Model&>(q.sim)), b = named_tensors(back);
  EXPECT_EQ(a.size(), b.size());
  for (auto& r : reports) by[r.name] = r;
  for (size_t i = 0; i < a.size() && i < b.size(); i++) {
    EXPECT_EQ(a[i].name, b[i].name);
    const GgufTensorReport& r = by.at(a[i].name);
    double mx = 0;
    for (int64_t k = 0; k < a[i].t->numel(); k++) mx = std::max(mx, std::fabs((double)a[i].t->data[k] - b[i].t->data[k]));
    EXPECT_EQ(mx, r.max_abs_diff) << r.name;  // the report measures what a reader gets
    if (r.type == "F32") {
      EXPECT_TRUE(r.exact()) << r.name;
    }
  }
  return by;
}

}  // namespace

TEST(GgufExport, HqqFourBitGoesToQ4_1WithThePlansCodes) {
  test::TempDir d;
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 1, 0.1f);
  Quantized q = quantize(fp, "w4-hqq-g32");
  auto r = check_file(q, d.file("m.gguf"));
  for (auto& [name, t] : r) {
    bool linear = q.plan.weights.count(name);
    EXPECT_EQ(t.type, linear ? "Q4_1" : "F32") << name;
    if (!linear) continue;
    EXPECT_NE(t.how.find("plan codes"), std::string::npos) << name;
    // Only d and m are rounded to f16: |Δ·(q − z) − (d·q + m)| ≤ 2^-11·(|Δ|·15 + |zΔ|) per element.
    const QuantSpec& s = q.plan.weights.at(name);
    double bound = 0;
    for (size_t p = 0; p < s.scale.size(); p++)
      bound = std::max(bound, std::ldexp(1.0, -11) * (s.scale[p] * 15 + std::fabs(s.zero[p] * s.scale[p])));
    EXPECT_LE(t.max_abs_diff, bound) << name;
    EXPECT_GT(t.max_abs_diff, 0) << name;
  }
}

TEST(GgufExport, SymmetricCodesAndFallbacks) {
  test::TempDir d;
  // hidden 44: ffn_down rows are not whole 32-blocks → the F16 fallback (as llama.cpp), or F32 (exact).
  Model fp = random_model(llama_config(64, 2, 4, 2, 44, 300, 64), 2, 0.1f);
  Quantized q = quantize(fp, "w8a16-rtn");  // symmetric 8-bit per row: Q8_0 holds the codes, d = Δ in f16
  auto r = check_file(q, d.file("m.gguf"));
  EXPECT_EQ(r.at("blk.0.attn_q.weight").type, "Q8_0");
  EXPECT_NE(r.at("blk.0.attn_q.weight").how.find("plan codes"), std::string::npos);
  EXPECT_LT(r.at("blk.0.attn_q.weight").rel_rms, 1e-3);
  EXPECT_EQ(r.at("blk.1.ffn_down.weight").type, "F16");
  EXPECT_LT(r.at("blk.1.ffn_down.weight").rel_rms, 1e-3);
  EXPECT_NE(r.at("blk.1.ffn_down.weight").how.find("fallback"), std::string::npos);
  EXPECT_EQ(r.at("token_embd.weight").type, "F32");
  GgufExportOptions f32;
  f32.fallback = "f32";
  auto e = check_file(q, d.file("e.gguf"), f32);
  EXPECT_EQ(e.at("blk.1.ffn_down.weight").type, "F32");
  EXPECT_TRUE(e.at("blk.1.ffn_down.weight").exact());
  GgufExportOptions f16;
  f16.float_type = "f16";
  auto h = check_file(q, d.file("h.gguf"), f16);
  EXPECT_EQ(h.at("blk.1.ffn_down.weight").type, "F16");
  EXPECT_EQ(h.at("token_embd.weight").type, "F16");
  EXPECT_EQ(h.at("blk.1.attn_norm.weight").type, "F32");
  // 8-bit affine HQQ is re-quantized symmetrically to Q8_0.
  Quantized h8 = quantize(fp, "w8-hqq-g64");
  auto r8 = check_file(h8, d.file("h8.gguf"));
  EXPECT_EQ(r8.at("blk.0.attn_q.weight").type, "Q8_0");
  EXPECT_NE(r8.at("blk.0.attn_q.weight").how.find("re-quantized"), std::string::npos);
  EXPECT_LT(r8.at("blk.0.attn_q.weight").rel_rms, 0.01);
}

TEST(GgufExport, KQuantsWhereRowsAreWholeSuperBlocks) {
  test::TempDir d;
  Model fp = random_model(llama_config(256, 1, 4, 2, 288, 300, 64), 3, 0.05f);
  GgufExportOptions k;
  k.types = "kquant";
  for (auto [recipe, type] : {std::pair{"w4-hqq-g64", "Q4_K"}, {"w3-hqq-g128", "Q3_K"}, {"w2-hqq-g32", "Q2_K"}}) {
    Quantized q = quantize(fp, recipe);
    auto r = check_file(q, d.file("k.gguf"), k);
    EXPECT_EQ(r.at("blk.0.attn_q.weight").type, type) << recipe;
    EXPECT_EQ(r.at("blk.0.ffn_down.weight").type, "Q4_1") << recipe;  // in = 288 is not whole 256-blocks
    EXPECT_LT(r.at("blk.0.attn_q.weight").rel_rms, 0.5) << recipe;
  }
}

TEST(GgufExport, RefusesWhatLlamaCannotHold) {
  test::TempDir d;
  Model biased = random_model(llama_config(64, 1, 4, 2, 96, 300, 64), 4, 0.1f, true);
  try {
    export_gguf(biased, QuantPlan{}, d.file("b.gguf"));
    FAIL() << "exported biases";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 2);
    EXPECT_NE(std::string(e.what()).find("bias"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(file_exists(d.file("b.gguf")));
  Model fp = random_model(llama_config(64, 1, 4, 2, 96, 300, 64), 5, 0.1f);
  QuantPlan p;
  p.sites["blk.0.qkv_in"].pre_inv.assign(64, 2.0f);
  EXPECT_THROW(export_gguf(fp, p, d.file("p.gguf")), Error);
}

TEST(GgufExport, CommandExportsATquantDirectory) {
  test::TempDir d;
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 6, 0.1f);
  Quantized q = quantize(fp, "w4-hqq-g64");
  Model folded = fp;
  save_tquant_dir(d.file("q"), folded, q.plan);
  auto r = test::run_cli("export " + d.file("q") + " --gguf " + d.file("m.gguf") + " --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tensors"].size(), named_tensors(fp).size());
  Model back = load_model(d.file("m.gguf"));
  EXPECT_EQ(back.cfg.n_layers, 2);
  EXPECT_EQ(test::run_cli("export " + d.file("q") + " --gguf " + d.file("x.gguf") + " --types nonsense").status, 2);
}

// Done-when 3: a mixed-precision stories260K exported to GGUF evaluates like the plan's simulation.
TEST(GgufExport, MixedPrecisionStories260KEvaluatesLikeTheSimulation) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  test::TempDir d;
  Model fp = load_model(test::shared("models/stories260K/stories260K.gguf"));
  std::string data = test::shared("data/tinystories/tinystories_valid_head.txt");
  CalibData cd = load_calib(parse_data_spec(data + "?from=0.9&limit=16"), fp);
  Quantized q = quantize(fp, "w4-kurtboost", cd);
  std::set<std::string> rungs;
  for (auto& [name, s] : q.plan.weights) rungs.insert(fmt::format("b{}g{}", s.bits, s.group));
  EXPECT_GE(rungs.size(), 2u);  // mixed precision
  auto r = check_file(q, d.file("m.gguf"));
  Model back = load_model(d.file("m.gguf"));
  DataSpec eval = parse_data_spec(data + "?to=0.9&limit=100");
  EvalResult sim = evaluate(q.sim, eval, no_hooks(), &fp), gguf = evaluate(back, eval, no_hooks(), &fp);
  double rel = std::fabs(gguf.value - sim.value) / sim.value;
  RecordProperty("ppl_simulation", std::to_string(sim.value));
  RecordProperty("ppl_gguf", std::to_string(gguf.value));
  EXPECT_LT(rel, 2e-3) << sim.value << " vs " << gguf.value;
  // The tensors whose type holds the plan (F32 here) are equal; only f16 d, m and Q8_0 re-quantization differ.
  for (auto& [name, t] : r)
    if (t.type == "F32") {
      EXPECT_EQ(t.max_abs_diff, 0) << name;
    }
}

}  // namespace tq
