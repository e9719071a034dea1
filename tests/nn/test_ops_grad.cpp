// Every op's backward against central finite differences, in float64.
//
// The loss is L = Σ w ⊙ y for fixed random weights w (so dy = w), or the op's own
// scalar (cross-entropy). With h = 1e-5 in double the central difference has a
// truncation error of order h²·|f'''| ≈ 1e-10 and a rounding error of order
// 1e-16·|L|/h ≈ 1e-11: a correct backward agrees to about 1e-10 relative (measured:
// at most 3.2e-10 here); the tolerance 1e-8 leaves room for that and fails on any real mistake.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <functional>

#include "core/rng.h"
#include "nn/ops.h"

namespace tq {
namespace {

using Vec = std::vector<double>;
constexpr double kTol = 1e-8;

Vec randn(size_t n, Rng& rng, double scale = 1.0) {
  Vec v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

// One input of the op and the gradient the backward gave for it.
struct Var {
  const char* name;
  Vec* x;
  Vec grad;
};

// ‖g_fd − g‖ / ‖g_fd‖ for every variable, each element perturbed by ±h.
void check(const char* what, const std::function<double()>& loss, std::vector<Var> vars, double tol = kTol) {
  const double h = 1e-5;
  for (Var& v : vars) {
    ASSERT_EQ(v.x->size(), v.grad.size()) << what << " " << v.name;
    double num = 0, den = 0;
    for (size_t i = 0; i < v.x->size(); i++) {
      double keep = (*v.x)[i];
      (*v.x)[i] = keep + h;
      double lp = loss();
      (*v.x)[i] = keep - h;
      double lm = loss();
      (*v.x)[i] = keep;
      double fd = (lp - lm) / (2 * h);
      num += (fd - v.grad[i]) * (fd - v.grad[i]);
      den += fd * fd;
    }
    ASSERT_GT(den, 0.0) << what << " " << v.name << ": the gradient is identically zero, nothing was checked";
    double err = std::sqrt(num / den);
    EXPECT_LT(err, tol) << what << ": d/d" << v.name;
    ::testing::Test::RecordProperty(std::string(what) + "." + v.name, fmt::format("{:.2e}", err));
  }
}

TEST(OpsGrad, Linear) {
  Rng rng(1);
  for (int N : {1, 5}) {  // N = 1 takes the gemv path
    const int C = 7, O = 4;
    Vec x = randn(N * C, rng), W = randn(O * C, rng), b = randn(O, rng), w = randn(N * O, rng);
    auto loss = [&] {
      Vec y(N * O);
      linear_forward(y.data(), x.data(), W.data(), b.data(), N, C, O);
      return dot(y, w);
    };
    Vec dx(N * C), dW(O * C, 0.0), db(O, 0.0);
    linear_backward(dx.data(), dW.data(), db.data(), w.data(), x.data(), W.data(), N, C, O);
    check("linear", loss, {{"x", &x, dx}, {"W", &W, dW}, {"b", &b, db}});
  }
}

TEST(OpsGrad, RmsNormWithAndWithoutBias) {
  Rng rng(2);
  const int N = 4, C = 9;
  for (bool bias : {false, true}) {
    Vec x = randn(N * C, rng), g = randn(C, rng), b = randn(C, rng), w = randn(N * C, rng);
    const double* bp = bias ? b.data() : nullptr;
    auto loss = [&] {
      Vec y(N * C), r(N);
      rmsnorm_forward(y.data(), r.data(), x.data(), g.data(), bp, N, C, 1e-5f);
      return dot(y, w);
    };
    Vec y(N * C), r(N), dx(N * C), dg(C, 0.0), db(C, 0.0);
    rmsnorm_forward(y.data(), r.data(), x.data(), g.data(), bp, N, C, 1e-5f);
    rmsnorm_backward(dx.data(), dg.data(), bias ? db.data() : nullptr, w.data(), x.data(), r.data(), g.data(), N, C);
    std::vector<Var> vars = {{"x", &x, dx}, {"g", &g, dg}};
    if (bias) vars.push_back({"b", &b, db});
    check(bias ? "rmsnorm+bias" : "rmsnorm", loss, vars);
  }
}

TEST(OpsGrad, LayerNormWithAndWithoutBias) {
  Rng rng(3);
  const int N = 4, C = 9;
  for (bool bias : {false, true}) {
    Vec x = randn(N * C, rng), g = randn(C, rng), b = randn(C, rng), w = randn(N * C, rng);
    const double* bp = bias ? b.data() : nullptr;
    auto loss = [&] {
      Vec y(N * C), m(N), r(N);
      layernorm_forward(y.data(), m.data(), r.data(), x.data(), g.data(), bp, N, C, 1e-5f);
      return dot(y, w);
    };
    Vec y(N * C), m(N), r(N), dx(N * C), dg(C, 0.0), db(C, 0.0);
    layernorm_forward(y.data(), m.data(), r.data(), x.data(), g.data(), bp, N, C, 1e-5f);
    layernorm_backward(dx.data(), dg.data(), bias ? db.data() : nullptr, w.data(), x.data(), m.data(), r.data(),
                       g.data(), N, C);
    std::vector<Var> vars = {{"x", &x, dx}, {"g", &g, dg}};
    if (bias) vars.push_back({"b", &b, db});
    check(bias ? "layernorm+bias" : "layernorm", loss, vars);
  }
}

TEST(OpsGrad, RopeBothLayouts) {
  Rng rng(4);
  const int seq = 3, N = 6, H = 2, hd = 8, pos0 = 5;  // two sequences of three, starting at position 5
  for (RopeLayout layout : {RopeLayout::pairs, RopeLayout::halves}) {
    Vec x = randn(N * H * hd, rng), w = randn(N * H * hd, rng);
    auto loss = [&] {
      Vec y = x;
      rope_forward(y.data(), N, seq, pos0, H, hd, 10000.0f, layout);
      return dot(y, w);
    };
    Vec dx = w;
    rope_backward(dx.data(), N, seq, pos0, H, hd, 10000.0f, layout);
    check(layout == RopeLayout::pairs ? "rope.pairs" : "rope.halves", loss, {{"x", &x, dx}});
  }
}

TEST(OpsGrad, AttentionScoresSoftmaxCausalAndBidirectionalWithGqa) {
  Rng rng(5);
  const int H = 4, KV = 2, hd = 4;
  struct Case {
    const char* name;
    int Sq, Sk;
    bool causal;
    int window = 0;
  };
  // Sk > Sq: queries after keys already in a cache. A sliding window of 2 (Mistral) masks keys further back.
  for (Case cs : {Case{"causal", 5, 5, true}, Case{"bidirectional", 5, 5, false}, Case{"causal+past", 3, 5, true},
                  Case{"window+past", 3, 5, true, 2}}) {
    AttnShape s{cs.Sq, cs.Sk, H, KV, hd, cs.Sk - cs.Sq, cs.causal, cs.window};
    Vec q = randn(cs.Sq * H * hd, rng), k = randn(cs.Sk * KV * hd, rng), w = randn(H * cs.Sq * cs.Sk, rng);
    auto loss = [&] {
      Vec P(H * cs.Sq * cs.Sk);
      attention_scores_forward(P.data(), q.data(), k.data(), s, H * hd, KV * hd);
      return dot(P, w);
    };
    Vec P(H * cs.Sq * cs.Sk), dq(q.size()), dk(k.size(), 0.0);
    attention_scores_forward(P.data(), q.data(), k.data(), s, H * hd, KV * hd);
    if (cs.causal) {
      EXPECT_EQ(P[cs.Sk - 1], 0.0);  // the first query does not see the last key
    }
    if (cs.window) {  // the last query (position 4) sees keys 3 and 4 only
      const double* last = P.data() + (int64_t)(cs.Sq - 1) * cs.Sk;
      EXPECT_EQ(last[2], 0.0);
      EXPECT_GT(last[3], 0.0);
    }
    attention_scores_backward(dq.data(), dk.data(), w.data(), P.data(), q.data(), k.data(), s, H * hd, KV * hd);
    check(cs.name, loss, {{"q", &q, dq}, {"k", &k, dk}});
  }
}

TEST(OpsGrad, AttentionApplyWithGqa) {
  Rng rng(6);
  const int H = 4, KV = 2, hd = 3, Sq = 4, Sk = 5;
  AttnShape s{Sq, Sk, H, KV, hd, 1, true};
  Vec P = randn(H * Sq * Sk, rng), v = randn(Sk * KV * hd, rng), w = randn(Sq * H * hd, rng);
  auto loss = [&] {
    Vec out(Sq * H * hd);
    attention_apply_forward(out.data(), P.data(), v.data(), s, H * hd, KV * hd);
    return dot(out, w);
  };
  Vec dP(P.size()), dv(v.size(), 0.0);
  attention_apply_backward(dP.data(), dv.data(), w.data(), P.data(), v.data(), s, H * hd, KV * hd);
  check("attention_apply", loss, {{"P", &P, dP}, {"v", &v, dv}});
}

TEST(OpsGrad, ActivationsAndGatedForms) {
  Rng rng(7);
  const int n = 40;
  for (ActKind a : {ActKind::gelu, ActKind::gelu_tanh, ActKind::relu, ActKind::silu}) {
    Vec x = randn(n, rng, 2.0), u = randn(n, rng), w = randn(n, rng);
    for (auto& v : x)
      if (std::abs(v) < 1e-3) v = 0.5;  // ReLU's kink is not differentiable
    auto loss = [&] {
      Vec y(n);
      act_forward(y.data(), x.data(), n, a);
      return dot(y, w);
    };
    Vec dx(n);
    act_backward(dx.data(), w.data(), x.data(), n, a);
    check(to_string(a), loss, {{"x", &x, dx}});

    auto gloss = [&] {
      Vec h(n);
      gated_forward(h.data(), x.data(), u.data(), n, a);
      return dot(h, w);
    };
    Vec dg(n), du(n);
    gated_backward(dg.data(), du.data(), w.data(), x.data(), u.data(), n, a);
    check((std::string("gated.") + to_string(a)).c_str(), gloss, {{"gate", &x, dg}, {"up", &u, du}});
  }
}

TEST(OpsGrad, Tanh) {
  Rng rng(8);
  const int n = 20;
  Vec x = randn(n, rng), w = randn(n, rng), y(n), dx(n);
  auto loss = [&] {
    Vec t(n);
    tanh_forward(t.data(), x.data(), n);
    return dot(t, w);
  };
  tanh_forward(y.data(), x.data(), n);
  tanh_backward(dx.data(), w.data(), y.data(), n);
  check("tanh", loss, {{"x", &x, dx}});
}

TEST(OpsGrad, CrossEntropyWithIgnoredTargets) {
  Rng rng(9);
  const int N = 5, V = 11;
  Vec logits = randn(N * V, rng, 3.0);
  std::vector<int32_t> targets = {3, -1, 0, 10, 7};
  const double scale = 0.37;
  auto loss = [&] { return scale * cross_entropy_forward_backward<double>(nullptr, logits.data(), targets.data(), N, V, 1.0); };
  Vec d(N * V);
  cross_entropy_forward_backward(d.data(), logits.data(), targets.data(), N, V, scale);
  for (int v = 0; v < V; v++) EXPECT_EQ(d[V + v], 0.0);  // the ignored row
  check("cross_entropy", loss, {{"logits", &logits, d}});
}

TEST(OpsGrad, Embeddings) {
  Rng rng(10);
  const int rows = 6, D = 5, N = 8;
  std::vector<int32_t> ids = {1, 4, 1, 0, 5, 5, 5, 2};  // repeated rows add up
  Vec table = randn(rows * D, rng), base = randn(N * D, rng), w = randn(N * D, rng);
  for (bool add : {false, true}) {
    auto loss = [&] {
      Vec x = base;
      embedding_forward(x.data(), table.data(), ids.data(), N, D, add);
      return dot(x, w);
    };
    Vec dt(table.size(), 0.0);
    embedding_backward(dt.data(), w.data(), ids.data(), N, D);
    check(add ? "embedding+add" : "embedding", loss, {{"table", &table, dt}});
  }
}

TEST(OpsGrad, PatchEmbeddingWithAndWithoutCls) {
  Rng rng(11);
  const int B = 2, T = 3, P = 6, D = 4;
  for (bool with_cls : {false, true}) {
    const int S = T + (with_cls ? 1 : 0);
    Vec patches = randn(B * T * P, rng), W = randn(D * P, rng), b = randn(D, rng), cls = randn(D, rng),
        w = randn(B * S * D, rng);
    auto loss = [&] {
      Vec x(B * S * D);
      patch_embed_forward(x.data(), patches.data(), W.data(), b.data(), with_cls ? cls.data() : nullptr, B, T, P, D);
      return dot(x, w);
    };
    Vec dW(W.size(), 0.0), db(D, 0.0), dcls(D, 0.0);
    patch_embed_backward(dW.data(), db.data(), with_cls ? dcls.data() : nullptr, w.data(), patches.data(), B, T, P,
                         D);
    std::vector<Var> vars = {{"W", &W, dW}, {"b", &b, db}};
    if (with_cls) vars.push_back({"cls", &cls, dcls});
    check(with_cls ? "patch_embed+cls" : "patch_embed", loss, vars);
  }
}

// Pooling, the BERT pooler (dense + tanh) and a classifier head with label cross-entropy, as one chain.
TEST(OpsGrad, PoolingPoolerAndClassifierHead) {
  Rng rng(12);
  const int B = 3, S = 4, D = 5, K = 3;
  std::vector<int32_t> labels = {2, 0, 1};
  for (PoolKind pool : {PoolKind::first, PoolKind::mean}) {
    Vec x = randn(B * S * D, rng), Wp = randn(D * D, rng, 0.5), bp = randn(D, rng), Wc = randn(K * D, rng),
        bc = randn(K, rng);
    auto loss = [&] {
      Vec pooled(B * D), pre(B * D), t(B * D), logits(B * K);
      pool_forward(pooled.data(), x.data(), B, S, D, pool);
      linear_forward(pre.data(), pooled.data(), Wp.data(), bp.data(), B, D, D);
      tanh_forward(t.data(), pre.data(), B * D);
      linear_forward(logits.data(), t.data(), Wc.data(), bc.data(), B, D, K);
      return cross_entropy_forward_backward<double>(nullptr, logits.data(), labels.data(), B, K, 1.0) / B;
    };
    Vec pooled(B * D), pre(B * D), t(B * D), logits(B * K);
    pool_forward(pooled.data(), x.data(), B, S, D, pool);
    linear_forward(pre.data(), pooled.data(), Wp.data(), bp.data(), B, D, D);
    tanh_forward(t.data(), pre.data(), B * D);
    linear_forward(logits.data(), t.data(), Wc.data(), bc.data(), B, D, K);
    Vec dlogits(B * K), dt(B * D), dpre(B * D), dpooled(B * D), dx(B * S * D, 0.0);
    Vec dWc(Wc.size(), 0.0), dbc(K, 0.0), dWp(Wp.size(), 0.0), dbp(D, 0.0);
    cross_entropy_forward_backward(dlogits.data(), logits.data(), labels.data(), B, K, 1.0 / B);
    linear_backward(dt.data(), dWc.data(), dbc.data(), dlogits.data(), t.data(), Wc.data(), B, D, K);
    tanh_backward(dpre.data(), dt.data(), t.data(), B * D);
    linear_backward(dpooled.data(), dWp.data(), dbp.data(), dpre.data(), pooled.data(), Wp.data(), B, D, D);
    pool_backward(dx.data(), dpooled.data(), B, S, D, pool);
    check(pool == PoolKind::first ? "cls_head" : "mean_head", loss,
          {{"x", &x, dx}, {"pooler.W", &Wp, dWp}, {"pooler.b", &bp, dbp}, {"head.W", &Wc, dWc}, {"head.b", &bc, dbc}});
  }
}

}  // namespace
}  // namespace tq
