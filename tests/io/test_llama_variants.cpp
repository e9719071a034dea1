// Qwen2 (LLaMA with biases on q, k and v; tied or untied head) and Mistral (LLaMA
// with a sliding window of attention), each written here in both layouts — a
// Hugging Face directory and a GGUF file — and loaded back, against a plain
// double-precision forward written in this file (not the library's ops).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/json.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "io/tquant_dir.h"
#include "nn/forward.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {

namespace {

using Mat = std::vector<std::vector<double>>;

// y[s] = W x[s] + b, W [out, in] row-major.
Mat linear(const Mat& x, const Linear& l) {
  const int out = l.out(), in = l.in();
  Mat y(x.size(), std::vector<double>(out));
  for (size_t s = 0; s < x.size(); s++)
    for (int o = 0; o < out; o++) {
      double acc = l.b.empty() ? 0.0 : l.b.data[o];
      for (int i = 0; i < in; i++) acc += (double)l.w.data[(size_t)o * in + i] * x[s][i];
      y[s][o] = acc;
    }
  return y;
}

Mat rms_norm(const Mat& x, const Tensor& g, double eps) {
  Mat y = x;
  for (size_t s = 0; s < x.size(); s++) {
    double ss = 0;
    for (double v : x[s]) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / x[s].size() + eps);
    for (size_t i = 0; i < x[s].size(); i++) y[s][i] = x[s][i] * r * g.data[i];
  }
  return y;
}

// Rotary embedding of every head of x: the pair (i, i + hd/2) (HF's rotate-half) or (2i, 2i + 1).
void rope(Mat& x, int heads, int hd, double theta, RopeLayout layout) {
  for (size_t pos = 0; pos < x.size(); pos++)
    for (int h = 0; h < heads; h++)
      for (int i = 0; i < hd / 2; i++) {
        const double ang = pos / std::pow(theta, 2.0 * i / hd);
        const int a = h * hd + (layout == RopeLayout::halves ? i : 2 * i);
        const int b = h * hd + (layout == RopeLayout::halves ? i + hd / 2 : 2 * i + 1);
        const double x0 = x[pos][a], x1 = x[pos][b];
        x[pos][a] = x0 * std::cos(ang) - x1 * std::sin(ang);
        x[pos][b] = x0 * std::sin(ang) + x1 * std::cos(ang);
      }
}

// Logits [S, vocab] of one sequence. Query s attends to keys t ≤ s with s − t < window (window 0: all).
std::vector<double> reference_logits(const Model& m, const std::vector<int32_t>& toks, int window) {
  const Config& c = m.cfg;
  const int S = (int)toks.size(), D = c.dim, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  Mat x(S, std::vector<double>(D));
  for (int s = 0; s < S; s++)
    for (int i = 0; i < D; i++) x[s][i] = m.tok_embd.data[(size_t)toks[s] * D + i];
  for (const Block& b : m.blocks) {
    Mat a = rms_norm(x, b.attn_norm.g, c.norm_eps);
    Mat q = linear(a, b.q), k = linear(a, b.k), v = linear(a, b.v);
    rope(q, H, hd, c.rope_theta, c.rope_layout);
    rope(k, KV, hd, c.rope_theta, c.rope_layout);
    Mat att(S, std::vector<double>(H * hd, 0.0));
    for (int h = 0; h < H; h++) {
      const int g = h / (H / KV);
      for (int s = 0; s < S; s++) {
        std::vector<double> p(S, 0.0);
        double mx = -1e300, sum = 0;
        for (int t = 0; t <= s; t++) {
          if (window > 0 && s - t >= window) continue;
          double d = 0;
          for (int j = 0; j < hd; j++) d += q[s][h * hd + j] * k[t][g * hd + j];
          p[t] = d / std::sqrt((double)hd);
          mx = std::max(mx, p[t]);
        }
        for (int t = 0; t <= s; t++) {
          p[t] = window > 0 && s - t >= window ? 0.0 : std::exp(p[t] - mx);
          sum += p[t];
        }
        for (int t = 0; t <= s; t++)
          for (int j = 0; j < hd; j++) att[s][h * hd + j] += p[t] / sum * v[t][g * hd + j];
      }
    }
    Mat o = linear(att, b.o);
    for (int s = 0; s < S; s++)
      for (int i = 0; i < D; i++) x[s][i] += o[s][i];
    Mat mm = rms_norm(x, b.mlp_norm.g, c.norm_eps);
    Mat gt = linear(mm, b.gate), up = linear(mm, b.up);
    for (int s = 0; s < S; s++)
      for (size_t i = 0; i < gt[s].size(); i++) gt[s][i] = gt[s][i] / (1 + std::exp(-gt[s][i])) * up[s][i];
    Mat dn = linear(gt, b.down);
    for (int s = 0; s < S; s++)
      for (int i = 0; i < D; i++) x[s][i] += dn[s][i];
  }
  Mat xf = rms_norm(x, m.final_norm.g, c.norm_eps);
  Linear head;
  head.w = c.tied_head ? m.tok_embd : m.head.w;
  head.b = c.tied_head ? Tensor() : m.head.b;
  std::vector<double> out;
  for (auto& row : linear(xf, head)) out.insert(out.end(), row.begin(), row.end());
  return out;
}

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  return rel_err(std::vector<float>(a.begin(), a.end()), b);
}

