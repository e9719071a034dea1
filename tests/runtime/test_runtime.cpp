// The integer runtime against the fake-quant simulation it must reproduce.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "core/dtype.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/load.h"
#include "io/tquant_dir.h"
#include "kernels/cpu.h"
#include "nn/ops.h"
#include "nn/random_model.h"
#include "quant/observer.h"
#include "passes/pass.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace tq {

namespace {

struct Quantized {
  Model m;  // the float weights the plan applies to
  QuantPlan plan;
};

// A small LLaMA (GQA, SwiGLU, untied head; hidden 96 = 64 + a short group of 32) quantized by a recipe.
// post_norm: LayerNorm after the residual with biases, so folds live in the quantize op (pre_inv).
// window: a sliding window of attention (Mistral).
Quantized quantize(const std::string& recipe, const std::string& text, bool post_norm = false, int window = 0) {
  Config c = llama_config(64, 2, 4, 2, 96, 300, 64);
  c.sliding_window = window;
  if (post_norm) {
    c.norm = NormKind::layer;
    c.post_norm = true;
  }
  Quantized q{random_model(c, 4, 0.2f, post_norm), {}};
  CalibData cd = load_calib(parse_data_spec(text + "?limit=12"), q.m);
  PassContext ctx(q.m, q.plan, cd);
  run_recipe(parse_recipe(recipe), ctx);
  return q;
}

std::vector<int32_t> some_tokens(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; i++) t[i] = 3 + (i * 37 + 11) % 290;
  return t;
}

std::vector<float> logits(const Model& m, Hooks& hooks, const std::vector<int32_t>& toks, int B) {
  Workspace ws;
  Input in{B, (int)toks.size() / B, toks.data()};
  forward(m, in, ws, hooks);
  return ws.logits.data;
}

std::vector<float> simulated(const Quantized& q, const std::vector<int32_t>& toks, int B) {
  Model s = simulate_weights(q.m, q.plan);
  SimHook sim(q.plan, s.cfg.n_layers);
  return logits(s, sim, toks, B);
}

struct Integer {
  Model m;
  Runtime rt;
};
Integer integer(const Quantized& q, Isa isa = Isa::automatic) {
  Integer r{q.m, {}};
  r.rt = attach_runtime(r.m, q.plan, {true, isa});
  return r;
}

// Relative logit error per position (row of n_out logits), sorted.
std::vector<double> row_errors(const std::vector<float>& got, const std::vector<float>& ref, int n_out) {
  std::vector<double> e;
  for (size_t r = 0; r * n_out < ref.size(); r++) e.push_back(test::rel_err(got.data() + r * n_out, ref.data() + r * n_out, n_out));
  std::sort(e.begin(), e.end());
  return e;
}

// Teacher forcing: every executor runs, and beside it the simulation's arithmetic on the
// same input (the site's fake-quant when the executor quantizes itself, then BLAS on the
// quantize-dequantize weight). The worst relative difference of any call is kept. This
// separates the kernels' agreement from code flips at rounding boundaries, which a
// difference of 1e-7 upstream can cause and which then propagate through the layers.
struct Checked final : LinearExec {
  std::shared_ptr<const LinearExec> inner;
  const Linear* sim;               // ŵ and b
  std::optional<QuantSpec> site;   // quantized here (the executor owns the site), or already by the hook
  double* worst;
  void forward(float* y, const float* x, int N) const override {
    inner->forward(y, x, N);
    std::vector<float> xs(x, x + (size_t)N * sim->in()), ref((size_t)N * sim->out());
    if (site) fake_quant(xs.data(), N, sim->in(), *site);
    linear_forward(ref.data(), xs.data(), sim->w.ptr(), sim->b.empty() ? nullptr : sim->b.ptr(), N, sim->in(), sim->out());
    for (int t = 0; t < N; t++)
      *worst = std::max(*worst, test::rel_err(y + (size_t)t * sim->out(), ref.data() + (size_t)t * sim->out(), sim->out()));
  }
  int64_t bytes() const override { return inner->bytes(); }
};

// Wraps the executors of `in` (attached from q) with Checked against simulate_weights(q).
void check_every_linear(Model& in, const Runtime& rt, const Model& sim, const QuantPlan& plan, double* worst) {
  auto wrap = [&](Linear& l, const Linear& s, Site site, int layer) {
    if (!l.exec) return;
    auto c = std::make_shared<Checked>();
    c->inner = l.exec;
    c->sim = &s;
    std::string key = site_key(site, layer);
    if (plan.sites.count(key) && plan.sites.at(key).enabled() &&
        !(rt.sim_plan.sites.count(key) && rt.sim_plan.sites.at(key).enabled())) {
      c->site = plan.sites.at(key);
      c->site->pre_inv.clear();
      c->site->pre_shift.clear();
    }
    c->worst = worst;
    l.exec = c;
  };
  for (int l = 0; l < in.cfg.n_layers; l++) {
    Block &b = in.blocks[l];
    const Block& sb = sim.blocks[l];
    wrap(b.q, sb.q, Site::qkv_in, l);
    wrap(b.k, sb.k, Site::qkv_in, l);
    wrap(b.v, sb.v, Site::qkv_in, l);
    wrap(b.o, sb.o, Site::o_in, l);
    wrap(b.gate, sb.gate, Site::up_in, l);
    wrap(b.up, sb.up, Site::up_in, l);
    wrap(b.down, sb.down, Site::down_in, l);
  }
  wrap(in.head, sim.head, Site::head_in, -1);
}

}  // namespace

