// The two real MNIST ViTs of ../shared/models, loaded from their folders as they are.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/accuracy.h"
#include "io/hf.h"
#include "io/load.h"
#include "test_util.h"

namespace tq {

namespace {

const char* kSonjuhy = "models/vit-mnist-sonjuhy";
const char* kAgentzz1 = "models/vit-mnist-tiny-agentzz1";

// The README's forward of the 5-layer model, unfused and in double: each extra
// query/key/value Linear, then MultiheadAttention's in_proj slice.
std::vector<double> sonjuhy_unfused(const HfWeights& w, const float* patches) {
  auto get = [&](const std::string& n) {
    const SafeTensor* t = w.find(n);
    EXPECT_TRUE(t) << n;
    return w.owner(t).read_f32(*t);
  };
  using Mat = std::vector<std::vector<double>>;  // [tokens][features]
  auto lin = [](const Mat& x, const Tensor& W, const float* b, int64_t row0 = 0, int64_t rows = -1) {
    if (rows < 0) rows = W.dim(0);
    Mat y(x.size(), std::vector<double>(rows));
    for (size_t t = 0; t < x.size(); t++)
      for (int64_t o = 0; o < rows; o++) {
        double s = b[row0 + o];
        for (size_t c = 0; c < x[t].size(); c++) s += W.data[(row0 + o) * W.dim(1) + c] * x[t][c];
        y[t][o] = s;
      }
    return y;
  };
  auto ln = [](const Mat& x, const Tensor& g, const Tensor& b) {
    Mat y = x;
    for (auto& r : y) {
      double m = 0, v = 0;
      for (double a : r) m += a;
      m /= r.size();
      for (double a : r) v += (a - m) * (a - m);
      double s = 1 / std::sqrt(v / r.size() + 1e-5);
      for (size_t c = 0; c < r.size(); c++) r[c] = (r[c] - m) * s * g.data[c] + b.data[c];
    }
    return y;
  };
  const int D = 49, H = 7, hd = 7, T = 17;
  Tensor conv = get("embedding.div_img.weight"), conv_b = get("embedding.div_img.bias");
  Tensor cls = get("embedding.cls_token"), pos = get("embedding.position_div_imgs");
  Mat px(16, std::vector<double>(49));
  for (int p = 0; p < 16; p++)
    for (int i = 0; i < 49; i++) px[p][i] = patches[p * 49 + i];
  conv.shape = {D, 49};  // Conv2d(1→49, 7, stride 7) over a row-major 7×7 patch
  Mat emb = lin(px, conv, conv_b.ptr());
  Mat x(T, std::vector<double>(D));
  for (int t = 0; t < T; t++)
    for (int d = 0; d < D; d++) x[t][d] = (t ? emb[t - 1][d] : cls.data[d]) + pos.data[t * D + d];
  for (int l = 0; l < 5; l++) {
    std::string p = "layers." + std::to_string(l) + ".";
    std::string mha = p + "multihead_attention.";
    Tensor g = get(p + "norm.weight"), b = get(p + "norm.bias");
    Tensor in_w = get(mha + "multihead_attention.in_proj_weight"), in_b = get(mha + "multihead_attention.in_proj_bias");
    Mat n = ln(x, g, b);
    Mat qkv[3];
    const char* names[3] = {"query", "key", "value"};
    for (int j = 0; j < 3; j++) {
      Mat pre = lin(n, get(mha + names[j] + ".weight"), get(mha + names[j] + ".bias").ptr());
      qkv[j] = lin(pre, in_w, in_b.ptr(), j * D, D);
    }
    Mat att(T, std::vector<double>(D));
    for (int h = 0; h < H; h++)
      for (int i = 0; i < T; i++) {
        std::vector<double> s(T);
        double mx = -1e300, sum = 0;
        for (int k = 0; k < T; k++) {
          double a = 0;
          for (int e = 0; e < hd; e++) a += qkv[0][i][h * hd + e] * qkv[1][k][h * hd + e];
          mx = std::max(mx, s[k] = a / std::sqrt((double)hd));
        }
        for (double& a : s) sum += a = std::exp(a - mx);
        for (int e = 0; e < hd; e++) {
          double o = 0;
          for (int k = 0; k < T; k++) o += s[k] / sum * qkv[2][k][h * hd + e];
          att[i][h * hd + e] = o;
        }
      }
    Mat o = lin(att, get(mha + "multihead_attention.out_proj.weight"),
                get(mha + "multihead_attention.out_proj.bias").ptr());
    for (int t = 0; t < T; t++)
      for (int d = 0; d < D; d++) x[t][d] += o[t][d];
    Mat f = lin(ln(x, g, b), get(p + "FFL.0.weight"), get(p + "FFL.0.bias").ptr());
    for (auto& r : f)
      for (double& a : r) a = 0.5 * a * (1 + std::erf(a / std::sqrt(2.0)));
    Mat y = lin(f, get(p + "FFL.3.weight"), get(p + "FFL.3.bias").ptr());
    for (int t = 0; t < T; t++)
      for (int d = 0; d < D; d++) x[t][d] += y[t][d];
  }
  return lin({x[0]}, get("classifer.weight"), get("classifer.bias").ptr())[0];
}

}  // namespace

TEST(MnistVits, SonjuhyScoresTheReadmeAccuracy) {
  TQ_REQUIRE_SHARED(kSonjuhy);
  Model m = load_model(test::shared(kSonjuhy));
  EXPECT_EQ(m.cfg.n_layers, 5);
  EXPECT_TRUE(m.final_norm.g.empty());
  ClassEval r = eval_classifier(m, image_batches(m.cfg, read_mnist(test::shared("data/mnist"))));
  EXPECT_EQ(r.total, 10000);
  EXPECT_EQ(r.correct, 9809);
}

TEST(MnistVits, Agentzz1ScoresTheReadmeAccuracy) {
  TQ_REQUIRE_SHARED(kAgentzz1);
  Model m = load_model(test::shared(kAgentzz1));
  EXPECT_EQ(m.cfg.n_layers, 1);
  EXPECT_TRUE(m.cfg.post_norm);
  EXPECT_EQ(m.cfg.pool, PoolKind::mean);
  ClassEval r = eval_classifier(m, image_batches(m.cfg, read_mnist(test::shared("data/mnist"))));
  EXPECT_EQ(r.total, 10000);
  EXPECT_EQ(r.correct, 8397);
}

// The fold of each extra q/k/v Linear into the in_proj slice is exact.
TEST(MnistVits, SonjuhyFoldMatchesTheUnfusedForward) {
  TQ_REQUIRE_SHARED(kSonjuhy);
  std::string file = test::shared(kSonjuhy) + "/vit_mnist_model.safetensors";
  Model m = load_model(file);
  HfWeights w;
  w.files.push_back(read_safetensors(file));
  auto batches = image_batches(m.cfg, read_mnist(test::shared("data/mnist"), slice_of(0, 32)), 32);
  Workspace ws;
  forward(m, batches[0].input(), ws);
  double worst = 0;
  for (int i = 0; i < 32; i++) {
    std::vector<double> want = sonjuhy_unfused(w, batches[0].patches.data() + i * 16 * 49);
    std::vector<float> wf(want.begin(), want.end());
    worst = std::max(worst, test::rel_err(ws.logits.row(i), wf.data(), 10));
  }
  std::printf("sonjuhy fused vs unfused logits: worst rel err %.2e over 32 images\n", worst);
  EXPECT_LT(worst, 1e-5);
}

// Every family reaches every site with the shapes of its config.
TEST(MnistVits, EveryFamilyReachesEverySite) {
  std::vector<std::string> paths;
  for (const char* f : {"opt", "gpt2", "bert", "vit"})
    paths.push_back(std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + f);
  for (const char* f : {kSonjuhy, kAgentzz1})
    if (is_directory(test::shared(f))) paths.push_back(test::shared(f));
  for (auto& path : paths) {
    Model m = load_model(path);
    const Config& c = m.cfg;
    const int B = 2, T = c.embed == EmbedKind::patches ? c.max_seq : 5, S = T + (c.cls_token ? 1 : 0), N = B * S;
    std::vector<int32_t> toks(B * T, 3);
    std::vector<float> patches((size_t)B * T * c.patch_dim, 0.25f);
    Input in{B, T, c.embed == EmbedKind::tokens ? toks.data() : nullptr};
    if (c.embed == EmbedKind::patches) in.patches = patches.data();
    test::ShapeHook h;
    Workspace ws;
    forward(m, in, ws, h);
    for (int l = 0; l < c.n_layers; l++) {
      EXPECT_EQ(h.seen.at({(int)Site::qkv_in, l}), std::make_pair(N, c.dim)) << path;
      EXPECT_EQ(h.seen.at({(int)Site::q, l}), std::make_pair(N, c.q_dim())) << path;
      EXPECT_EQ(h.seen.at({(int)Site::k, l}), std::make_pair(N, c.kv_dim())) << path;
      EXPECT_EQ(h.seen.at({(int)Site::v, l}), std::make_pair(N, c.kv_dim())) << path;
      EXPECT_EQ(h.seen.at({(int)Site::probs, l}), std::make_pair(B * c.n_heads * S, S)) << path;
      EXPECT_EQ(h.seen.at({(int)Site::o_in, l}), std::make_pair(N, c.q_dim())) << path;
      EXPECT_EQ(h.seen.at({(int)Site::up_in, l}), std::make_pair(N, c.dim)) << path;
      EXPECT_EQ(h.seen.at({(int)Site::down_in, l}), std::make_pair(N, c.hidden)) << path;
    }
    EXPECT_EQ(h.seen.at({(int)Site::head_in, -1}), std::make_pair(c.is_lm() ? N : B, c.dim)) << path;
    EXPECT_EQ(h.seen.size(), 8u * c.n_layers + 1) << path;
  }
}

}  // namespace tq
