// RepQuant (docs/methods.md §1) and its RepQ-ViT ablation (§5.9): per-channel asymmetric
// quantizers at the norm-fed sites (qkv_in, up_in), rewritten exactly into one
// per-tensor quantizer by the channel-affine fold (§1.4); log√2 on the softmax output;
// per-row asymmetric weights chosen after the fold.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "quant/quantizer.h"

namespace tq {

// The scale reparameterization of one site (§1.4). From per-channel (Δ_c, z_c):
//   Δ̃ = mean Δ_c,  z̃ = round(mean z_c),  r_c = Δ_c/Δ̃,  β_rep,c = (z̃ − z_c)·Δ̃
// and the fold a = r, d = r ⊙ β_rep, after which x'_c/Δ̃ + z̃ = x_c/Δ_c + z_c: the
// per-tensor codes of x' are the per-channel codes of x. Dead channels (dead[c]) take
// Δ_c = Δ̃, z_c = z̃ (r_c = 1, nothing moves). round_zero = false keeps the unrounded
// mean zero point (RepQ-ViT's code), which breaks the code identity: only for tests.
struct Reparam {
  std::vector<float> step, zero;  // per channel, after the dead-channel rule
  float step_t = 1, zero_t = 0;   // Δ̃, z̃
  std::vector<double> a, d;       // the fold
};
Reparam reparameterize(std::vector<float> step, std::vector<float> zero, const std::vector<bool>& dead,
                       bool round_zero = true);

// Learnable per-channel dual clipping (§1.3) of one site's C channels [ours: OmniQuant's form]:
//   l_c = σ(θ_lo,c)·m_lo,c,   u_c = σ(θ_hi,c)·m_hi,c,   θ initialised to 4 (or at the
//   percentile-MSE bounds, start_at)
//   Δ_c = max(u_c − l_c, ε)/Qa,   z_c = round(−l_c/Δ_c)
//   x̂_c = Δ_c·(clamp(round(x_c/Δ_c) + z_c, 0, Qa) − z_c)
// Backward: round passes the gradient straight through; Δ_c and l_c get their true
// gradients (LSQ-style): inside the range ∂x̂/∂Δ = round(x/Δ) − x/Δ; clamped below
// x̂ = −Δz, above x̂ = Δ(Qa − z), both with ∂x̂/∂l = 1 and ∂x̂/∂x = 0. round = false
// replaces every rounding by the identity (the finite-difference check, §6.3 item 13).
struct DualClip {
  int bits = 8;
  bool round = true;
  std::vector<double> m_lo, m_hi, th_lo, th_hi;
  std::vector<double> g_lo, g_hi;  // ∂L/∂θ, accumulated by backward

  DualClip(int bits, std::vector<double> m_lo, std::vector<double> m_hi, double theta0 = 4.0);
  int channels() const { return (int)m_lo.size(); }
  double lower(int c) const;
  double upper(int c) const;
  // Sets θ of channel c so that the bounds are l and u, as far as σ(θ) ∈ [1e-3, 1 − 1e-6]
  // of the extremes allows (the percentile-MSE start, clip_init pmse).
  void start_at(int c, double l, double u);
  // x [rows, C] in place.
  template <class T>
  void forward(T* x, int64_t rows) const;
  // x: the values forward() was given; dx: ∂L/∂x̂ in, ∂L/∂x out.
  template <class T>
  void backward(const T* x, T* dx, int64_t rows);
  // The per-channel quantizer of the current bounds (docs/methods.md §0.2 rules), for the fold.
  void params(std::vector<float>& step, std::vector<float>& zero) const;
};

}  // namespace tq
