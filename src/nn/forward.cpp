#include "nn/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"
#include "nn/ops.h"

namespace tq {

Hooks& no_hooks() {
  static Hooks none;
  return none;
}

void KVCache::init(const Config& c, int batch, int max_len) {
  B = batch;
  max_seq = max_len;
  len = 0;
  k.assign(c.n_layers, Tensor({batch, max_len, c.kv_dim()}));
  v.assign(c.n_layers, Tensor({batch, max_len, c.kv_dim()}));
}

Model zeros_like(const Model& m) {
  Model z = m;
  z.tok = Tokenizer{};
  for (auto& nt : named_tensors(z)) std::fill(nt.t->data.begin(), nt.t->data.end(), 0.0f);
  return z;
}

// Resizes without clearing: every caller overwrites the contents.
static float* need(Tensor& t, std::vector<int64_t> shape) {
  if (t.shape != shape) {
    t.data.resize(Tensor::count(shape));
    t.shape = std::move(shape);
  }
  return t.ptr();
}

static void norm_forward(const Config& c, const Norm& n, float* y, float* mean, float* rstd, const float* x, int N) {
  if (c.norm == NormKind::rms) {
    rmsnorm_forward(y, rstd, x, n.g.ptr(), n.b.empty() ? nullptr : n.b.ptr(), N, c.dim, c.norm_eps);
  } else {
    layernorm_forward(y, mean, rstd, x, n.g.ptr(), n.b.empty() ? nullptr : n.b.ptr(), N, c.dim, c.norm_eps);
  }
}

static void norm_backward(const Config& c, const Norm& n, Norm& dn, float* dx, const float* dy, const float* x,
                          const float* mean, const float* rstd, int N) {
  float* db = dn.b.empty() ? nullptr : dn.b.ptr();
  if (c.norm == NormKind::rms) {
    rmsnorm_backward(dx, dn.g.ptr(), db, dy, x, rstd, n.g.ptr(), N, c.dim);
  } else {
    layernorm_backward(dx, dn.g.ptr(), db, dy, x, mean, rstd, n.g.ptr(), N, c.dim);
  }
}

// y = x·Wᵀ + b on the runtime's executor, the f32 weight, or the weight as its file stores it.
static void linear_any(const Linear& l, const Tensor& w, float* y, const float* x, int N) {
  const float* b = l.b.empty() ? nullptr : l.b.ptr();
  if (l.exec) return l.exec->forward(y, x, N);
  if (!w.has_values() && w.stored) return linear_forward_stored(y, x, *w.stored, b, N);
  linear_forward(y, x, w.ptr(), b, N, (int)w.dim(1), (int)w.dim(0));
}

static void lin_forward(const Linear& l, float* y, const float* x, int N) { linear_any(l, l.w, y, x, N); }

// Rows of an embedding table, f32 or stored.
static void embed_rows(float* x, const Tensor& table, const int32_t* ids, int64_t N, bool add) {
  if (!table.has_values() && table.stored) return embedding_forward_stored(x, *table.stored, ids, N, add);
  embedding_forward(x, table.ptr(), ids, N, (int)table.dim(1), add);
}

// dx = dy·W (overwrite, or add when accumulate), parameter gradients added into dl.
static void lin_backward(const Linear& l, Linear& dl, float* dx, const float* dy, const float* x, int N,
                         bool accumulate, std::vector<float>& scratch) {
  float* dst = dx;
  if (dx && accumulate) {
    scratch.resize((size_t)N * l.in());
    dst = scratch.data();
  }
  linear_backward(dst, dl.w.ptr(), dl.b.empty() ? nullptr : dl.b.ptr(), dy, x, l.w.ptr(), N, l.in(), l.out());
  if (dx && accumulate)
    for (int64_t i = 0; i < (int64_t)N * l.in(); i++) dx[i] += dst[i];
}

// Row ids into the position table ([B·S]) and the token-type table (zeros when absent).
static std::vector<int32_t> position_ids(const Config& c, int B, int S, int pos0) {
  std::vector<int32_t> ids((size_t)B * S);
  for (int b = 0; b < B; b++)
    for (int s = 0; s < S; s++) ids[(size_t)b * S + s] = pos0 + s + c.pos_offset;
  return ids;
}
static std::vector<int32_t> type_ids(const Input& in, int64_t N) {
  return in.types ? std::vector<int32_t>(in.types, in.types + N) : std::vector<int32_t>(N, 0);
}

static void embed_forward(const Model& m, const Input& in, Workspace& ws, int pos0) {
  const Config& c = m.cfg;
  const int B = in.B, T = in.T, S = ws.S, D = c.dim;
  const int64_t N = (int64_t)B * S;
  float* x = need(ws.x, {N, D});
  if (c.embed == EmbedKind::tokens) {
    for (int64_t n = 0; n < (int64_t)B * T; n++)
      if (in.tokens[n] < 0 || in.tokens[n] >= c.vocab)
        bad_input("token id {} is outside the vocabulary of {}", in.tokens[n], c.vocab);
    embed_rows(x, m.tok_embd, in.tokens, N, false);
  } else {
    TQ_CHECK_INPUT(in.patches, "this model takes images, not tokens");
    patch_embed_forward(x, in.patches, m.patch_embd.w.ptr(), m.patch_embd.b.empty() ? nullptr : m.patch_embd.b.ptr(),
                        c.cls_token ? m.cls.ptr() : nullptr, B, T, c.patch_dim, D);
  }
  if (c.pos == PosKind::learned) {
    if (pos0 + S + c.pos_offset > m.pos_embd.dim(0))
      bad_input("position {} is beyond the {} positions this model knows", pos0 + S - 1,
                m.pos_embd.dim(0) - c.pos_offset);
    embed_rows(x, m.pos_embd, position_ids(c, B, S, pos0).data(), N, true);
  }
  if (!m.type_embd.empty()) {
    std::vector<int32_t> types = type_ids(in, N);
    for (int32_t t : types)
      if (t < 0 || t >= m.type_embd.dim(0)) bad_input("token type {} is out of range", t);
    embed_rows(x, m.type_embd, types.data(), N, true);
  }
  if (!m.embd_norm.g.empty()) {
    std::memcpy(need(ws.emb_sum, {N, D}), x, sizeof(float) * N * D);
    norm_forward(c, m.embd_norm, x, need(ws.emb_mean, {N}), need(ws.emb_rstd, {N}), ws.emb_sum.ptr(), N);
  }
}

static void block_forward(const Model& m, int l, Workspace& ws, Hooks& hooks, KVCache* cache, int pos0) {
  const Config& c = m.cfg;
  const Block& bl = m.blocks[l];
  LayerActs& A = ws.train ? ws.layers[l] : ws.layers[0];
  const int B = ws.B, S = ws.S, D = c.dim, H = c.n_heads, hd = c.head_dim, F = c.hidden;
  const int N = B * S, qd = c.q_dim(), kvd = c.kv_dim();
  float* x = ws.x.ptr();
  if (ws.train) std::memcpy(need(A.x, {N, D}), x, sizeof(float) * N * D);

  // Attention.
  float* a = need(A.a, {N, D});
  if (c.post_norm) {
    std::memcpy(a, x, sizeof(float) * N * D);
  } else {
    norm_forward(c, bl.attn_norm, a, need(A.a_mean, {N}), need(A.a_rstd, {N}), x, N);
  }
  hooks.forward(Site::qkv_in, l, a, N, D);
  float* q = need(A.q, {N, qd});
  float* k = need(A.k, {N, kvd});
  float* v = need(A.v, {N, kvd});
  lin_forward(bl.q, q, a, N);
  lin_forward(bl.k, k, a, N);
  lin_forward(bl.v, v, a, N);
  if (c.pos == PosKind::rope) {
    rope_forward(q, N, S, pos0, H, hd, c.rope_theta, c.rope_layout);
    rope_forward(k, N, S, pos0, c.n_kv_heads, hd, c.rope_theta, c.rope_layout);
  }
  hooks.forward(Site::q, l, q, N, qd);
  hooks.forward(Site::k, l, k, N, kvd);
  hooks.forward(Site::v, l, v, N, kvd);
  const float *K = k, *V = v;
  int Sk = S;
  int64_t kv_batch_stride = (int64_t)S * kvd;
  if (cache) {
    for (int b = 0; b < B; b++)
      for (int s = 0; s < S; s++) {
        std::memcpy(cache->k[l].ptr() + ((int64_t)b * cache->max_seq + pos0 + s) * kvd, k + ((int64_t)b * S + s) * kvd,
                    sizeof(float) * kvd);
        std::memcpy(cache->v[l].ptr() + ((int64_t)b * cache->max_seq + pos0 + s) * kvd, v + ((int64_t)b * S + s) * kvd,
                    sizeof(float) * kvd);
      }
    K = cache->k[l].ptr();
    V = cache->v[l].ptr();
    Sk = pos0 + S;
    kv_batch_stride = (int64_t)cache->max_seq * kvd;
  }
  AttnShape shp{S, Sk, H, c.n_kv_heads, hd, Sk - S, c.causal, c.sliding_window};
  float* att = need(A.att, {N, qd});
  if (bl.attn_exec) {
    for (int b = 0; b < B; b++)
      bl.attn_exec->forward(att + (int64_t)b * S * qd, q + (int64_t)b * S * qd, K + b * kv_batch_stride,
                            V + b * kv_batch_stride, shp, qd, kvd);
  } else {
    const int64_t psz = (int64_t)H * S * Sk;
    float* p = need(A.p, {B, H, S, Sk});
    for (int b = 0; b < B; b++)
      attention_scores_forward(p + b * psz, q + (int64_t)b * S * qd, K + b * kv_batch_stride, shp, qd, kvd);
    if (ws.train) std::memcpy(need(A.p_raw, {B, H, S, Sk}), p, sizeof(float) * B * psz);
    hooks.forward(Site::probs, l, p, B * H * S, Sk);
    for (int b = 0; b < B; b++)
      attention_apply_forward(att + (int64_t)b * S * qd, p + b * psz, V + b * kv_batch_stride, shp, qd, kvd);
  }
  hooks.forward(Site::o_in, l, att, N, qd);
  float* h = need(A.h, {N, D});
  lin_forward(bl.o, h, att, N);
  for (int64_t i = 0; i < (int64_t)N * D; i++) h[i] += x[i];
  const float* resid = h;
  if (c.post_norm) {
    float* hn = need(A.hn, {N, D});
    norm_forward(c, bl.attn_norm, hn, need(A.h_mean, {N}), need(A.h_rstd, {N}), h, N);
    resid = hn;
  }

  // MLP.
  float* mm = need(A.m, {N, D});
  if (c.post_norm) {
    std::memcpy(mm, resid, sizeof(float) * N * D);
  } else {
    norm_forward(c, bl.mlp_norm, mm, need(A.m_mean, {N}), need(A.m_rstd, {N}), h, N);
  }
  hooks.forward(Site::up_in, l, mm, N, D);
  float* u = need(A.u, {N, F});
  float* f = need(A.f, {N, F});
  lin_forward(bl.up, u, mm, N);
  if (c.gated) {
    float* g = need(A.g, {N, F});
    lin_forward(bl.gate, g, mm, N);
    gated_forward(f, g, u, (int64_t)N * F, c.act);
  } else {
    act_forward(f, u, (int64_t)N * F, c.act);
  }
  hooks.forward(Site::down_in, l, f, N, F);
  float* y = c.post_norm ? need(A.y, {N, D}) : x;  // pre-norm: the new residual goes straight to ws.x
  lin_forward(bl.down, y, f, N);
  for (int64_t i = 0; i < (int64_t)N * D; i++) y[i] += resid[i];
  if (c.post_norm) norm_forward(c, bl.mlp_norm, x, need(A.y_mean, {N}), need(A.y_rstd, {N}), y, N);
}

int64_t forward_bytes(const Config& c, int64_t B, int64_t T, bool train, int64_t Sk) {
  const int64_t S = T + (c.cls_token ? 1 : 0), N = B * S;
  if (Sk <= 0) Sk = S;
  // One layer's activations (LayerActs): the residual-width tensors, q/k/v and the attention
  // output, the MLP's three hidden-width tensors, and the attention probabilities (twice when training).
  const int64_t widths = 6 * (int64_t)c.dim + 2 * (int64_t)c.q_dim() + 2 * (int64_t)c.kv_dim() + 3 * (int64_t)c.hidden;
  const int64_t layer = N * widths + (train ? 2 : 1) * B * c.n_heads * S * Sk;
  return 4 * ((train ? c.n_layers : 1) * layer + N * (3 * (int64_t)c.dim + c.n_out));
}

void check_forward_memory(const Config& c, int64_t B, int64_t T, bool train, int copies, int64_t Sk) {
  TQ_CHECK_INPUT(B > 0 && T > 0 && B <= (1 << 24) && T <= (1 << 24), "an input of {} x {} tokens is out of range", B,
                 T);
  const double need = (double)forward_bytes(c, B, T, train, Sk) * copies, have = (double)machine_memory_bytes();
  if (need > have)
    bad_input("{} x {} tokens need {:.1f} GiB of activations{}, more than this machine's {:.1f} GiB; use shorter "
              "sequences (--ctx)", B, T, need / (1 << 30), copies > 1 ? fmt::format(" ({} at once)", copies) : "",
              have / (1 << 30));
}

// Shapes of this call into ws; returns the position of token 0.
static int forward_setup(const Model& m, const Input& in, Workspace& ws, KVCache* cache) {
  const Config& c = m.cfg;
  TQ_CHECK_INPUT(in.B > 0 && in.T > 0, "empty input");
  int pos0 = cache ? cache->len : in.pos0;
  check_forward_memory(c, in.B, in.T, ws.train, 1, (int64_t)pos0 + in.T + (c.cls_token ? 1 : 0));
  ws.B = in.B;
  ws.T = in.T;
  ws.S = in.T + (c.cls_token ? 1 : 0);
  if (cache) {
    TQ_CHECK_INPUT(!ws.train, "training does not use a cache");
    TQ_CHECK_INPUT(cache->B == in.B && pos0 + ws.S <= cache->max_seq,
                   "the cache holds {} positions; {} more do not fit after {}", cache->max_seq, ws.S, pos0);
  }
  ws.layers.resize(ws.train ? c.n_layers : 1);
  return pos0;
}

void forward_embed(const Model& m, const Input& in, Workspace& ws) {
  TQ_CHECK_INPUT(m.cfg.embed == EmbedKind::patches || in.tokens, "this model takes tokens, not images");
  embed_forward(m, in, ws, forward_setup(m, in, ws, nullptr));
}

void forward_block(const Model& m, int layer, const Input& in, Workspace& ws, Hooks& hooks) {
  TQ_ASSERT(layer >= 0 && layer < m.cfg.n_layers, "forward_block: layer {} of {}", layer, m.cfg.n_layers);
  int pos0 = forward_setup(m, in, ws, nullptr);
  TQ_ASSERT(ws.x.numel() == (int64_t)ws.B * ws.S * m.cfg.dim, "forward_block: ws.x does not hold [{}, {}]",
            ws.B * ws.S, m.cfg.dim);
  block_forward(m, layer, ws, hooks, nullptr, pos0);
}

// The final norm, pooling and the head on the residual stream in ws.x.
static void head_forward(const Model& m, const Input& in, Workspace& ws, Hooks& hooks) {
  const Config& c = m.cfg;
  const int B = ws.B, S = ws.S, D = c.dim, N = B * S;
  const float* xf = ws.x.ptr();
  if (!m.final_norm.g.empty()) {
    norm_forward(c, m.final_norm, need(ws.xf, {N, D}), need(ws.xf_mean, {N}), need(ws.xf_rstd, {N}), ws.x.ptr(), N);
    xf = ws.xf.ptr();
  }
  int rows;
  float* hin;
  if (c.pool == PoolKind::none) {
    rows = in.last_only ? B : N;
    hin = need(ws.head_in, {rows, D});
    for (int r = 0; r < rows; r++) {
      int64_t src = in.last_only ? (int64_t)r * S + S - 1 : r;
      std::memcpy(hin + (int64_t)r * D, xf + src * D, sizeof(float) * D);
    }
  } else {
    rows = B;
    float* pooled = need(ws.pooled, {B, D});
    pool_forward(pooled, xf, B, S, D, c.pool);
    hin = need(ws.head_in, {B, D});
    if (c.pooler) {
      float* pre = need(ws.pool_pre, {B, D});
      lin_forward(m.pooler_fc, pre, pooled, B);
      tanh_forward(hin, pre, (int64_t)B * D);
    } else {
      std::memcpy(hin, pooled, sizeof(float) * B * D);
    }
  }
  hooks.forward(Site::head_in, -1, hin, rows, D);
  float* logits = need(ws.logits, {rows, c.n_out});
  linear_any(m.head, m.head_w(), logits, hin, rows);
}

void forward_head(const Model& m, const Input& in, Workspace& ws, Hooks& hooks) {
  forward_setup(m, in, ws, nullptr);
  TQ_CHECK_INPUT(ws.x.numel() == (int64_t)ws.B * ws.S * m.cfg.dim, "forward_head: ws.x does not hold [{}, {}]",
                 ws.B * ws.S, m.cfg.dim);
  head_forward(m, in, ws, hooks);
}

void forward(const Model& m, const Input& in, Workspace& ws, Hooks& hooks, KVCache* cache) {
  const Config& c = m.cfg;
  TQ_CHECK_INPUT(c.embed == EmbedKind::patches || in.tokens, "this model takes tokens, not images");
  int pos0 = forward_setup(m, in, ws, cache);
  embed_forward(m, in, ws, pos0);
  for (int l = 0; l < c.n_layers; l++) block_forward(m, l, ws, hooks, cache, pos0);
  head_forward(m, in, ws, hooks);
}

static void block_backward(const Model& m, Model& gm, int l, Workspace& ws, Hooks& hooks, float* dx, int pos0) {
  const Config& c = m.cfg;
  const Block& bl = m.blocks[l];
  Block& gb = gm.blocks[l];
  LayerActs& A = ws.layers[l];
  const int B = ws.B, S = ws.S, D = c.dim, H = c.n_heads, hd = c.head_dim, F = c.hidden;
  const int N = B * S, qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t ND = (int64_t)N * D;
  std::vector<float> scratch;

  // dx holds d(block output). MLP first.
  std::vector<float> dy(dx, dx + ND);
  if (c.post_norm) norm_backward(c, bl.mlp_norm, gb.mlp_norm, dy.data(), dx, A.y.ptr(), A.y_mean.ptr(), A.y_rstd.ptr(), N);
  // dy = d(y) = d(resid) + d(mlp out)
  std::vector<float> df((size_t)N * F), dm(ND);
  lin_backward(bl.down, gb.down, df.data(), dy.data(), A.f.ptr(), N, false, scratch);
  hooks.backward(Site::down_in, l, df.data(), N, F);
  std::vector<float> du((size_t)N * F);
  if (c.gated) {
    std::vector<float> dg((size_t)N * F);
    gated_backward(dg.data(), du.data(), df.data(), A.g.ptr(), A.u.ptr(), (int64_t)N * F, c.act);
    lin_backward(bl.gate, gb.gate, dm.data(), dg.data(), A.m.ptr(), N, false, scratch);
    lin_backward(bl.up, gb.up, dm.data(), du.data(), A.m.ptr(), N, true, scratch);
  } else {
    act_backward(du.data(), df.data(), A.u.ptr(), (int64_t)N * F, c.act);
    lin_backward(bl.up, gb.up, dm.data(), du.data(), A.m.ptr(), N, false, scratch);
  }
  hooks.backward(Site::up_in, l, dm.data(), N, D);
  std::vector<float> dh(ND);  // d(h): residual after attention
  if (c.post_norm) {
    std::vector<float> dhn(ND);
    for (int64_t i = 0; i < ND; i++) dhn[i] = dy[i] + dm[i];
    norm_backward(c, bl.attn_norm, gb.attn_norm, dh.data(), dhn.data(), A.h.ptr(), A.h_mean.ptr(), A.h_rstd.ptr(), N);
  } else {
    norm_backward(c, bl.mlp_norm, gb.mlp_norm, dh.data(), dm.data(), A.h.ptr(), A.m_mean.ptr(), A.m_rstd.ptr(), N);
    for (int64_t i = 0; i < ND; i++) dh[i] += dy[i];
  }

  // Attention.
  std::vector<float> datt((size_t)N * qd);
  lin_backward(bl.o, gb.o, datt.data(), dh.data(), A.att.ptr(), N, false, scratch);
  hooks.backward(Site::o_in, l, datt.data(), N, qd);
  AttnShape shp{S, S, H, c.n_kv_heads, hd, 0, c.causal, c.sliding_window};
  const int64_t psz = (int64_t)H * S * S;
  std::vector<float> dP((size_t)B * psz), dq((size_t)N * qd), dk((size_t)N * kvd, 0.0f), dv((size_t)N * kvd, 0.0f);
  for (int b = 0; b < B; b++)
    attention_apply_backward(dP.data() + b * psz, dv.data() + (int64_t)b * S * kvd, datt.data() + (int64_t)b * S * qd,
                             A.p.ptr() + b * psz, A.v.ptr() + (int64_t)b * S * kvd, shp, qd, kvd);
  hooks.backward(Site::probs, l, dP.data(), B * H * S, S);
  for (int b = 0; b < B; b++)
    attention_scores_backward(dq.data() + (int64_t)b * S * qd, dk.data() + (int64_t)b * S * kvd, dP.data() + b * psz,
                              A.p_raw.ptr() + b * psz, A.q.ptr() + (int64_t)b * S * qd,
                              A.k.ptr() + (int64_t)b * S * kvd, shp, qd, kvd);
  hooks.backward(Site::q, l, dq.data(), N, qd);
  hooks.backward(Site::k, l, dk.data(), N, kvd);
  hooks.backward(Site::v, l, dv.data(), N, kvd);
  if (c.pos == PosKind::rope) {
    rope_backward(dq.data(), N, S, pos0, H, hd, c.rope_theta, c.rope_layout);
    rope_backward(dk.data(), N, S, pos0, c.n_kv_heads, hd, c.rope_theta, c.rope_layout);
  }
  std::vector<float> da(ND);
  lin_backward(bl.q, gb.q, da.data(), dq.data(), A.a.ptr(), N, false, scratch);
  lin_backward(bl.k, gb.k, da.data(), dk.data(), A.a.ptr(), N, true, scratch);
  lin_backward(bl.v, gb.v, da.data(), dv.data(), A.a.ptr(), N, true, scratch);
  hooks.backward(Site::qkv_in, l, da.data(), N, D);
  if (c.post_norm) {
    for (int64_t i = 0; i < ND; i++) dx[i] = dh[i] + da[i];
  } else {
    norm_backward(c, bl.attn_norm, gb.attn_norm, dx, da.data(), A.x.ptr(), A.a_mean.ptr(), A.a_rstd.ptr(), N);
    for (int64_t i = 0; i < ND; i++) dx[i] += dh[i];
  }
}

void backward_block(const Model& m, Model& grads, int layer, const Input& in, Workspace& ws, float* dx, Hooks& hooks) {
  TQ_ASSERT(ws.train && (int)ws.layers.size() == m.cfg.n_layers && layer >= 0 && layer < m.cfg.n_layers &&
                ws.layers[layer].x.numel() == (int64_t)ws.B * ws.S * m.cfg.dim,
            "backward_block needs a training forward_block of layer {} first", layer);
  TQ_ASSERT(!m.blocks[layer].attn_exec, "backward runs on float models, not on the integer runtime");
  block_backward(m, grads, layer, ws, hooks, dx, in.pos0);
}

void backward(const Model& m, Model& gm, const Input& in, Workspace& ws, const float* dlogits, Hooks& hooks) {
  const Config& c = m.cfg;
  TQ_ASSERT(ws.train && (int)ws.layers.size() == c.n_layers, "backward needs a training forward first");
  for (auto& bl : m.blocks) {
    TQ_ASSERT(!bl.attn_exec, "backward runs on float models, not on the integer runtime");
    for (auto& d : linear_table())
      TQ_ASSERT(!(bl.*d.member).exec, "backward runs on float models, not on the integer runtime");
  }
  const int B = ws.B, S = ws.S, D = c.dim, N = B * S;
  const int rows = (int)ws.head_in.dim(0);
  std::vector<float> scratch;
  // Head.
  std::vector<float> dhin((size_t)rows * D);
  Tensor& dhead_w = c.tied_head ? gm.tok_embd : gm.head.w;
  linear_backward(dhin.data(), dhead_w.ptr(), gm.head.b.empty() ? nullptr : gm.head.b.ptr(), dlogits,
                  ws.head_in.ptr(), m.head_w().ptr(), rows, D, c.n_out);
  hooks.backward(Site::head_in, -1, dhin.data(), rows, D);
  std::vector<float> dxf((size_t)N * D, 0.0f);
  if (c.pool == PoolKind::none) {
    for (int r = 0; r < rows; r++) {
      int64_t dst = in.last_only ? (int64_t)r * S + S - 1 : r;
      for (int d = 0; d < D; d++) dxf[dst * D + d] += dhin[(int64_t)r * D + d];
    }
  } else {
    std::vector<float> dpooled(dhin);
    if (c.pooler) {  // tanh's output recomputed: head_in may have been changed by a hook
      std::vector<float> t((size_t)B * D), dpre((size_t)B * D);
      tanh_forward(t.data(), ws.pool_pre.ptr(), (int64_t)B * D);
      tanh_backward(dpre.data(), dhin.data(), t.data(), (int64_t)B * D);
      lin_backward(m.pooler_fc, gm.pooler_fc, dpooled.data(), dpre.data(), ws.pooled.ptr(), B, false, scratch);
    }
    pool_backward(dxf.data(), dpooled.data(), B, S, D, c.pool);
  }
  std::vector<float> dx((size_t)N * D);
  if (!m.final_norm.g.empty()) {
    norm_backward(c, m.final_norm, gm.final_norm, dx.data(), dxf.data(), ws.x.ptr(), ws.xf_mean.ptr(),
                  ws.xf_rstd.ptr(), N);
  } else {
    dx = dxf;
  }
  for (int l = c.n_layers - 1; l >= 0; l--) block_backward(m, gm, l, ws, hooks, dx.data(), in.pos0);

  // Embeddings.
  if (!m.embd_norm.g.empty()) {
    std::vector<float> dsum((size_t)N * D);
    norm_backward(c, m.embd_norm, gm.embd_norm, dsum.data(), dx.data(), ws.emb_sum.ptr(), ws.emb_mean.ptr(),
                  ws.emb_rstd.ptr(), N);
    dx = dsum;
  }
  if (c.pos == PosKind::learned)
    embedding_backward(gm.pos_embd.ptr(), dx.data(), position_ids(c, B, S, in.pos0).data(), N, D);
  if (!m.type_embd.empty()) embedding_backward(gm.type_embd.ptr(), dx.data(), type_ids(in, N).data(), N, D);
  if (c.embed == EmbedKind::tokens) {
    embedding_backward(gm.tok_embd.ptr(), dx.data(), in.tokens, N, D);
  } else {
    patch_embed_backward(gm.patch_embd.w.ptr(), gm.patch_embd.b.empty() ? nullptr : gm.patch_embd.b.ptr(),
                         c.cls_token ? gm.cls.ptr() : nullptr, dx.data(), in.patches, B, ws.T, c.patch_dim, D);
  }
}

}  // namespace tq
