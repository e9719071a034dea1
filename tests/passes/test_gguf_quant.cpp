// The GGUF passes: auto-gguf writes files of at most the budget (the size is known exactly
// before writing), in types and layouts llama.cpp defines, whose tensors are exactly the plan's;
// larger budgets lower the estimated and the measured KL; llama.cpp's rules for a base type;
// the plan survives the tquant directory; the same inputs give the same bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/mmap.h"
#include "nn/kld.h"
#include "export/gguf_export.h"
#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/load.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "export/gguf_writer.h"
#include "passes/gguf_quant.h"
#include "passes/stress.h"
#include "test_util.h"

namespace tq {

namespace {

struct Calibrated {
  Model fp;
  CalibData calib;
};
Calibrated setup(const test::TempDir& d, int dim, int hidden, uint64_t seed) {
  Calibrated s{random_model(llama_config(dim, 2, 4, 2, hidden, 300, 64), seed, 0.08f), {}};
  s.calib = load_calib(parse_data_spec(test::write_sample_text(d) + "?limit=12"), s.fp);
  return s;
}

struct Quantized {
  Model m;
  QuantPlan plan;
  GgufQuantResult res;
};
Quantized run(const Calibrated& s, GgufQuantOptions o) {
  Quantized r{s.fp, {}, {}};
  r.res = gguf_quantize(r.m, r.plan, s.calib, o);
  return r;
}

// The types llama.cpp's ggml defines and reads for weights.
const std::set<uint32_t> kLlamaTypes = {ggml_f32,  ggml_f16,  ggml_q4_0, ggml_q4_1, ggml_q5_0, ggml_q5_1, ggml_q8_0,
                                        ggml_q2_k, ggml_q3_k, ggml_q4_k, ggml_q5_k, ggml_q6_k};

// Exports and checks the file as llama.cpp would read it: size, alignment, types, metadata;
// every tensor read back equals the plan's.
void check_file(const Quantized& r, const std::string& path, int64_t max_bytes) {
  export_gguf(r.m, r.plan, path);
  const int64_t size = (int64_t)read_text_file(path).size();
  EXPECT_EQ(size, r.res.file_bytes);
  if (max_bytes) EXPECT_LE(size, max_bytes);
  GgufFile g = read_gguf(path);
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.alignment, 32u);
  for (const char* k : {"general.architecture", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
                        "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count",
                        "tokenizer.ggml.model", "tokenizer.ggml.tokens", "general.quantization_version"})
    EXPECT_TRUE(g.meta.contains(k)) << k;
  for (auto& t : g.tensors) {
    EXPECT_TRUE(kLlamaTypes.count(t.type)) << t.name;
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(t.ne[0] % ggml_type_info(t.type)->block, 0) << t.name;
    if (t.ne.size() == 1) EXPECT_EQ(t.type, ggml_f32) << t.name;  // norms stay f32
  }
  Model back = model_from_gguf(g);
  Model sim = simulate_weights(r.m, r.plan);
  auto a = named_tensors(back), b = named_tensors(sim);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) EXPECT_EQ(a[i].t->data, b[i].t->data) << a[i].name;
}

double measured_kl(const Quantized& r, const Calibrated& s) {
  return calib_kld(simulate_weights(r.m, r.plan), no_hooks(), s.fp, s.calib);
}

}  // namespace

TEST(GgufQuant, AutoFitsTheBudgetInLlamaTypes) {
  test::TempDir d;
  Calibrated s = setup(d, 64, 96, 1);
  GgufQuantOptions o;
  std::map<std::string, uint32_t> f16;
  for (auto& nt : named_tensors(s.fp))
    if (nt.t->ndim() == 2) f16[nt.name] = ggml_f16;
  const int64_t full = gguf_export_size(s.fp, f16);
  double last_est = INFINITY, first_kl = 0, last_kl = 0;
  for (double frac : {0.32, 0.4, 0.55}) {
    o.max_bytes = (int64_t)(full * frac);
    Quantized r = run(s, o);
    check_file(r, d.file("a.gguf"), o.max_bytes);
    EXPECT_LE(r.res.predicted_kl, last_est);  // a larger budget never estimates worse
    last_est = r.res.predicted_kl;
    double kl = measured_kl(r, s);
    if (frac == 0.32) first_kl = kl;
    last_kl = kl;
    std::set<std::string> methods;
    for (auto& c : r.res.choices) methods.insert(c.method);
    EXPECT_TRUE(methods.count("gptq")) << frac;
  }
  EXPECT_LT(last_kl, 0.5 * first_kl);
  o.max_bytes = full / 8;  // below even Q4_0 everywhere
  EXPECT_THROW(run(s, o), Error);
  o.max_bytes = 0;
  EXPECT_THROW(run(s, o), Error);  // auto needs a size
}