// The Hugging Face name of one of our tensors (LLaMA's layout, which Qwen2 and Mistral share).
std::string hf_name(const std::string& ours) {
  if (ours == "token_embd.weight") return "model.embed_tokens.weight";
  if (ours == "output_norm.weight") return "model.norm.weight";
  if (ours == "output.weight") return "lm_head.weight";
  static const std::vector<std::pair<std::string, std::string>> map = {
      {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"}, {"ffn_down", "mlp.down_proj"}};
  const size_t a = ours.find('.', 4), b = ours.rfind('.');
  for (auto& [o, h] : map)
    if (ours.substr(a + 1, b - a - 1) == o) return "model.layers." + ours.substr(4, a - 4) + "." + h + ours.substr(b);
  ADD_FAILURE() << "no HF name for " << ours;
  return ours;
}

// m in HF layout as it is (q/k rows as m holds them: m is made in the halves layout), with extra config keys.
void write_hf(Model& m, const std::string& dir, nlohmann::json config) {
  const Config& c = m.cfg;
  std::vector<SafeTensorOut> ts;
  for (auto& nt : named_tensors(m)) ts.push_back(f32_tensor(hf_name(nt.name), *nt.t));
  make_dirs(dir);
  write_safetensors(dir + "/model.safetensors", ts);
  config.update({{"hidden_size", c.dim}, {"num_hidden_layers", c.n_layers}, {"num_attention_heads", c.n_heads},
                 {"num_key_value_heads", c.n_kv_heads}, {"intermediate_size", c.hidden}, {"vocab_size", c.vocab},
                 {"max_position_embeddings", c.max_seq}, {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta},
                 {"hidden_act", "silu"}, {"tie_word_embeddings", c.tied_head}});
  std::ofstream(dir + "/config.json") << config.dump(2);
}

// A random Qwen2: biases on q, k and v only (N(0, 0.5²), large enough to matter).
Model random_qwen2(bool tied, RopeLayout layout, uint64_t seed) {
  Config c = llama_config(48, 2, 6, 2, 64, 300, 64);
  c.arch = "qwen2";
  c.tied_head = tied;
  c.rope_layout = layout;
  c.rope_theta = 1e6f;
  Model m = random_model(c, seed, 0.1f, true);
  for (Block& b : m.blocks) {
    b.o.b = b.gate.b = b.up.b = b.down.b = Tensor();
    for (Tensor* t : {&b.q.b, &b.k.b, &b.v.b})
      for (float& v : t->data) v *= 5.0f;
  }
  m.head.b = Tensor();
  return m;
}

Model random_mistral(int window, RopeLayout layout, uint64_t seed) {
  Config c = llama_config(48, 2, 6, 2, 64, 300, 64);
  c.sliding_window = window;
  c.rope_layout = layout;
  return random_model(c, seed, 0.1f);
}

const std::vector<int32_t> kToks = {1, 50, 7, 299, 3, 3, 120, 8, 9, 10, 11, 12, 40, 41, 42, 43, 200};

std::vector<float> logits(const Model& m, const std::vector<int32_t>& toks) {
  Workspace ws;
  forward(m, Input{1, (int)toks.size(), toks.data()}, ws);
  return ws.logits.data;
}

// Loads path and checks its logits against the reference forward of m.
Model expect_matches(const std::string& path, const Model& m, int window, const char* what) {
  Model l = load_model(path);
  const double err = rel_err(logits(l, kToks), reference_logits(m, kToks, window));
  EXPECT_LT(err, 1e-5) << what;
  std::printf("%s: logits rel err %.2e against the reference\n", what, err);
  return l;
}

}  // namespace

TEST(LlamaVariants, Qwen2FromHfAndGgufMatchesReference) {
  test::TempDir d;
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied head" : "untied head");
    // HF keeps q/k rows in the rotate-half order; llama.cpp's converter leaves qwen2's so (no permutation).
    Model m = random_qwen2(tied, RopeLayout::halves, tied ? 5 : 6);
    const std::string hf = d.file(tied ? "hf_tied" : "hf"), gguf = d.file(tied ? "tied.gguf" : "m.gguf");
    // use_sliding_window false: Qwen2's sliding_window is not applied (seq 17 > 4 would show it).
    write_hf(m, hf, {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"use_sliding_window", false},
                     {"sliding_window", 4}, {"max_window_layers", 1}});
    write_gguf_f32(m, gguf);
    for (const std::string& path : {hf, gguf}) {
      Model l = expect_matches(path, m, 0, tied ? "qwen2 tied" : "qwen2");
      EXPECT_EQ(l.cfg.arch, "qwen2");
      EXPECT_EQ(l.cfg.tied_head, tied);
      EXPECT_EQ(l.cfg.rope_layout, RopeLayout::halves);
      EXPECT_EQ(l.cfg.sliding_window, 0);
      EXPECT_EQ(l.blocks[1].k.b.data, m.blocks[1].k.b.data);
      EXPECT_TRUE(l.blocks[0].o.b.empty() && l.blocks[0].down.b.empty());
    }
    // The biases matter: the reference without them is far from the model.
    Model nob = m;
    for (Block& b : nob.blocks) b.q.b = b.k.b = b.v.b = Tensor();
    EXPECT_GT(rel_err(reference_logits(nob, kToks, 0), reference_logits(m, kToks, 0)), 1e-2);
  }
}

