// Where per-tensor quantization error comes from (docs/methods.md §4.5): the part
// the inliers pay because outliers stretch the range, versus plain rounding.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/forward.h"

namespace tq {

struct Attribution {
  double e_tot = 0;  // Σ (x − Q_R(x))², R = [min x, max x] (no clipping: pure rounding)
  double e_amp = 0;  // Σ_I (x − Q_R(x))² − Σ_I (x − Q_{R_I}(x))², I = {|x − μ| ≤ kσ}
  double dr = 0;     // (max − min) / (2kσ)
  double share() const { return e_tot > 0 ? e_amp / e_tot : 0; }
};

// One tensor under per-tensor asymmetric min-max quantization with `bits`.
Attribution attribute_error(const float* x, int64_t n, int bits, double k);

// Streams attribution over the forward calls at every site (each call's tensor
// on its own, as QuantTune's batch statistics), and finds the channels whose
// values fall outside the band.
struct DiagnoseHook : Hooks {
  DiagnoseHook(int bits, double k) : bits(bits), k(k) {}
  int bits;
  double k;
  struct Site {
    Attribution sum;           // e_tot and e_amp summed over calls; dr the largest seen
    double dr_sum = 0;
    int64_t calls = 0, values = 0, outliers = 0;
    std::vector<double> excess;     // per channel: Σ (|x − μ| − kσ)² over its outliers
    std::vector<int64_t> count;     // per channel: how many of its values are outliers
  };
  std::map<std::string, Site> sites;
  void forward(tq::Site site, int layer, float* x, int rows, int cols) override;
};

}  // namespace tq
