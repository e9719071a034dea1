// HQQ (docs/methods.md §3.2, §5.8): weight-only asymmetric group quantization
// whose zero point is optimised by a half-quadratic proximal solver, and the
// ladder of (bits, group) rungs that SensiBoost/KurtBoost allocate from.
//
// HQQ keeps the inverse scale s and quantizes as round(W·s + z); tquant
// stores Δ = 1/s and the (fractional) zero z in a QuantSpec, so the
// simulation, the saved codes and the loaded model all use the one element
// quantizer q_asym (quant/quantizer.h).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "quant/quantizer.h"

namespace tq {

struct HqqOptions {
  int iters = 20;       // zero-point updates at most (0: min-max RTN with HQQ's zero)
  float p = 0.7f;       // the l_p norm of the shrinkage
  float beta0 = 10.0f;  // initial β
  float kappa = 1.01f;  // β grows by κ per update
};

// HQQ's initial parameters of one group: s = min(Qa/(max − min), 2e4), Δ = 1/s,
// z = −min·s, rounded only for 4 bits.
void hqq_init(const float* w, int n, int bits, float& step, float& zero);
// One proximal zero update at β:  z' = mean(Wq − (W − We)/Δ), with
// We = sign(e)·max(|e| − |e|^(p−1)/β, 0), e = W − Ŵ.
float hqq_zero_update(const float* w, int n, int bits, float step, float zero, float beta, float p);
// Mean |W − Ŵ| of a group under (Δ, z).
double hqq_group_error(const float* w, int n, int bits, float step, float zero);
// The optimised (Δ, z) of one group: iterates while the mean absolute error
// improves and keeps the zero with the lowest error seen.
void hqq_group(const float* w, int n, int bits, const HqqOptions& opt, float& step, float& zero);

// HQQ of w [out, in] with groups of `group` along the input dimension (the
// last group of a row may be shorter).
QuantSpec hqq_fit(const Tensor& w, int bits, int group, const HqqOptions& opt = {});

// A rung of the ladder: bits and group size.
struct Rung {
  int bits = 4, group = 64;
  std::string name() const;  // "b4g64"
};
// The paper's ladder b{2,3,4,8} × g{32,64,128}, sorted by bits per parameter.
const std::vector<Rung>& hqq_ladder();
// Index of a rung name ("b4g64") in the ladder; throws bad_input naming the choices.
int ladder_index(const std::string& name);
// Bits per parameter of an [out, in] matrix at a rung, counting its actual
// groups (a shorter last group counts as a whole group):
//   HQQ's accounting: b + 2·8/g + 32/(g·128)  (8-bit meta-quantized scale and zero)
//   ours:             b + 32/g                 (f16 scale and zero per group)
double bpp_hqq(const Rung& r, int64_t rows, int64_t cols);
double bpp_ours(const Rung& r, int64_t rows, int64_t cols);
// The same for the ideal, divisible case (the ladder table of docs/methods.md §3.2).
double bpp_hqq(const Rung& r);
double bpp_ours(const Rung& r);

}  // namespace tq
