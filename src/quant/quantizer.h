// Quantizers (docs/methods.md §0.2). A QuantSpec says how one tensor or one site
// is quantized: scheme, bits, granularity and (for static quantizers) the
// parameters. Granularity is relative to the matrix [rows, cols] it applies
// to: weights are [out, in] (row = output channel), activations are
// [tokens, channels] (row = token, col = channel).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tq {

enum class Scheme { sym, asym, log2, logsqrt2 };
enum class Gran { tensor, row, col, group };

const char* to_string(Scheme);
const char* to_string(Gran);
Scheme scheme_from_string(const std::string&);
Gran gran_from_string(const std::string&);

struct QuantSpec {
  int bits = 8;
  Scheme scheme = Scheme::sym;
  Gran gran = Gran::tensor;
  int group = 0;         // elements per group along cols (Gran::group); the last group may be shorter
  bool dynamic = false;  // parameters computed from the data at run time (per row: per token)
  std::vector<float> scale;  // Δ: 1 (tensor), rows, cols, or rows·ceil(cols/group)
  std::vector<float> zero;   // asym only: zero points, same layout as scale (integer, or fractional from HQQ)
  // Channel-affine pre-transform in the quantize op (post-norm folds, docs/methods.md §0.3 item 2):
  // the site value becomes (x − pre_shift) ⊙ pre_inv, then is quantized. Its consumers carry the
  // fold (W·diag(a), b + W·d), so the result stays in the transformed space. Applied even
  // when quantization is off, so the float model stays exact.
  std::vector<float> pre_inv, pre_shift;
  std::string calibrator;  // how the parameters were chosen (for reports)

  bool enabled() const { return bits > 0 && bits < 16; }  // bits 0 or 16+: float (transform only)
  int qmax() const { return scheme == Scheme::sym ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }
  int qmin() const { return scheme == Scheme::sym ? -(1 << (bits - 1)) : 0; }
  // Parameter count and which parameter applies to element (r, c) of a [rows, cols] matrix.
  int64_t n_params(int rows, int cols) const;
  int64_t param_index(int r, int c, int cols) const {
    switch (gran) {
      case Gran::tensor: return 0;
      case Gran::row: return r;
      case Gran::col: return c;
      case Gran::group: return (int64_t)r * ((cols + group - 1) / group) + c / group;
    }
    return 0;
  }
  // The quantizer of rows [r0, r0 + n) of a [rows, cols] matrix (its own slice of per-row
  // and per-group parameters), without copying the rest.
  QuantSpec rows(int64_t r0, int64_t n, int64_t cols) const;
};

// A spec as doubles and back, every field exactly (how a quantizer fitted on one MPI rank
// reaches the others, core/ranks.h). spec_from_doubles reads from `at` and advances it.
void append_doubles(const QuantSpec& s, std::vector<double>& out);
QuantSpec spec_from_doubles(const double*& at, const double* end);

// Parameters from a range, with docs/methods.md's degenerate-range rules.
//   sym:  Δ = T/Qs;   asym: Δ = (u − l)/Qa, z = round(−l/Δ)
// amax is the largest magnitude of the data, for the relative floor Δ ≥ 1e-8·amax.
float sym_step(float T, int bits, float amax);
void asym_params(float l, float u, int bits, float amax, float& step, float& zero);

// Element quantizers (inline below). round() is half-to-even (rint in the default rounding mode).
// Log quantizers for x ≥ 0: code q ≥ 0, or -1 for the zero level (x = 0 or underflow).
int q_log2(float x, float step, int bits);
int q_logsqrt2(float x, float step, int bits);
float dq_log2(int q, float step);
float dq_logsqrt2(int q, float step);

// The log2 form of a log√2 code for inference (docs/methods.md §1.5): 2^(−q/2) =
// 2^(−⌈q/2⌉)·(1 + (√2 − 1)·[q odd]), so P̂ is a log2-coded matrix (exponent e = ⌈q/2⌉)
// plus (√2 − 1) times the same matrix masked to the odd codes; kernel K5 (pv_log) sums
// the two with shifts. e = −1 is the zero code.
struct Log2Pair {
  int e = -1;
  bool odd = false;
};
inline Log2Pair log2_pair(int q) { return q < 0 ? Log2Pair{} : Log2Pair{(q + 1) / 2, (q & 1) != 0}; }
// x̂ of the pair: Δ·2^(−e) from the log2 code, times √2 on odd codes. dq_logsqrt2 is this.
float dq_log2_pair(Log2Pair p, float step);

// Fake-quantizes x[rows, cols] in place (quantize, then dequantize) with spec;
// dynamic specs compute their parameters from x. Returns the number of values
// that were clamped (saturated) by the range.
int64_t fake_quant(float* x, int rows, int cols, const QuantSpec& spec);

// Parameters a dynamic spec takes from n values of its own (a row, or the tensor):
// sym absmax, asym min-max, log max. What fake_quant and the integer runtime use.
void dynamic_params(const float* x, int64_t n, const QuantSpec& s, float& step, float& zero);

// Integer codes of x under a static spec (for storage and the integer runtime).
void quantize_codes(const float* x, int rows, int cols, const QuantSpec& spec, int32_t* codes);
// x̂ from codes: bit-identical to what fake_quant produces for the same spec.
void dequantize_codes(const int32_t* codes, int rows, int cols, const QuantSpec& spec, float* x);

// Computes static parameters of a weight-like matrix from its own values
// (min-max per tensor/row/group, or the given clipping ratio).
void fit_minmax(const float* x, int rows, int cols, QuantSpec& spec);

// ---- inline definitions ----
// NaN maps to code 0 (sym) or the zero point (asym) rather than reaching an int conversion.
inline int q_sym(float x, float step, int bits) {
  int qs = (1 << (bits - 1)) - 1;
  float r = __builtin_rintf(x / step);
  return r > qs ? qs : r < -qs - 1 ? -qs - 1 : r == r ? (int)r : 0;
}
// The unclamped asymmetric code. An integer zero point is added after rounding
// (docs/methods.md §0.2); a fractional one (HQQ, §3.2: round(W·s + z)) before.
inline float asym_code(float x, float step, float zero) {
  return zero == __builtin_rintf(zero) ? __builtin_rintf(x / step) + zero : __builtin_rintf(x / step + zero);
}
inline int q_asym(float x, float step, float zero, int bits) {
  int qa = (1 << bits) - 1;
  float r = asym_code(x, step, zero);
  if (r != r) r = __builtin_rintf(zero);  // NaN maps to the zero point
  return r > qa ? qa : r < 0 ? 0 : r == r ? (int)r : 0;
}

}  // namespace tq
