// RepQuant / RepQ-ViT pass (docs/methods.md §1, §5.9). In order:
//   1. observe every site of the current model (per-channel histograms at qkv_in, up_in);
//   2. the sites without a fold: per-tensor asymmetric by percentile-MSE (image models, as
//      RepQ-ViT) or per-token dynamic asymmetric (LMs, §1.2 [ours]); probs: log√2, Δ by
//      percentile-MSE, deployed as the log2 pair of §1.5 (kernel K5);
//   3. block by block (§1.7): per-channel asymmetric (Δ_c, z_c) at qkv_in and up_in,
//      from percentile-MSE ranges (RepQ-ViT, clip_steps 0) or learned dual clipping
//      (RepQuant, §1.3) on the block's reconstruction loss; folded into the norm
//      (pre-norm) or the quantize op (post-norm) and the consumers, the site then
//      quantized per tensor with (Δ̃, z̃) (§1.4); the block's weights per-row
//      asymmetric by percentile-MSE, fitted on the folded weights, then (recon_steps)
//      AdaRound's block reconstruction (passes/reconstruct.h).
// The folds keep the float function, so the statistics of step 1 stay valid throughout
// and one calibration pass serves them all.
#include "passes/repquant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "passes/fold.h"
#include "passes/pass.h"
#include "passes/reconstruct.h"
#include "nn/forward.h"
#include "nn/optim.h"
#include "quant/calibrator.h"
#include "quant/weights.h"