// Issue 9 (and issue 7's integer-path item for OutlierTune): every built-in recipe family,
// run on the kernels, gives the simulation's results. Per linear, on the same input
// (teacher-forced), int8 differs only in float rounding (exact integer sums, then
// α·s_o·acc instead of Σ ŵ·x̂): ≤ 1e-5; K4 also by the fp16 scales and zeros it stores
// (the plan keeps f32): ≤ 2e-3. End to end on the logits: int8 ≤ 1e-4 here, K4 ≤ 5e-3.
TEST(IntegerRuntime, MatchesSimulationOnEveryRecipe) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  struct Case {
    std::string recipe;
    int int8, lowbit;  // linears expected on each kernel (2 layers × 7, + the head for rtn)
    bool post_norm = false;
    int lowbit_a8 = 0;
  };
  const Case cases[] = {
      {"w8a8-rtn", 15, 0},         {"w6a6-rtn", 15, 0},         {"w8a8-outliertune", 14, 0},
      {"w6a6-outliertune", 14, 0}, {"w8a8-smoothquant", 14, 0}, {"w6a6-smoothquant", 14, 0},
      {"w4a16-g64-rtn", 0, 15},    {"w8a16-rtn", 0, 15},        {"w4-hqq-g64", 0, 14},
      {"w4-kurtboost", 0, 14},     {"w3-sensiboost", 0, 14},    {"w4-budget", 0, 14},
      {"w8-hqq-g64", 0, 14},       {"w2-hqq-g32", 0, 14},
      {"w4a8-hqq-g64", 0, 0, false, 14}, {"w3a8-hqq-g128", 0, 0, false, 14}, {"w5a6-hqq-g32", 0, 0, false, 14},
      {"w6a6-outliertune", 14, 0, true},  {"w8a8-smoothquant", 14, 0, true},
      // RepQ-ViT on an LM: per-token asymmetric o_in/down_in/head_in have no int8 kernel, so
      // those linears run K4 on the simulated codes; their fp16 group parameters move outputs by
      // ~3e-4, which flips static codes at the next layer's qkv_in/up_in: logits ≤ 1e-1 here.
      // K4-a8 likewise (per-token codes after fp16 group parameters); its exactness with the
      // parameters the kernel stores is EveryLowbitA8FormMatchesSimulation.
      {"w8a8-repqvit", 10, 5},     {"w4a8-repqvit", 10, 5},
  };
  const auto toks = some_tokens(2 * 24);
  for (const Case& c : cases) {
    Quantized q = quantize(c.recipe, text, c.post_norm);
    Model sim_model = simulate_weights(q.m, q.plan);
    std::vector<float> sim = simulated(q, toks, 2);
    Integer in = integer(q);
    std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 2);
    double err = test::rel_err(got, sim), worst = 0;
    check_every_linear(in.m, in.rt, sim_model, q.plan, &worst);
    EXPECT_EQ(logits(in.m, in.rt.hooks(), toks, 2), got) << c.recipe;  // the checks change nothing
    const bool k4 = c.lowbit > 0 || c.lowbit_a8 > 0;
    std::printf("%-18s%s %s: relative difference per linear (teacher-forced) %.1e, logits %.1e\n", c.recipe.c_str(),
                c.post_norm ? " (post-norm)" : "",
                in.rt.summary().c_str(), worst, err);
    // Integer activations after K4's fp16 group parameters (mixed, or K4-a8) see codes flip.
    const bool mixed = (c.int8 > 0 && c.lowbit > 0) || c.lowbit_a8 > 0;
    EXPECT_LE(worst, k4 ? 2e-3 : 1e-5) << c.recipe;
    EXPECT_LE(err, mixed ? 1e-1 : k4 ? 5e-3 : 1e-4) << c.recipe;
    EXPECT_GT(worst, 0) << c.recipe << ": suspiciously identical (did the kernels run?)";
    EXPECT_EQ(in.rt.n_int8, c.int8) << c.recipe;
    EXPECT_EQ(in.rt.n_lowbit, c.lowbit) << c.recipe;
    EXPECT_EQ(in.rt.n_lowbit_a8, c.lowbit_a8) << c.recipe;
    EXPECT_EQ(in.rt.n_float, 0) << c.recipe;
    if (c.int8 > 0 && c.lowbit > 0)
      EXPECT_FALSE(in.rt.notices.empty()) << c.recipe << ": the simulated sites are announced";
    else
      EXPECT_TRUE(in.rt.notices.empty()) << c.recipe << ": " << in.rt.notices[0];
  }
}