// Rows of 256 take K types; rows that are not whole 32-blocks take F16 (never F32).
TEST(GgufQuant, KTypesAndTheF16Fallback) {
  test::TempDir d;
  Calibrated s = setup(d, 256, 44, 2);
  GgufQuantOptions o;
  o.max_bpw = 4.5;
  o.awq = false;
  Quantized r = run(s, o);
  check_file(r, d.file("k.gguf"), (int64_t)std::floor(4.5 * parameter_count(s.fp) / 8));
  std::set<uint32_t> types;
  for (auto& c : r.res.choices) {
    types.insert(c.type);
    if (c.name.find("ffn_down") != std::string::npos) EXPECT_EQ(c.type, ggml_f16) << c.name;
  }
  bool k = false;
  for (uint32_t t : types) k |= ggml_grid(t) && ggml_grid(t)->block == 256;
  EXPECT_TRUE(k);
}

// A tied head is the token embedding: one tensor, quantized once, its importance from head_in.
TEST(GgufQuant, TiedHeadIsTheEmbedding) {
  test::TempDir d;
  Config c = llama_config(64, 1, 4, 2, 96, 300, 64);
  c.tied_head = true;
  Calibrated s{random_model(c, 6, 0.08f), {}};
  s.calib = load_calib(parse_data_spec(test::write_sample_text(d) + "?limit=8"), s.fp);
  GgufQuantOptions o;
  o.max_bpw = 6;
  Quantized r = run(s, o);
  EXPECT_TRUE(r.plan.ggml.count("token_embd.weight"));
  EXPECT_FALSE(r.plan.ggml.count("output.weight"));
  check_file(r, d.file("t.gguf"), (int64_t)std::floor(6.0 * parameter_count(s.fp) / 8));
  EXPECT_EQ(read_gguf(d.file("t.gguf")).find("output.weight"), nullptr);
}

TEST(GgufQuant, LlamaRulesForABaseType) {
  EXPECT_EQ(llama_rule_type("output.weight", 64, ggml_q4_0), ggml_q8_0);
  EXPECT_EQ(llama_rule_type("output.weight", 512, ggml_q4_0), ggml_q6_k);
  EXPECT_EQ(llama_rule_type("output.weight", 512, ggml_q8_0), ggml_q8_0);
  EXPECT_EQ(llama_rule_type("token_embd.weight", 64, ggml_q4_1), ggml_q4_1);
  EXPECT_EQ(llama_rule_type("blk.0.attn_q.weight", 64, ggml_q4_k), ggml_q5_0);
  EXPECT_EQ(llama_rule_type("blk.0.attn_q.weight", 64, ggml_q3_k), ggml_q4_0);
  EXPECT_EQ(llama_rule_type("blk.0.attn_q.weight", 256, ggml_q3_k), ggml_q3_k);
  EXPECT_EQ(llama_rule_type("blk.0.ffn_down.weight", 172, ggml_q4_0), ggml_f16);

  // gguf-Q4_0-ref: ggml's reference encoder in every block tensor, as llama-quantize without an imatrix.
  test::TempDir d;
  Calibrated s = setup(d, 64, 44, 3);
  Model m = s.fp;
  QuantPlan plan;
  PassContext ctx(m, plan, s.calib);
  run_recipe(parse_recipe("gguf-Q4_0-ref"), ctx);
  for (auto& nt : named_tensors(s.fp)) {
    if (nt.t->ndim() != 2) continue;
    const GgmlTensor& g = plan.ggml.at(nt.name);
    uint32_t want = llama_rule_type(nt.name, nt.t->cols(), ggml_q4_0);
    EXPECT_EQ(g.type, want) << nt.name;
    std::vector<uint8_t> ref(ggml_bytes(want, nt.t->rows(), nt.t->cols()));
    ggml_type_info(want)->from_f32(nt.t->ptr(), ref.data(), nt.t->numel());
    EXPECT_EQ(g.data, ref) << nt.name;
  }
  EXPECT_EQ(plan.ggml.at("output.weight").type, ggml_q8_0);
  EXPECT_EQ(plan.ggml.at("blk.1.ffn_down.weight").type, ggml_f16);
  EXPECT_NE(plan.notes["gguf"]["llama_quantize"].get<std::string>().find("--output-tensor-type q8_0"),
            std::string::npos);
  // With the scale search and GPTQ the same types lose less.
  Quantized ours = run(s, [] {
    GgufQuantOptions o;
    o.type = "q4_0";
    return o;
  }());
  Quantized ref = {simulate_weights(s.fp, plan), plan, {}};
  EXPECT_LT(measured_kl(ours, s), measured_kl(ref, s));
}

