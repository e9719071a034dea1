// Second moments of the linear inputs, H = Σ_t x_t x_tᵀ over the calibration
// tokens, per site (GPTQ's Hessian of the layer-wise squared error up to a
// factor; its diagonal is the importance of the activation-weighted scale
// search, its mean |x| AWQ's channel magnitude). Gathered by a hook in double,
// in the order the forward calls it, so the same data give the same bits.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nn/forward.h"

namespace tq {

struct Hessian {
  int n = 0;                     // channels
  int64_t rows = 0;              // tokens accumulated
  std::vector<double> xtx;       // n×n, Σ x xᵀ; add() fills the upper triangle, at() reads it
  std::vector<double> abs_sum;   // Σ |x_c|

  void add(const float* x, int rows, int cols);
  void merge(const Hessian& other);  // the sums of both (for Hessians gathered in pieces)
  double at(int i, int j) const { return i <= j ? xtx[(size_t)i * n + j] : xtx[(size_t)j * n + i]; }
  std::vector<double> full() const;         // the symmetric n×n matrix
  std::vector<float> mean_square() const;   // H_cc / rows: the importance per channel
  std::vector<double> mean_abs() const;     // Σ|x_c| / rows
  // H of x' = x ⊙ s (the same data after a channel scale): H'_ij = s_i s_j H_ij.
  void scale_channels(const std::vector<double>& s);
};

// The site a block linear reads ("attn_q" → qkv_in, "attn_output" → o_in, "ffn_gate" → up_in,
// "ffn_down" → down_in); bad_input for a name that is not a block linear.
Site input_site_of(const std::string& linear);

// Records H at the chosen linear-input sites (all of qkv_in, o_in, up_in, down_in, head_in by
// default), at every layer or only at `layer`.
struct HessianObserver : Hooks {
  std::set<Site> sites = {Site::qkv_in, Site::o_in, Site::up_in, Site::down_in, Site::head_in};
  int layer = -2;  // −2: every layer; else only this one (−1: the head)
  std::map<std::string, Hessian> h;  // by site key ("blk.3.qkv_in", "head_in")
  void forward(Site site, int layer, float* x, int rows, int cols) override;
};

}  // namespace tq