// Every activation and weight quantizer form the int8 kernels take, teacher-forced against simulation.
TEST(IntegerRuntime, EveryInt8FormMatchesSimulation) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const Quantized base = quantize("w8a8-rtn", text);
  struct Form {
    std::string name;
    int a_bits;
    Scheme a_scheme;
    Gran a_gran;
    bool dynamic;
    int w_bits;
    Scheme w_scheme;
    Gran w_gran;
  };
  const Form forms[] = {
      {"K1 static u8, sym rows", 8, Scheme::asym, Gran::tensor, false, 8, Scheme::sym, Gran::row},
      {"static s8 step, asym 8-bit rows", 8, Scheme::sym, Gran::tensor, false, 8, Scheme::asym, Gran::row},
      {"dynamic tensor sym, asym 4-bit rows", 8, Scheme::sym, Gran::tensor, true, 4, Scheme::asym, Gran::row},
      {"dynamic tensor asym 7-bit, tensor weights", 7, Scheme::asym, Gran::tensor, true, 8, Scheme::sym, Gran::tensor},
      {"K3 8-bit", 8, Scheme::sym, Gran::row, true, 8, Scheme::sym, Gran::row},
      {"K3 5-bit", 5, Scheme::sym, Gran::row, true, 5, Scheme::sym, Gran::row},
  };
  const auto toks = some_tokens(16);
  for (const Form& f : forms) {
    Quantized q = base;
    for (auto& [key, s] : q.plan.sites) {
      s.bits = f.a_bits;
      s.scheme = f.a_scheme;
      s.gran = f.a_gran;
      s.dynamic = f.dynamic;
      if (!f.dynamic) {  // a range covering the activations, with its own zero point
        s.scale = {0.05f};
        s.zero = f.a_scheme == Scheme::asym ? std::vector<float>{100.0f} : std::vector<float>{};
      } else {
        s.scale.clear();
        s.zero.clear();
      }
    }
    for (auto& nt : named_tensors(q.m)) {
      auto it = q.plan.weights.find(nt.name);
      if (it == q.plan.weights.end()) continue;
      QuantSpec w;
      w.bits = f.w_bits;
      w.scheme = f.w_scheme;
      w.gran = f.w_gran;
      fit_minmax(nt.t->ptr(), (int)nt.t->rows(), (int)nt.t->cols(), w);
      it->second = w;
    }
    Model sim_model = simulate_weights(q.m, q.plan);
    Integer in = integer(q);
    double worst = 0;
    check_every_linear(in.m, in.rt, sim_model, q.plan, &worst);
    std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 1);
    std::printf("%-42s relative difference per linear %.1e, logits %.1e\n", f.name.c_str(), worst,
                test::rel_err(got, simulated(q, toks, 1)));
    EXPECT_EQ(in.rt.n_int8, 15) << f.name;
    EXPECT_LE(worst, 1e-5) << f.name;
    EXPECT_GT(worst, 0) << f.name;
  }
}