TEST(GgufQuant, PlanSurvivesTheTquantDirectoryAndRepeats) {
  test::TempDir d;
  Calibrated s = setup(d, 64, 96, 4);
  GgufQuantOptions o;
  o.max_bpw = 6;
  Quantized r = run(s, o);
  check_file(r, d.file("a.gguf"), 0);
  save_tquant_dir(d.file("q"), r.m, r.plan);
  QuantPlan back;
  Model m = load_tquant_dir(d.file("q"), &back);
  ASSERT_EQ(back.ggml.size(), r.plan.ggml.size());
  for (auto& [name, t] : r.plan.ggml) {
    EXPECT_EQ(back.ggml.at(name).type, t.type) << name;
    EXPECT_EQ(back.ggml.at(name).data, t.data) << name;
  }
  export_gguf(m, back, d.file("b.gguf"));
  EXPECT_EQ(read_text_file(d.file("a.gguf")), read_text_file(d.file("b.gguf")));
  Quantized again = run(s, o);  // same inputs, seed and threads: same bytes
  for (auto& [name, t] : r.plan.ggml) EXPECT_EQ(again.plan.ggml.at(name).data, t.data) << name;
}

TEST(GgufQuant, LlamaQuantizeArgs) {
  std::vector<GgufChoice> c = {{"token_embd.weight", ggml_q4_0},
                               {"blk.0.attn_q.weight", ggml_q5_0},
                               {"blk.0.attn_k.weight", ggml_q4_1},
                               {"blk.0.ffn_down.weight", ggml_f16},
                               {"blk.1.attn_q.weight", ggml_q5_0},
                               {"output.weight", ggml_q8_0}};
  EXPECT_EQ(llama_quantize_args(c),
            "--token-embedding-type q4_0 --tensor-type 'blk\\.0\\.attn_k=q4_1' --tensor-type 'blk\\.0\\.ffn_down=f16' "
            "--output-tensor-type q8_0 q5_0");
}

TEST(GgufQuant, CommandLine) {
  test::TempDir d;
  Model fp = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 5, 0.08f);
  write_gguf_f32(fp, d.file("m.gguf"));
  std::string text = test::write_sample_text(d);
  auto q = test::run_cli("quantize " + d.file("m.gguf") + " --recipe auto-gguf --max-bytes 70000 --calib " + text +
                         "?limit=8 -o " + d.file("q"));
  ASSERT_EQ(q.status, 0) << q.err;
  EXPECT_NE(q.err.find("--tensor-type"), std::string::npos) << q.err;
  auto e = test::run_cli("export " + d.file("q") + " --gguf " + d.file("q.gguf"));
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_LE(read_text_file(d.file("q.gguf")).size(), 70000u);
  auto small = test::run_cli("quantize " + d.file("m.gguf") + " --recipe auto-gguf --max-bytes 9000 --calib " + text +
                             "?limit=8 -o " + d.file("r"));
  EXPECT_EQ(small.status, 2) << small.err;
  auto fixed = test::run_cli("quantize " + d.file("m.gguf") + " --recipe gguf-Q4_0 --max-bytes 70000 --calib " + text +
                             " -o " + d.file("r"));
  EXPECT_EQ(fixed.status, 2) << fixed.err;
  auto none = test::run_cli("quantize " + d.file("m.gguf") + " --recipe auto-gguf --calib " + text + " -o " + d.file("r"));
  EXPECT_EQ(none.status, 2) << none.err;
  auto st = test::run_cli("stress " + d.file("m.gguf") + " -o " + d.file("s.gguf") + " --channels 2 --factor 50");
  ASSERT_EQ(st.status, 0) << st.err;
  EXPECT_LT(logit_drift(load_model(d.file("s.gguf")), fp), 1e-5);
  EXPECT_EQ(test::run_cli("stress " + d.file("m.gguf") + " -o " + d.file("t.gguf") + " --sites o_in").status, 2);
}

}  // namespace tq