TEST(LlamaVariants, MistralSlidingWindowFromHfAndGgufMatchesReference) {
  test::TempDir d;
  const int W = 5;  // shorter than the 17 tokens: the window changes attention
  Model h = random_mistral(W, RopeLayout::halves, 7);
  write_hf(h, d.file("hf"), {{"architectures", {"MistralForCausalLM"}}, {"model_type", "mistral"}, {"sliding_window", W}});
  Model lh = expect_matches(d.file("hf"), h, W, "mistral HF");
  EXPECT_EQ(lh.cfg.sliding_window, W);
  EXPECT_GT(rel_err(reference_logits(h, kToks, 0), reference_logits(h, kToks, W)), 1e-3);

  Model g = random_mistral(W, RopeLayout::pairs, 8);  // GGUF: arch llama, q/k in llama.cpp's pair layout
  write_gguf_f32(g, d.file("m.gguf"));
  Model lg = expect_matches(d.file("m.gguf"), g, W, "mistral GGUF");
  EXPECT_EQ(lg.cfg.arch, "llama");
  EXPECT_EQ(lg.cfg.sliding_window, W);

  // sliding_window null (Mistral v0.2 on): full attention.
  Model full = random_mistral(0, RopeLayout::halves, 9);
  write_hf(full, d.file("full"), {{"architectures", {"MistralForCausalLM"}}, {"sliding_window", nullptr}});
  EXPECT_EQ(expect_matches(d.file("full"), full, 0, "mistral without a window").cfg.sliding_window, 0);

  // Decoding one token at a time through the cache sees the same window.
  KVCache cache;
  cache.init(lh.cfg, 1, (int)kToks.size());
  std::vector<float> step;
  Workspace ws;
  for (size_t i = 0; i < kToks.size(); i++) {
    forward(lh, Input{1, 1, &kToks[i]}, ws, no_hooks(), &cache);
    cache.len++;
    step.insert(step.end(), ws.logits.data.begin(), ws.logits.data.end());
  }
  EXPECT_LT(rel_err(step, reference_logits(h, kToks, W)), 1e-5);

  // A tquant directory keeps the window.
  save_tquant_dir(d.file("tq"), lh, QuantPlan{});
  EXPECT_EQ(load_model(d.file("tq")).cfg.sliding_window, W);
}