// Every site form K4-a8 takes (symmetric: per token of 8 and 5 bits, per tensor dynamic and
// static) on low-bit groups of several widths, against simulation. The plan's group
// parameters are given their fp16 values, the ones K4 stores, so that what remains is
// float rounding: ≤ 1e-5 per linear (teacher-forced), as for int8.
TEST(IntegerRuntime, EveryLowbitA8FormMatchesSimulation) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const Quantized base = quantize("w8a8-rtn", text);
  struct Form {
    std::string name;
    int a_bits;
    bool dynamic;
    Gran a_gran;
    int w_bits, group;
  };
  const Form forms[] = {
      {"per token 8-bit, 4-bit g64", 8, true, Gran::row, 4, 64},
      {"per token 5-bit, 3-bit g32", 5, true, Gran::row, 3, 32},
      {"dynamic tensor 8-bit, 7-bit g64", 8, true, Gran::tensor, 7, 64},
      {"static tensor 8-bit, 2-bit g32", 8, false, Gran::tensor, 2, 32},
      {"per token 8-bit, 8-bit rows", 8, true, Gran::row, 8, 0},
  };
  const auto toks = some_tokens(16);
  for (const Form& f : forms) {
    Quantized q = base;
    for (auto& [key, s] : q.plan.sites) {
      s.bits = f.a_bits;
      s.scheme = Scheme::sym;
      s.gran = f.a_gran;
      s.dynamic = f.dynamic;
      s.zero.clear();
      if (f.dynamic) s.scale.clear();
      else s.scale = {0.05f};
    }
    for (auto& nt : named_tensors(q.m)) {
      auto it = q.plan.weights.find(nt.name);
      if (it == q.plan.weights.end()) continue;
      QuantSpec w;
      w.bits = f.w_bits;
      w.scheme = Scheme::asym;
      w.gran = f.group ? Gran::group : Gran::row;
      w.group = f.group;
      fit_minmax(nt.t->ptr(), (int)nt.t->rows(), (int)nt.t->cols(), w);
      for (float& v : w.scale) v = f16_to_f32(f32_to_f16(v));
      for (float& v : w.zero) v = f16_to_f32(f32_to_f16(v));
      it->second = w;
    }
    Model sim_model = simulate_weights(q.m, q.plan);
    Integer in = integer(q);
    double worst = 0;
    check_every_linear(in.m, in.rt, sim_model, q.plan, &worst);
    std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 1);
    const double err = test::rel_err(got, simulated(q, toks, 1));
    std::printf("%-36s relative difference per linear %.1e, logits %.1e\n", f.name.c_str(), worst, err);
    EXPECT_EQ(in.rt.n_lowbit_a8, f.group ? 15 : 0) << f.name;
    EXPECT_EQ(in.rt.n_int8, f.group ? 0 : 15) << f.name << ": row weights of ≤ 8 bits stay on K1–K3";
    EXPECT_LE(worst, 1e-5) << f.name;
    EXPECT_GT(worst, 0) << f.name;
    // End to end, a per-token 8-bit step re-derived from an input that differs by float
    // rounding moves codes at ties, and each such move is a whole step downstream: with
    // 8-bit row weights the float sums of the simulation are inexact, and where OpenBLAS
    // runs its Haswell kernels the logits then differ by 2.9e-3 (1e-7 with its SkylakeX
    // ones). The exactness claim is the per-linear one above; the logits only must not
    // be off by a quantization error (a wrong kernel gives 1e-1).
    EXPECT_LE(err, f.w_bits == 8 && f.dynamic ? 1e-2 : 1e-4) << f.name;
  }
}

// Batches large enough that the executors' quantization and the kernels run on several
// threads: the same bits as one thread (buffers of the calling thread reach the workers).
TEST(IntegerRuntime, LargeBatchesGiveTheSameBitsOnAnyThreadCount) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  for (std::string recipe : {"w5a5-rtn", "w4a5-hqq-g32"}) {
    Quantized q = quantize(recipe, text);
    if (recipe == "w5a5-rtn")
      for (auto& [key, s] : q.plan.sites) {  // per token, 5 bits: the dynamic_params path
        s.scheme = Scheme::sym;
        s.gran = Gran::row;
        s.dynamic = true;
        s.scale.clear();
        s.zero.clear();
      }
    Integer in = integer(q);
    const auto toks = some_tokens(20 * 60);  // 1,200 rows of 64: above the parallel thresholds
    std::vector<float> one, two;
    test::with_threads(1, [&] { one = logits(in.m, in.rt.hooks(), toks, 20); });
    test::with_threads(2, [&] { two = logits(in.m, in.rt.hooks(), toks, 20); });
    EXPECT_EQ(one, two) << recipe;
    EXPECT_GT(in.rt.n_int8 + in.rt.n_lowbit_a8, 0) << recipe;
  }
}

// Teacher forcing for attention: the executor runs, and beside it the simulation's arithmetic
// on the same q, k, v (fake-quantized by the plan's sites, f32 scores and softmax,
// fake-quantized probs, f32 P·V). The worst relative difference of any call is kept.
struct CheckedAttention final : AttentionExec {
  std::shared_ptr<const AttentionExec> inner;
  std::optional<QuantSpec> q, k, v, probs;
  double* worst;
  void forward(float* att, const float* qx, const float* kx, const float* vx, const AttnShape& s, int q_stride,
               int kv_stride) const override {
    inner->forward(att, qx, kx, vx, s, q_stride, kv_stride);
    const int qd = s.H * s.hd, kvd = s.KV * s.hd;
    std::vector<float> qs((size_t)s.Sq * qd), ks((size_t)s.Sk * kvd), vs((size_t)s.Sk * kvd);
    for (int i = 0; i < s.Sq; i++) std::copy(qx + (int64_t)i * q_stride, qx + (int64_t)i * q_stride + qd, qs.begin() + i * qd);
    for (int j = 0; j < s.Sk; j++) {
      std::copy(kx + (int64_t)j * kv_stride, kx + (int64_t)j * kv_stride + kvd, ks.begin() + j * kvd);
      std::copy(vx + (int64_t)j * kv_stride, vx + (int64_t)j * kv_stride + kvd, vs.begin() + j * kvd);
    }
    if (q) fake_quant(qs.data(), s.Sq, qd, *q);
    if (k) fake_quant(ks.data(), s.Sk, kvd, *k);
    if (v) fake_quant(vs.data(), s.Sk, kvd, *v);
    std::vector<float> P((size_t)s.H * s.Sq * s.Sk), ref((size_t)s.Sq * qd);
    attention_scores_forward(P.data(), qs.data(), ks.data(), s, qd, kvd);
    if (probs) fake_quant(P.data(), s.H * s.Sq, s.Sk, *probs);
    attention_apply_forward(ref.data(), P.data(), vs.data(), s, qd, kvd);
    for (int i = 0; i < s.Sq; i++)
      *worst = std::max(*worst, test::rel_err(att + (int64_t)i * q_stride, ref.data() + (size_t)i * qd, qd));
  }
};

