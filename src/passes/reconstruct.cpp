#include "passes/reconstruct.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "nn/optim.h"

namespace tq {

constexpr double kZeta = AdaRound::zeta, kGamma = AdaRound::gamma;
static double rectified(double v) { return std::clamp(sigmoid(v) * (kZeta - kGamma) + kGamma, 0.0, 1.0); }

AdaRound::AdaRound(const Tensor& w, const QuantSpec& s) : spec(s), rows((int)w.rows()), cols((int)w.cols()) {
  TQ_ASSERT(s.scheme == Scheme::asym && s.gran == Gran::row && !s.dynamic && (int)s.scale.size() == rows,
            "AdaRound needs a static per-row asymmetric quantizer with {} rows", rows);
  base.resize(w.numel());
  v.resize(w.numel());
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      const int64_t i = (int64_t)r * cols + c;
      const double t = (double)w.data[i] / s.scale[r], f = std::floor(t);
      base[i] = (float)f;
      // h(V) = t − f: σ(V) = (t − f − γ)/(ζ − γ), strictly inside (0, 1).
      const double sg = (t - f - kGamma) / (kZeta - kGamma);
      v[i] = std::log(sg / (1 - sg));
    }
}

void AdaRound::soft(Tensor& out) const {
  const double qa = (1 << spec.bits) - 1;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      const int64_t i = (int64_t)r * cols + c;
      const double z = spec.zero[r];
      out.data[i] = (float)(spec.scale[r] * (std::clamp(base[i] + rectified(v[i]) + z, 0.0, qa) - z));
    }
}

void AdaRound::hard(Tensor& out) const {
  const double qa = (1 << spec.bits) - 1;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      const int64_t i = (int64_t)r * cols + c;
      const double z = spec.zero[r];
      out.data[i] = (float)(spec.scale[r] * (std::clamp(base[i] + (v[i] >= 0 ? 1.0 : 0.0) + z, 0.0, qa) - z));
    }
}

double AdaRound::backward(const float* dw, double lambda, double beta, std::vector<double>& gv) const {
  const double qa = (1 << spec.bits) - 1;
  gv.assign(v.size(), 0.0);
  double reg = 0;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      const int64_t i = (int64_t)r * cols + c;
      const double sg = sigmoid(v[i]), pre = sg * (kZeta - kGamma) + kGamma, h = std::clamp(pre, 0.0, 1.0);
      const double code = base[i] + h + spec.zero[r];
      // ∂h/∂V where the rectifier and the code clamp are not active.
      const double dh = pre > 0 && pre < 1 ? sg * (1 - sg) * (kZeta - kGamma) : 0.0;
      if (code >= 0 && code <= qa) gv[i] = dw[i] * spec.scale[r] * dh;
      if (lambda > 0) {
        const double a = 2 * h - 1, m = std::fabs(a);
        reg += lambda * (1 - std::pow(m, beta));
        if (m > 0) gv[i] += -lambda * beta * std::pow(m, beta - 1) * (a > 0 ? 2.0 : -2.0) * dh;
      }
    }
  return reg;
}

double BlockFit::loss(size_t b, bool grad) {
  const Input in = calib.batches[b].input();
  ws.train = true;
  ws.x = x_q[b];
  forward_block(work, l, in, ws, hooks);
  const int64_t n = ws.x.numel();
  std::vector<float> dy(n);
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    const double e = (double)ws.x.data[i] - y_fp[b].data[i];
    sum += e * e / n;
    dy[i] = (float)(2 * e / n);
  }
  if (grad) backward_block(work, *grads, l, in, ws, dy.data(), hooks);
  return sum;
}

double BlockFit::mean_loss() {
  double s = 0;
  for (size_t b = 0; b < calib.batches.size(); b++) s += loss(b, false);
  return s / calib.batches.size();
}

nlohmann::json reconstruct_block(Model& m, const QuantPlan& plan, int l, const std::vector<Tensor>& x_q,
                                 const std::vector<Tensor>& y_fp, const CalibData& calib, int steps, double lr,
                                 double lambda) {
  Model work = simulate_weights(m, plan);
  auto lins = block_linears(work.blocks[l]), orig = block_linears(m.blocks[l]);
  std::vector<AdaRound> ar;
  for (size_t i = 0; i < lins.size(); i++)
    ar.emplace_back(orig[i].lin->w, plan.weights.at(weight_name(l, orig[i].slot)));
  Model grads = zeros_like(work);
  auto glins = block_linears(grads.blocks[l]);
  SimHook sim(plan, m.cfg.n_layers);
  BlockFit fit{work, l, sim, x_q, y_fp, calib, &grads, {}};
  const double rtn_loss = fit.mean_loss();
  std::vector<AdamVector<double>> adam(lins.size());
  const Adam<double> hyper{0.9, 0.999, 1e-8, 0};
  std::vector<double> gv;
  const int warm = steps / 5;
  double soft_first = 0, soft_last = 0;
  for (int step = 0; step < steps; step++) {
    for (size_t i = 0; i < lins.size(); i++) {
      ar[i].soft(lins[i].lin->w);
      std::fill(glins[i].lin->w.data.begin(), glins[i].lin->w.data.end(), 0.0f);
    }
    const double loss = fit.loss((size_t)step % calib.batches.size(), true);
    if (step == 0) soft_first = loss;
    soft_last = loss;
    const double lam = step < warm ? 0.0 : lambda;
    const double beta = 20.0 + (2.0 - 20.0) * (step - warm) / std::max(1, steps - warm);
    for (size_t i = 0; i < lins.size(); i++) {
      ar[i].backward(glins[i].lin->w.ptr(), lam, beta, gv);
      adam[i].update(ar[i].v, gv, hyper, lr);
    }
  }
  for (size_t i = 0; i < lins.size(); i++) ar[i].hard(lins[i].lin->w);
  const double ada_loss = fit.mean_loss();
  const bool keep = ada_loss <= rtn_loss;
  if (keep)
    for (size_t i = 0; i < lins.size(); i++) orig[i].lin->w = lins[i].lin->w;
  fmt::print(stderr, "reconstruct: block {}: weight loss {:.4g} (round-to-nearest) -> {:.4g}{}\n", l,
             rtn_loss, ada_loss, keep ? "" : " (kept round-to-nearest)");
  return {{"layer", l},           {"loss_rtn", rtn_loss},         {"loss_adaround", ada_loss},
          {"soft_loss_first", soft_first}, {"soft_loss_last", soft_last}, {"kept", keep ? "adaround" : "rtn"}};
}

}  // namespace tq
