// Block reconstruction (docs/methods.md §1.6–1.7, BRECQ's setting): a block with
// quantizers is fitted to the float block's outputs on calibration inputs, one
// block at a time. BlockFit is the loss and its gradient; AdaRound learns the
// rounding of a weight matrix; reconstruct_block runs AdaRound on every linear
// of a block. RepQuant's clipping stage fits its clipping bounds with the same
// BlockFit; GPTQ-style passes that solve one block at a time can reuse both.
#pragma once
#include <nlohmann/json.hpp>
#include <cmath>
#include <vector>

#include "nn/forward.h"
#include "passes/pass.h"
#include "quant/plan.h"

namespace tq {

inline double sigmoid(double t) { return 1.0 / (1.0 + std::exp(-t)); }

// AdaRound (docs/methods.md §1.6, BRECQ's settings) of one weight matrix under its per-row asymmetric
// quantizer (Δ_w, z_w):
//   W̃ = Δ_w·(clamp(floor(W/Δ_w) + h(V) + z_w, 0, Qa) − z_w),  h(V) = clamp(σ(V)·(ζ − γ) + γ, 0, 1)
// with ζ = 1.1, γ = −0.1 and V initialised so that h(V) = W/Δ_w − floor(W/Δ_w).
struct AdaRound {
  static constexpr double zeta = 1.1, gamma = -0.1;
  QuantSpec spec;
  int rows = 0, cols = 0;
  std::vector<float> base;  // floor(W/Δ_w)
  std::vector<double> v;    // V

  AdaRound(const Tensor& w, const QuantSpec& spec);
  void soft(Tensor& out) const;  // W̃ with h(V)
  void hard(Tensor& out) const;  // W̃ with [V ≥ 0] in place of h(V)
  // dw: ∂L/∂W̃. Sets gv = ∂(L + λ·Σ(1 − |2h(V) − 1|^β))/∂V; returns the regulariser λ·Σ(...).
  double backward(const float* dw, double lambda, double beta, std::vector<double>& gv) const;
};

// The reconstruction loss mean‖block_q(X_q) − Y_fp‖² of block l of `work` under `hooks`,
// per calibration batch (x_q: the block's inputs through the quantized blocks before it;
// y_fp: the float block's outputs); with grad, the backward runs through the hooks and
// adds the block's parameter gradients into grads.
struct BlockFit {
  const Model& work;
  int l;
  Hooks& hooks;
  const std::vector<Tensor>& x_q;
  const std::vector<Tensor>& y_fp;
  const CalibData& calib;
  Model* grads = nullptr;
  Workspace ws = {};

  double loss(size_t batch, bool grad);
  double mean_loss();  // over every calibration batch, no gradient
};

// AdaRound of every linear of block l of m under the plan's per-row weight quantizers, on
// the reconstruction loss with the plan's activation quantizers on; the rounding term is off
// for a 20 % warm-up, then β decays linearly from 20 to 2. The hard-rounded weights replace
// m's float weights, which the plan's quantizers then reproduce exactly; if they lose to
// round-to-nearest on the calibration data, m keeps its weights [ours]. Returns the record
// (losses before and after, which was kept).
nlohmann::json reconstruct_block(Model& m, const QuantPlan& plan, int l, const std::vector<Tensor>& x_q,
                                 const std::vector<Tensor>& y_fp, const CalibData& calib, int steps, double lr,
                                 double lambda);

}  // namespace tq