bool wrapped_probs(const QuantPlan& plan) {
  auto it = plan.sites.find(site_key(Site::probs, 0));
  return it != plan.sites.end() && it->second.enabled();
}

// Attention on integer kernels where the plan quantizes q, k, v (and probs): RepQ-ViT on an
// LM with per-tensor sites (int8 q·kᵀ, K5 for P·V) and with its per-token sites (int8 q·kᵀ,
// f32 P·V on the fake-quantized operands), and OutlierTune's q, k, v per token and head
// (and per token) with float probs. Teacher-forced per call within float rounding; end to end
// within 1e-4.
TEST(IntegerRuntime, AttentionOnIntegerKernelsMatchesSimulation) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const std::string per_tensor = d.file("repqvit-tensor.json");
  write_file_atomic(per_tensor, R"({"passes": [{"pass": "repquant", "w_bits": 8, "a_bits": 8, "clip_steps": 0,
                                 "recon_steps": 0, "other_sites": "tensor"}]})");
  const std::string per_token_ot = d.file("outliertune-token.json");  // q, k, v symmetric per token (the paper)
  write_file_atomic(per_token_ot, R"({"passes": [{"pass": "symmetrize"}, {"pass": "step_fold"},
      {"pass": "rtn", "a_scheme": "sym", "a_gran": "token", "sites": "o_in,down_in,q,k,v", "head": false}]})");
  struct Case {
    std::string recipe, kernel;
  };
  const Case cases[] = {
      {per_tensor, "int8 q·kᵀ (u8 per tensor q × u8 per tensor k, "},
      {"w8a8-repqvit", "int8 q·kᵀ (u8 per token q × u8 per token k, "},
      {"w8a8-outliertune", "int8 q·kᵀ (u8 per token and head q × u8 per token and head k, "},
      {per_token_ot, "int8 q·kᵀ (s8 per token q × s8 per token k, "},
  };
  const auto toks = some_tokens(2 * 24);
  for (const Case& c : cases) {
    Quantized q = quantize(c.recipe, text);
    std::vector<float> sim = simulated(q, toks, 2);
    Integer in = integer(q);
    std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 2);
    ASSERT_EQ(in.rt.n_attention, 2) << c.recipe;
    std::string kernels;
    for (auto& line : in.rt.kernel_lines()) kernels += line + "\n";
    EXPECT_NE(kernels.find("attention (every layer): " + c.kernel), std::string::npos) << kernels;
    const bool k5 = c.recipe == per_tensor;
    EXPECT_EQ(kernels.find("K5 pv_log, 8-bit log√2 probs × u8 per tensor v") != std::string::npos, k5) << kernels;
    double worst = 0;
    for (int l = 0; l < 2; l++) {
      auto wrap = std::make_shared<CheckedAttention>();
      wrap->inner = in.m.blocks[l].attn_exec;
      auto site = [&](Site s) -> std::optional<QuantSpec> {
        auto it = q.plan.sites.find(site_key(s, l));
        return it != q.plan.sites.end() && it->second.enabled() ? std::optional<QuantSpec>(it->second) : std::nullopt;
      };
      wrap->q = site(Site::q);
      wrap->k = site(Site::k);
      wrap->v = site(Site::v);
      wrap->probs = site(Site::probs);
      wrap->worst = &worst;
      in.m.blocks[l].attn_exec = wrap;
    }
    EXPECT_EQ(logits(in.m, in.rt.hooks(), toks, 2), got) << c.recipe << ": the checks change nothing";
    const double err = test::rel_err(got, sim);
    std::printf("%-18s attention teacher-forced %.1e, logits %.1e (%s)\n", c.recipe == per_tensor ? "repqvit per tensor" : c.recipe.c_str(),
                worst, err, in.rt.summary().c_str());
    EXPECT_LE(worst, 1e-5) << c.recipe;
    // With quantized probs and f32 P·V the output depends only on the probs codes and V̂:
    // equal bits unless a code flips; K5 and float probs differ in float rounding.
    if (k5 || !wrapped_probs(q.plan)) EXPECT_GT(worst, 0) << c.recipe;
    // RepQ-ViT's per-token asymmetric o_in/down_in/head_in run K4 on fake-quantized codes:
    // the fp16 group parameters flip later codes (as in MatchesSimulationOnEveryRecipe).
    EXPECT_LE(err, in.rt.n_lowbit > 0 ? 1e-1 : 1e-4) << c.recipe;
  }
}