// A Qwen2 GGUF through a GGUF recipe and export: a qwen2 GGUF again, the biases kept in F32.
TEST(LlamaVariants, Qwen2GgufQuantizesAndExports) {
  test::TempDir d;
  Model m = random_qwen2(false, RopeLayout::halves, 4);
  write_gguf_f32(m, d.file("m.gguf"));
  const std::string text = test::write_sample_text(d);
  auto q = test::run_cli("quantize " + d.file("m.gguf") + " --recipe gguf-Q8_0 --calib " + text + "?limit=8 -o " +
                         d.file("q"));
  ASSERT_EQ(q.status, 0) << q.err;
  auto e = test::run_cli("export " + d.file("q") + " --gguf " + d.file("q.gguf"));
  ASSERT_EQ(e.status, 0) << e.err;
  Model l = load_model(d.file("q.gguf"));
  EXPECT_EQ(l.cfg.arch, "qwen2");
  EXPECT_EQ(l.blocks[0].q.b.data, m.blocks[0].q.b.data);
  const double err = rel_err(logits(l, kToks), reference_logits(m, kToks, 0));
  EXPECT_LT(err, 2e-2);
  EXPECT_GT(err, 0.0);  // Q8_0, not the float weights
  std::printf("qwen2 Q8_0 GGUF: logits rel err %.2e against the float reference\n", err);
}

// Qwen2's window covers the layers from max_window_layers on: all of them is the Config's window,
// none is full attention, some is refused.
TEST(LlamaVariants, Qwen2SlidingWindowOnEveryLayerOrRefused) {
  test::TempDir d;
  Model m = random_qwen2(false, RopeLayout::halves, 3);
  auto config = [](int from) {
    return nlohmann::json{{"architectures", {"Qwen2ForCausalLM"}}, {"use_sliding_window", true}, {"sliding_window", 4},
                          {"max_window_layers", from}};
  };
  write_hf(m, d.file("all"), config(0));
  EXPECT_EQ(expect_matches(d.file("all"), m, 4, "qwen2, window on every layer").cfg.sliding_window, 4);
  write_hf(m, d.file("none"), config(2));
  EXPECT_EQ(expect_matches(d.file("none"), m, 0, "qwen2, window on no layer").cfg.sliding_window, 0);
  write_hf(m, d.file("some"), config(1));
  auto r = test::run_cli("inspect " + d.file("some"));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("max_window_layers 1"), std::string::npos) << r.err;
}

TEST(LlamaVariants, GenerateWritesQwen2AndMistral) {
  test::TempDir d;
  const std::string shape = " --dim 32 --layers 2 --heads 4 --kv-heads 2 --hidden 48 --vocab 300 --ctx 64 --type f32";
  for (const char* fmt : {"hf", "gguf"}) {
    std::string out = d.file(std::string("q.") + fmt);
    auto r = test::run_cli("generate -o " + out + shape + " --arch qwen2 --format " + fmt);
    ASSERT_EQ(r.status, 0) << r.err;
    Model m = load_model(out);
    EXPECT_EQ(m.cfg.arch, "qwen2");
    EXPECT_EQ(m.blocks[1].v.b.numel(), 16);
    EXPECT_TRUE(m.blocks[1].o.b.empty());
    EXPECT_LT(rel_err(logits(m, kToks), reference_logits(m, kToks, 0)), 1e-5);
  }
  // Same seed, same values, the same q/k layout: the two files are one model.
  EXPECT_EQ(logits(load_model(d.file("q.hf")), kToks), logits(load_model(d.file("q.gguf")), kToks));
  auto r = test::run_cli("generate -o " + d.file("w.gguf") + shape + " --window 4");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(load_model(d.file("w.gguf")).cfg.sliding_window, 4);
  r = test::run_cli("generate -o " + d.file("x.gguf") + shape + " --arch qwen2 --window 4");
  EXPECT_EQ(r.status, 2) << r.err;
}

}  // namespace tq