namespace tq {

Reparam reparameterize(std::vector<float> step, std::vector<float> zero, const std::vector<bool>& dead,
                       bool round_zero) {
  const size_t C = step.size();
  TQ_ASSERT(C > 0 && zero.size() == C && dead.size() == C, "reparameterize: {} steps, {} zeros, {} flags", C,
            zero.size(), dead.size());
  double sum_step = 0, sum_zero = 0;
  int live = 0;
  for (size_t c = 0; c < C; c++)
    if (!dead[c]) {
      TQ_CHECK_INPUT(std::isfinite(step[c]) && step[c] > 0 && std::isfinite(zero[c]),
                     "reparameterize: channel {} has step {} and zero {}", c, step[c], zero[c]);
      sum_step += step[c], sum_zero += zero[c], live++;
    }
  Reparam r;
  if (live > 0) {
    r.step_t = (float)(sum_step / live);
    r.zero_t = round_zero ? (float)std::rint(sum_zero / live) : (float)(sum_zero / live);
  }
  r.a.resize(C);
  r.d.resize(C);
  for (size_t c = 0; c < C; c++) {
    if (dead[c]) step[c] = r.step_t, zero[c] = r.zero_t;
    r.a[c] = (double)step[c] / r.step_t;
    r.d[c] = r.a[c] * ((double)r.zero_t - zero[c]) * r.step_t;  // r ⊙ β_rep
  }
  r.step = std::move(step);
  r.zero = std::move(zero);
  return r;
}

DualClip::DualClip(int b, std::vector<double> lo, std::vector<double> hi, double theta0)
    : bits(b), m_lo(std::move(lo)), m_hi(std::move(hi)) {
  TQ_ASSERT(m_lo.size() == m_hi.size() && !m_lo.empty(), "dual clipping: {} lower and {} upper extremes",
            m_lo.size(), m_hi.size());
  th_lo.assign(m_lo.size(), theta0);
  th_hi.assign(m_lo.size(), theta0);
  g_lo.assign(m_lo.size(), 0.0);
  g_hi.assign(m_lo.size(), 0.0);
}
double DualClip::lower(int c) const { return sigmoid(th_lo[c]) * m_lo[c]; }
double DualClip::upper(int c) const { return sigmoid(th_hi[c]) * m_hi[c]; }
void DualClip::start_at(int c, double l, double u) {
  auto logit_of = [](double ratio, double fallback) {
    if (!std::isfinite(ratio)) return fallback;
    const double p = std::clamp(ratio, 1e-3, 1 - 1e-6);
    return std::log(p / (1 - p));
  };
  if (m_lo[c] != 0) th_lo[c] = logit_of(l / m_lo[c], th_lo[c]);
  if (m_hi[c] != 0) th_hi[c] = logit_of(u / m_hi[c], th_hi[c]);
}

namespace {

// One element: x̂ and the partial derivatives ∂x̂/∂x, ∂x̂/∂Δ, ∂x̂/∂l (l held apart from Δ).
struct ClipElem {
  double xq, dx, dstep, dl;
};
inline ClipElem clip_elem(double x, double l, double step, int qa, bool round) {
  auto rnd = [round](double t) { return round ? std::nearbyint(t) : t; };
  const double z = rnd(-l / step), t = x / step, r = rnd(t), code = r + z;
  if (code < 0) return {-step * z, 0, -z - l / step, 1};
  if (code > qa) return {step * (qa - z), 0, qa - z - l / step, 1};
  return {step * r, 1, r - t, 0};
}

// Δ of a range, with a relative floor; `live`: whether Δ moves with the bounds.
inline double clip_step(double l, double u, int qa, bool& live) {
  const double eps = 1e-8 * std::max({std::fabs(l), std::fabs(u), 1e-30});
  live = u - l > eps;
  return std::max(u - l, eps) / qa;
}

}  // namespace

template <class T>
void DualClip::forward(T* x, int64_t rows) const {
  const int C = channels(), qa = (1 << bits) - 1;
  for (int c = 0; c < C; c++) {
    bool live;
    const double l = lower(c), step = clip_step(l, upper(c), qa, live);
    for (int64_t r = 0; r < rows; r++) x[r * C + c] = (T)clip_elem(x[r * C + c], l, step, qa, round).xq;
  }
}

template <class T>
void DualClip::backward(const T* x, T* dx, int64_t rows) {
  const int C = channels(), qa = (1 << bits) - 1;
  for (int c = 0; c < C; c++) {
    bool live;
    const double sl = sigmoid(th_lo[c]), su = sigmoid(th_hi[c]);
    const double l = sl * m_lo[c], step = clip_step(l, su * m_hi[c], qa, live);
    double gl = 0, gu = 0;
    for (int64_t r = 0; r < rows; r++) {
      const ClipElem e = clip_elem(x[r * C + c], l, step, qa, round);
      const double g = dx[r * C + c];
      const double gs = live ? g * e.dstep / qa : 0;  // Δ = (u − l)/Qa
      gu += gs;
      gl += g * e.dl - gs;
      dx[r * C + c] = (T)(g * e.dx);
    }
    g_lo[c] += gl * sl * (1 - sl) * m_lo[c];
    g_hi[c] += gu * su * (1 - su) * m_hi[c];
  }
}

template void DualClip::forward<float>(float*, int64_t) const;
template void DualClip::forward<double>(double*, int64_t) const;
template void DualClip::backward<float>(const float*, float*, int64_t);
template void DualClip::backward<double>(const double*, double*, int64_t);

void DualClip::params(std::vector<float>& step, std::vector<float>& zero) const {
  const int C = channels();
  step.resize(C);
  zero.resize(C);
  for (int c = 0; c < C; c++) {
    const float l = (float)lower(c), u = (float)upper(c);
    asym_params(l, u, bits, std::max(std::fabs(l), std::fabs(u)), step[c], zero[c]);
  }
}

namespace {

constexpr Site kOther[] = {Site::o_in, Site::down_in, Site::q, Site::k, Site::v};  // no fold: per tensor or token

QuantSpec asym_spec(int bits) {
  QuantSpec s;
  s.bits = bits;
  s.scheme = Scheme::asym;
  return s;
}

// A per-tensor asymmetric percentile-MSE quantizer of the site, or per-token dynamic.
QuantSpec other_site_spec(const SiteStats& st, int bits, bool per_token) {
  QuantSpec s = asym_spec(bits);
  if (per_token) {
    s.gran = Gran::row;
    s.dynamic = true;
    s.calibrator = "dynamic";
  } else {
    calibrate_tensor(st.hist, s, {Calib::pmse});
  }
  return s;
}

// The plan with every quantizer off and the transforms kept: the float function.
QuantPlan float_plan(QuantPlan p) {
  for (auto& [k, s] : p.sites) s.bits = 0;
  p.weights.clear();
  return p;
}

// The clipping stage's learnable quantizers at qkv_in and up_in of one layer.
struct ClipHook : Hooks {
  int layer = 0;
  DualClip* clip[2] = {nullptr, nullptr};
  std::vector<float> saved[2];  // the values each quantizer was given, for its backward
  static int slot(Site s) {  // which of the norm-fed sites, or -1
    auto& sites = norm_fed_sites();
    auto it = std::find(sites.begin(), sites.end(), s);
    return it == sites.end() ? -1 : (int)(it - sites.begin());
  }
  void forward(Site s, int l, float* x, int rows, int cols) override {
    const int i = slot(s);
    if (l != layer || i < 0) return;
    saved[i].assign(x, x + (int64_t)rows * cols);
    clip[i]->forward(x, rows);
  }
  void backward(Site s, int l, float* dx, int rows, int cols) override {
    const int i = slot(s);
    if (l == layer && i >= 0) clip[i]->backward(saved[i].data(), dx, rows);
  }
};

// Per-row min-max fake quantization of a linear's weights (asymmetric, as the deployed ones).
void fake_quant_rows(Tensor& w, int bits) {
  QuantSpec s = asym_spec(bits);
  s.gran = Gran::row;
  fit_minmax(w.ptr(), (int)w.rows(), (int)w.cols(), s);
  fake_quant(w.ptr(), (int)w.rows(), (int)w.cols(), s);
}

// Clipping stage of one block (§1.7 step 3): θ of both norm-fed sites by Adam on
// mean‖block_q(X_q) − Y_fp‖². block_q has the learnable per-channel quantizers, the
// plan's quantizers at the other sites (gradients straight through) and weights
// fake-quantized per row from the folded weights W·diag(r(θ)), mapped back by
// diag(1/r) so the block runs in the unfolded space. The weight rounding is held
// constant in θ (no gradient through it) [ours]. Returns the mean loss over the
// calibration batches before and after; if learning made it worse, θ goes back to its start.
std::pair<double, double> learn_clipping(const Model& m, const QuantPlan& plan, int l, int w_bits,
                                         const std::vector<Tensor>& x_q, const std::vector<Tensor>& y_fp,
                                         const CalibData& calib, int steps, double lr, DualClip* clips[2]) {
  Model work = m;
  Block& wb = work.blocks[l];
  for (auto& nl : block_linears(wb))  // the linears that no clipping site feeds (o, down) are fixed
    if (ClipHook::slot(linear_def(nl.slot).input) < 0) fake_quant_rows(nl.lin->w, w_bits);
  Model grads = zeros_like(work);  // the block's weight gradients land here unread
  SimHook sim(plan, m.cfg.n_layers);
  ClipHook clip;
  clip.layer = l;
  clip.clip[0] = clips[0], clip.clip[1] = clips[1];
  HookChain chain(sim, clip);
  AdamVector<double> adam[4];
  const Adam<double> hyper{0.9, 0.999, 1e-8, 0};
  BlockFit fit{work, l, chain, x_q, y_fp, calib, &grads, {}};
  auto set_weights = [&] {
    for (int k = 0; k < 2; k++) {
      std::vector<float> st, zp;
      clips[k]->params(st, zp);
      double mean = 0;
      for (float v : st) mean += (double)v / st.size();
      auto orig = site_consumers(const_cast<Block&>(m.blocks[l]), norm_fed_sites()[k]);
      auto dst = site_consumers(wb, norm_fed_sites()[k]);
      for (size_t i = 0; i < dst.size(); i++) {
        Tensor& w = dst[i].lin->w;
        const Tensor& w0 = orig[i].lin->w;
        const int C = (int)w.cols();
        for (int64_t j = 0; j < w.numel(); j++) w.data[j] = (float)(w0.data[j] * (st[j % C] / mean));
        fake_quant_rows(w, w_bits);
        for (int64_t j = 0; j < w.numel(); j++) w.data[j] = (float)(w.data[j] / (st[j % C] / mean));
      }
    }
  };
  auto mean_loss = [&] {
    set_weights();
    return fit.mean_loss();
  };
  const double first = mean_loss();
  const DualClip start[2] = {*clips[0], *clips[1]};
  for (int step = 0; step < steps; step++) {
    set_weights();
    for (int k = 0; k < 2; k++) {
      std::fill(clips[k]->g_lo.begin(), clips[k]->g_lo.end(), 0.0);
      std::fill(clips[k]->g_hi.begin(), clips[k]->g_hi.end(), 0.0);
    }
    fit.loss((size_t)step % calib.batches.size(), true);
    for (int k = 0; k < 2; k++) {
      adam[2 * k].update(clips[k]->th_lo, clips[k]->g_lo, hyper, lr);
      adam[2 * k + 1].update(clips[k]->th_hi, clips[k]->g_hi, hyper, lr);
    }
  }
  const double last = mean_loss();
  if (last > first)  // the learned bounds lost on the calibration data: keep the start [ours]
    for (int k = 0; k < 2; k++) *clips[k] = start[k];
  return {first, last};
}

void run_repquant(PassContext& ctx, const nlohmann::json& p) {
  Model& m = ctx.model;
  const int wb = p["w_bits"], ab = p["a_bits"], clip_steps = p["clip_steps"], recon_steps = p["recon_steps"];
  const double clip_lr = p["clip_lr"], recon_lr = p["recon_lr"], recon_lambda = p["recon_lambda"];
  const bool streams = clip_steps > 0 || recon_steps > 0;  // block inputs and fp outputs are needed
  const bool pmse_start = p["clip_init"] == "pmse";
  const bool head = p["head"] && !m.cfg.tied_head;
  const std::string others = p["other_sites"];
  const bool per_token = others == "token" || (others == "auto" && m.cfg.is_lm());
  TQ_CHECK_INPUT(!ctx.calib.empty(), "repquant needs calibration data (--calib)");
  TQ_ASSERT(norm_fed_sites().size() == 2, "the clipping stage is written for a block's two norm-fed sites, not {}",
            norm_fed_sites().size());

  Observer obs;
  obs.col_hist_sites = {norm_fed_sites().begin(), norm_fed_sites().end()};
  observe(m, ctx.plan, ctx.calib, obs);

  // The sites without a fold, from the float statistics (the folds keep the float function).
  for (int l = 0; l < m.cfg.n_layers; l++) {
    for (Site s : kOther) ctx.plan.sites[site_key(s, l)] = other_site_spec(site_stats(obs.stats, s, l), ab, per_token);
    QuantSpec pr;
    pr.bits = ab;
    pr.scheme = Scheme::logsqrt2;
    calibrate_tensor(site_stats(obs.stats, Site::probs, l).hist, pr, {Calib::pmse});
    ctx.plan.sites[site_key(Site::probs, l)] = pr;
  }
  if (head) ctx.plan.sites["head_in"] = other_site_spec(site_stats(obs.stats, Site::head_in, -1), ab, per_token);

  // Block inputs for the clipping stage: the float stream and the quantized prefix's.
  const size_t nb = ctx.calib.batches.size();
  std::vector<Tensor> x_fp, x_q;
  Workspace ws;
  if (streams)
    for (const Batch& b : ctx.calib.batches) {
      forward_embed(m, b.input(), ws);
      x_fp.push_back(ws.x);
    }
  x_q = x_fp;

  nlohmann::json folds = nlohmann::json::array(), learning = nlohmann::json::array(), recon = nlohmann::json::array();
  QuantSpec wspec = asym_spec(wb);
  wspec.gran = Gran::row;
  for (int l = 0; l < m.cfg.n_layers; l++) {
    std::vector<Tensor> y_fp(x_fp.size());
    if (streams) {
      const QuantPlan fplan = float_plan(ctx.plan);  // SimHook keeps pointers into it
      SimHook fp(fplan, m.cfg.n_layers);
      for (size_t b = 0; b < nb; b++) {
        ws.x = x_fp[b];
        forward_block(m, l, ctx.calib.batches[b].input(), ws, fp);
        y_fp[b] = ws.x;
      }
    }
    // Per-channel percentile-MSE quantizers: RepQ-ViT's, and the clipping's start with clip_init pmse.
    std::vector<DualClip> clips;
    std::vector<float> pm_step[2], pm_zero[2];
    for (int k = 0; k < 2; k++) {
      const SiteStats& st = site_stats(obs.stats, norm_fed_sites()[k], l);
      clips.emplace_back(ab, std::vector<double>(st.col_min.begin(), st.col_min.end()),
                         std::vector<double>(st.col_max.begin(), st.col_max.end()));
      for (int c = 0; c < st.cols; c++) {
        QuantSpec s = asym_spec(ab);
        calibrate_tensor(st.col_hist[c], s, {Calib::pmse});
        pm_step[k].push_back(s.scale[0]);
        pm_zero[k].push_back(s.zero[0]);
        const double qa = (1 << ab) - 1;
        if (pmse_start) clips[k].start_at(c, -s.zero[0] * s.scale[0], (qa - s.zero[0]) * s.scale[0]);
      }
    }
    if (clip_steps > 0) {
      DualClip* cp[2] = {&clips[0], &clips[1]};
      auto [first, last] = learn_clipping(m, ctx.plan, l, wb, x_q, y_fp, ctx.calib, clip_steps, clip_lr, cp);
      learning.push_back({{"layer", l}, {"loss_first", first}, {"loss_last", last}, {"kept", last <= first ? "learned" : "start"}});
      fmt::print(stderr, "repquant: block {}: clipping loss {:.4g} -> {:.4g}{}\n", l, first, last,
                 last <= first ? "" : " (kept the start)");
    }

    for (int k = 0; k < 2; k++) {
      const Site site = norm_fed_sites()[k];
      const SiteStats& st = site_stats(obs.stats, site, l);
      std::vector<float> step(st.cols), zero(st.cols);
      std::vector<bool> dead(st.cols);
      SqnrProbe probe{wb, {}};
      if (clip_steps > 0) {
        clips[k].params(step, zero);
      } else {  // RepQ-ViT: θ frozen at the percentile-MSE bounds
        step = pm_step[k], zero = pm_zero[k];
      }
      for (int c = 0; c < st.cols; c++) {
        dead[c] = !(st.col_max[c] > st.col_min[c]);
        probe.x_scale.push_back(st.col_mean_abs(c));
      }
      Reparam rp = reparameterize(step, zero, dead);
      FoldRecord rec = fold_channel_affine(m, ctx.plan, site, l, rp.a, rp.d, probe);
      QuantSpec& q = ctx.plan.sites[rec.site];  // keeps a post-norm transform the fold put there
      q.bits = ab;
      q.scheme = Scheme::asym;
      q.gran = Gran::tensor;
      q.dynamic = false;
      q.scale = {rp.step_t};
      q.zero = {rp.zero_t};
      q.calibrator = clip_steps > 0 ? "repquant: learned per-channel clipping, reparameterized to per-tensor"
                                    : "repq-vit: per-channel pmse, reparameterized to per-tensor";
      nlohmann::json j = to_json(rec);
      auto [rmin, rmax] = std::minmax_element(rp.a.begin(), rp.a.end());
      j["step"] = rp.step_t;
      j["zero"] = rp.zero_t;
      j["r_min"] = *rmin;
      j["r_max"] = *rmax;
      j["channel_step"] = rp.step;
      j["channel_zero"] = rp.zero;
      folds.push_back(j);
    }
    // Weights after the fold (§1.4: the weight quantizer is re-initialised on W').
    for (auto& nl : block_linears(m.blocks[l]))
      ctx.plan.weights[weight_name(l, nl.slot)] = fit_weight(nl.lin->w, wspec, {Calib::pmse});
    if (recon_steps > 0)
      recon.push_back(reconstruct_block(m, ctx.plan, l, x_q, y_fp, ctx.calib, recon_steps, recon_lr, recon_lambda));
    if (streams && l + 1 < m.cfg.n_layers) {  // the next block's inputs: through the quantized block
      Model q = simulate_weights(m, ctx.plan);
      SimHook sim(ctx.plan, m.cfg.n_layers);
      for (size_t b = 0; b < nb; b++) {
        ws.x = x_q[b];
        forward_block(q, l, ctx.calib.batches[b].input(), ws, sim);
        x_q[b] = ws.x;
      }
      x_fp = std::move(y_fp);
    }
  }
  ctx.model_changed();
  if (head) ctx.plan.weights["output.weight"] = fit_weight(m.head.w, wspec, {Calib::pmse});

  ctx.plan.notes["repquant"] = {
      {"w_bits", wb},
      {"a_bits", ab},
      {"norm_fed", clip_steps > 0 ? "per-channel asym, learned dual clipping (§1.3), reparameterized to per-tensor"
                                  : "per-channel asym pmse (RepQ-ViT), reparameterized to per-tensor"},
      {"reparameterization", "mean step, rounded mean zero point"},
      {"other_sites", per_token ? "per-token dynamic asym" : "per-tensor static asym pmse"},
      {"probs", "log2-sqrt2 (deployed as the log2 pair, docs/methods.md §1.5)"},
      {"weights", recon_steps > 0 ? "per-row asym pmse on the folded weights, AdaRound block reconstruction"
                                  : "per-row asym pmse on the folded weights"},
      {"head", head ? "quantized" : (m.cfg.tied_head ? "float (tied to the embedding)" : "float")},
      {"folds", folds}};
  if (clip_steps > 0)
    ctx.plan.notes["repquant"]["clipping"] = {
        {"steps", clip_steps},
        {"lr", clip_lr},
        {"start", pmse_start ? "the percentile-MSE bounds" : "theta = 4: sigmoid(4)·[min, max]"},
        {"blocks", learning}};
  if (recon_steps > 0)
    ctx.plan.notes["repquant"]["reconstruction"] = {{"steps", recon_steps}, {"lr", recon_lr}, {"lambda", recon_lambda},
                                                    {"zeta", AdaRound::zeta}, {"gamma", AdaRound::gamma}, {"beta", "20 -> 2 after 20 % warm-up"},
                                                    {"blocks", recon}};
}

}  // namespace

PassDef repquant_pass() {
  return {"repquant",
          "RepQuant / RepQ-ViT: per-channel quantizers at qkv_in and up_in folded to per-tensor, log√2 softmax, "
          "per-row asymmetric weights",
          {
              {"w_bits", 8, "weight bits (per-row asymmetric)", {}, 2, 8},
              {"a_bits", 8, "activation bits (probs: log√2 at the same bits)", {}, 2, 8},
              {"head", true, "quantize the output head and head_in (a tied head stays float)", {}},
              {"clip_steps", 500, "Adam steps of the learnable dual clipping per block (0: RepQ-ViT, θ frozen at the "
               "percentile-MSE bounds)", {}, 0, 1000000},
              {"clip_lr", 1e-2, "learning rate of the clipping logits θ", {}, 1e-6, 1.0},
              {"clip_init",
               "minmax",
               "start of the learned bounds: σ(4)·[min, max] (docs/methods.md §1.3) or the percentile-MSE ones "
               "(RepQ-ViT's)",
               {"minmax", "pmse"}},
              {"recon_steps", 2000, "AdaRound steps of the weight reconstruction per block (0: none)", {}, 0, 1000000},
              {"recon_lr", 1e-3, "learning rate of the rounding variables V", {}, 1e-6, 1.0},
              {"recon_lambda", 0.01, "weight λ of the rounding regulariser", {}, 0.0, 100.0},
              {"other_sites",
               "auto",
               "o_in, down_in, q, k, v: per-tensor static, per-token dynamic, or auto (per-token for LMs)",
               {"auto", "tensor", "token"}},
          },
          run_repquant};
}

}  // namespace tq