// Decoding with a KV cache: the integer attention reads the cached keys and values (held
// raw, quantized per call) and agrees with the simulation step by step; it counts each
// value's clamps once, as the simulation's hook does.
TEST(IntegerRuntime, IntegerAttentionDecodesLikeSimulation) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const std::string per_tensor = d.file("repqvit-tensor.json");
  write_file_atomic(per_tensor, R"({"passes": [{"pass": "repquant", "w_bits": 8, "a_bits": 6, "clip_steps": 0,
                                 "recon_steps": 0, "other_sites": "tensor"}]})");
  Quantized q = quantize(per_tensor, text);
  Model s = simulate_weights(q.m, q.plan);
  SimHook sim(q.plan, s.cfg.n_layers);
  Integer in = integer(q);
  ASSERT_EQ(in.rt.n_attention, 2);
  const auto toks = some_tokens(20);
  auto decode = [&](const Model& m, Hooks& hooks) {
    KVCache cache;
    cache.init(m.cfg, 1, 20);
    Workspace ws;
    std::vector<float> out;
    for (int t = 0; t < 20; t++) {
      Input step{1, 1, toks.data() + t};
      forward(m, step, ws, hooks, &cache);
      cache.len++;
      out.insert(out.end(), ws.logits.data.begin(), ws.logits.data.end());
    }
    return out;
  };
  std::vector<float> a = decode(in.m, in.rt.hooks()), b = decode(s, sim);
  std::printf("decode, 20 steps: logits %.1e, clamped %lld (simulation %lld)\n", test::rel_err(a, b),
              (long long)in.rt.saturated(), (long long)sim.saturated);
  EXPECT_LE(test::rel_err(a, b), 1e-4);
  EXPECT_EQ(in.rt.saturated(), sim.saturated);
}

// A sliding window (Mistral) on the integer attention: the kernels' scores go through the
// forward's masked softmax, so the window is the simulation's, in prefill and in decode.
TEST(IntegerRuntime, SlidingWindowOnIntegerAttentionMatchesSimulation) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const std::string per_tensor = d.file("repqvit-tensor.json");
  write_file_atomic(per_tensor, R"({"passes": [{"pass": "repquant", "w_bits": 8, "a_bits": 8, "clip_steps": 0,
                                 "recon_steps": 0, "other_sites": "tensor"}]})");
  Quantized q = quantize(per_tensor, text, false, 5);
  const auto toks = some_tokens(2 * 24);
  Integer in = integer(q);
  ASSERT_EQ(in.rt.n_attention, 2);
  std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 2), sim = simulated(q, toks, 2);
  EXPECT_LE(test::rel_err(got, sim), 1e-4);
  in.m.cfg.sliding_window = 0;  // the window matters at 24 tokens
  EXPECT_GT(test::rel_err(logits(in.m, in.rt.hooks(), toks, 2), got), 1e-3);
  in.m.cfg.sliding_window = 5;
  KVCache cache;
  cache.init(in.m.cfg, 1, 24);
  Workspace ws;
  std::vector<float> step;
  for (int t = 0; t < 24; t++) {
    forward(in.m, Input{1, 1, toks.data() + t}, ws, in.rt.hooks(), &cache);
    cache.len++;
    step.insert(step.end(), ws.logits.data.begin(), ws.logits.data.end());
  }
  const std::vector<int32_t> first(toks.begin(), toks.begin() + 24);
  EXPECT_LE(test::rel_err(step, simulated(q, first, 1)), 1e-4);
}

// A tquant directory runs the same: the codes re-derived from its dequantized weights are the stored ones.
TEST(IntegerRuntime, SavedDirectoryRunsLikeTheInMemoryPlan) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const auto toks = some_tokens(20);
  for (std::string recipe : {"w8a8-outliertune", "w4-hqq-g64"}) {
    Quantized q = quantize(recipe, text);
    save_tquant_dir(d.file("q"), q.m, q.plan);
    Quantized loaded;
    loaded.m = load_tquant_dir(d.file("q"), &loaded.plan);
    Integer a = integer(q), b = integer(loaded);
    EXPECT_EQ(logits(a.m, a.rt.hooks(), toks, 1), logits(b.m, b.rt.hooks(), toks, 1)) << recipe;
  }
}

// Same inputs → same bits, on every instruction-set path and with a KV cache step by step.
TEST(IntegerRuntime, SameBitsOnEveryIsaPath) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  const auto toks = some_tokens(12);
  for (std::string recipe : {"w8a8-rtn", "w8a8-smoothquant", "w4a16-g64-rtn", "w4a8-hqq-g64"}) {
    Quantized q = quantize(recipe, text);
    std::vector<float> first;
    for (Isa isa : supported_isas()) {
      Integer in = integer(q, isa);
      std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 1);
      if (first.empty()) first = got;
      EXPECT_EQ(got, first) << recipe << " on " << isa_name(isa);
    }
  }
}

// Quantizers the kernels cannot run fall back per linear to simulation, with a notice, and still agree.
TEST(IntegerRuntime, UnsupportedQuantizersFallBackToSimulation) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  Quantized q = quantize("w8a8-rtn", text);
  // Layer 0's o weight as log2 (no kernel), layer 1's down as group 48 (not a K4 tile), and
  // layer 1's qkv_in as dynamic per-token asymmetric (no int8 form: K4 on fake-quant codes).
  QuantSpec log;
  log.bits = 4;
  log.scheme = Scheme::log2;
  log.gran = Gran::row;
  fit_minmax(q.m.blocks[0].o.w.ptr(), q.m.blocks[0].o.out(), q.m.blocks[0].o.in(), log);
  q.plan.weights["blk.0.attn_output.weight"] = log;
  QuantSpec g48;
  g48.bits = 4;
  g48.scheme = Scheme::asym;
  g48.gran = Gran::group;
  g48.group = 48;
  fit_minmax(q.m.blocks[1].down.w.ptr(), q.m.blocks[1].down.out(), q.m.blocks[1].down.in(), g48);
  q.plan.weights["blk.1.ffn_down.weight"] = g48;
  QuantSpec& s = q.plan.sites.at("blk.1.qkv_in");
  s.scheme = Scheme::asym;
  s.gran = Gran::row;
  s.dynamic = true;
  s.scale.clear();
  s.zero.clear();
  const auto toks = some_tokens(16);
  std::vector<float> sim = simulated(q, toks, 1);
  Integer in = integer(q);
  std::vector<float> got = logits(in.m, in.rt.hooks(), toks, 1);
  double worst = 0;
  Model sim_model = simulate_weights(q.m, q.plan);
  check_every_linear(in.m, in.rt, sim_model, q.plan, &worst);
  EXPECT_EQ(logits(in.m, in.rt.hooks(), toks, 1), got);
  std::printf("fallbacks: relative difference per linear %.1e, logits %.1e\n", worst, test::rel_err(got, sim));
  EXPECT_LE(worst, 2e-3);  // K4's fp16 scales
  EXPECT_EQ(in.rt.n_float, 2);
  EXPECT_EQ(in.rt.n_lowbit, 3);  // q, k, v of layer 1
  EXPECT_EQ(in.rt.n_int8, 15 - 5);
  ASSERT_EQ(in.rt.notices.size(), 5u);
  std::string all;
  for (auto& n : in.rt.notices) all += n + "\n";
  EXPECT_NE(all.find("blk.0.attn_output.weight: log2 weights"), std::string::npos) << all;
  EXPECT_NE(all.find("blk.1.ffn_down.weight: group 48"), std::string::npos) << all;
  EXPECT_NE(all.find("blk.1.qkv_in: row dynamic asym activations fake-quantized (no int8 kernel form)"),
            std::string::npos) << all;
  EXPECT_NE(all.find("blk.0.o_in: tensor asym activations fake-quantized (a linear it feeds has no int8 weight)"),
            std::string::npos) << all;
  std::string kernels;
  for (auto& line : in.rt.kernel_lines()) kernels += line + "\n";
  EXPECT_NE(kernels.find("attn_output (layers 0); ffn_down (layers 1): fp32 BLAS on the dequantized weight × "
                         "fake-quantized f32"),
            std::string::npos) << kernels;
  EXPECT_NE(kernels.find("attn_q, attn_k, attn_v (layers 1): K4, 8-bit row × fake-quantized f32"), std::string::npos)
      << kernels;
}

// Packed weights free their f32 values: the model as it runs is smaller.
TEST(IntegerRuntime, PackedModelIsSmaller) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  Quantized w8 = quantize("w8a8-rtn", text), w4 = quantize("w4a16-g64-rtn", text);
  const int64_t fp = runtime_bytes(w8.m);
  Integer a = integer(w8), b = integer(w4);
  EXPECT_LT(runtime_bytes(a.m), fp);
  EXPECT_LT(runtime_bytes(b.m), runtime_bytes(a.m));
  EXPECT_FALSE(a.m.blocks[0].q.w.has_values());  // the float values are dropped
  EXPECT_EQ(a.m.blocks[0].q.in(), 64);  // the shape stays
}

// Issue 7: the integer form of OutlierTune on the real model matches its simulation (≤ 1e-4 relative).
TEST(IntegerRuntime, OutlierTuneMatchesSimulationOnStories260K) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  TQ_REQUIRE_SHARED("data/tinystories/tinystories_valid_head.txt");
  Quantized q{load_model(test::shared("models/stories260K/stories260K.gguf")), {}};
  CalibData cd =
      load_calib(parse_data_spec(test::shared("data/tinystories/tinystories_valid_head.txt") + "?from=0.9&limit=16"), q.m);
  for (std::string recipe : {"w8a8-outliertune", "w6a6-outliertune"}) {
    Quantized r{q.m, {}};
    PassContext ctx(r.m, r.plan, cd);
    run_recipe(parse_recipe(recipe), ctx);
    const auto toks = cd.batches[0].tokens;
    std::vector<float> sim = simulated(r, toks, 1);
    Integer in = integer(r);
    auto got = logits(in.m, in.rt.hooks(), toks, 1);
    double err = test::rel_err(got, sim), worst = 0;
    Model sim_model = simulate_weights(r.m, r.plan);
    check_every_linear(in.m, in.rt, sim_model, r.plan, &worst);
    logits(in.m, in.rt.hooks(), toks, 1);
    auto rows = row_errors(got, sim, r.m.cfg.n_out);
    std::printf("stories260K %s (%s): relative difference per linear (teacher-forced) %.1e; logits %.1e "
                "(positions: median %.1e, max %.1e)\n",
                recipe.c_str(), in.rt.summary().c_str(), worst, err, rows[rows.size() / 2], rows.back());
    EXPECT_LE(worst, 1e-5) << recipe;
    // End to end, one activation code that lands the other side of a rounding boundary
    // (from a 1e-7 difference upstream) moves later positions by ~1e-3: bounded, not zero.
    EXPECT_LE(err, 2e-2) << recipe;
    EXPECT_EQ(in.rt.n_int8, 5 * 7) << recipe;
  }
}

// The CLI: eval and run use the integer kernels by default, --simulate the simulation.
TEST(IntegerRuntime, EvalAndRunUseTheKernelsByDefault) {
  test::TempDir d;
  std::string text = test::write_sample_text(d);
  Quantized q = quantize("w8a8-rtn", text);
  save_tquant_dir(d.file("q"), q.m, q.plan);
  auto in = test::run_cli("eval " + d.file("q") + " --data '" + text + "?from=0.5' --json -");
  auto sim = test::run_cli("eval " + d.file("q") + " --simulate --data '" + text + "?from=0.5' --json -");
  ASSERT_EQ(in.status, 0) << in.err;
  ASSERT_EQ(sim.status, 0) << sim.err;
  auto a = nlohmann::json::parse(in.out), b = nlohmann::json::parse(sim.out);
  EXPECT_EQ(a["runtime"], "integer");
  EXPECT_EQ(b["runtime"], "simulate");
  EXPECT_EQ(a["executors"]["int8"], 15);
  EXPECT_NEAR(a["ppl"].get<double>(), b["ppl"].get<double>(), 1e-4 * b["ppl"].get<double>());
  EXPECT_EQ(a["saturated"], b["saturated"]);
  auto run = test::run_cli("run " + d.file("q") + " -p 'Once upon' -n 8");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out.rfind("Once upon", 0), 0u) << run.out;
  auto run_sim = test::run_cli("run " + d.file("q") + " -p 'Once upon' -n 8 --simulate");
  ASSERT_EQ(run_sim.status, 0) << run_sim.err;
}

// tquant bench's end-to-end cases: one object per case with its ratio, sizes and RSS.
TEST(IntegerRuntime, BenchReportsEndToEndCases) {
  auto r = test::run_cli("bench --filter e2e --quick -t 1 --cpu-clock --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  int generated = 0;
  for (auto& c : j) {
    EXPECT_TRUE(c["name"] == "e2e_prefill" || c["name"] == "e2e_decode") << c.dump();
    EXPECT_GT(c["ratio"].get<double>(), 0) << c.dump();
    EXPECT_LT(c["ours_model_bytes"].get<int64_t>(), c["base_model_bytes"].get<int64_t>()) << c.dump();
    EXPECT_GT(c["ours_peak_rss_bytes"].get<int64_t>(), 0) << c.dump();
    EXPECT_EQ(c["clock"], "process CPU time");
    // Which kernel ran each linear and the attention, per form.
    const std::string form = c["ours"].get<std::string>().substr(0, c["ours"].get<std::string>().find(' '));
    std::string kernels;
    for (auto& line : c["ours_kernels"]) kernels += line.get<std::string>() + "\n";
    const char* want = form == "W8A8" ? "K3 int8, 8-bit row × s8 per token" : form == "W4" ? "K4, 4-bit g64 × f32"
                                                                                          : "K4-a8, 4-bit g64 × s8 per token";
    EXPECT_NE(kernels.find(std::string("attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down (every layer); "
                                       "output: ") + want),
              std::string::npos)
        << form << ":\n" << kernels;
    EXPECT_NE(kernels.find("attention (every layer): fp32"), std::string::npos) << kernels;
    generated += c["shape"].get<std::string>().rfind("llama d256", 0) == 0;
  }
  EXPECT_EQ(generated, 6);  // W8A8, W4 and W4A8, prefill and decode
  EXPECT_EQ(test::run_cli("bench --filter e2e --e2e-dim 200").status, 2);
}

}  // namespace tq
