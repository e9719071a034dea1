#include "quant/quantizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace tq {

const char* to_string(Scheme s) {
  switch (s) {
    case Scheme::sym: return "sym";
    case Scheme::asym: return "asym";
    case Scheme::log2: return "log2";
    case Scheme::logsqrt2: return "logsqrt2";
  }
  return "?";
}
const char* to_string(Gran g) {
  switch (g) {
    case Gran::tensor: return "tensor";
    case Gran::row: return "row";
    case Gran::col: return "col";
    case Gran::group: return "group";
  }
  return "?";
}
Scheme scheme_from_string(const std::string& s) {
  for (Scheme x : {Scheme::sym, Scheme::asym, Scheme::log2, Scheme::logsqrt2})
    if (s == to_string(x)) return x;
  bad_input("unknown quantizer scheme '{}' (sym, asym, log2, logsqrt2)", s);
}
Gran gran_from_string(const std::string& s) {
  for (Gran x : {Gran::tensor, Gran::row, Gran::col, Gran::group})
    if (s == to_string(x)) return x;
  bad_input("unknown granularity '{}' (tensor, row, col, group)", s);
}

int64_t QuantSpec::n_params(int rows, int cols) const {
  switch (gran) {
    case Gran::tensor: return 1;
    case Gran::row: return rows;
    case Gran::col: return cols;
    case Gran::group: return (int64_t)rows * ((cols + group - 1) / group);
  }
  return 1;
}

// A field added to QuantSpec must travel too: this size is the struct as append_doubles knows it.
static_assert(sizeof(QuantSpec) == 5 * sizeof(int) + 4 * sizeof(std::vector<float>) + sizeof(std::string) + 4,
              "QuantSpec changed: update append_doubles and spec_from_doubles");

void append_doubles(const QuantSpec& s, std::vector<double>& out) {
  out.insert(out.end(), {(double)s.bits, (double)s.scheme, (double)s.gran, (double)s.group, (double)s.dynamic});
  for (const std::vector<float>* v : {&s.scale, &s.zero, &s.pre_inv, &s.pre_shift}) {
    out.push_back((double)v->size());
    out.insert(out.end(), v->begin(), v->end());
  }
  out.push_back((double)s.calibrator.size());
  out.insert(out.end(), s.calibrator.begin(), s.calibrator.end());
}

QuantSpec spec_from_doubles(const double*& at, const double* end) {
  auto take = [&]() {
    TQ_ASSERT(at < end, "a quantizer sent between ranks ends early");
    return *at++;
  };
  auto count = [&]() {
    const double n = take();
    TQ_ASSERT(n >= 0 && n <= (double)(end - at), "a quantizer sent between ranks claims {} values", n);
    return (size_t)n;
  };
  QuantSpec s;
  s.bits = (int)take();
  s.scheme = (Scheme)(int)take();
  s.gran = (Gran)(int)take();
  s.group = (int)take();
  s.dynamic = take() != 0;
  for (std::vector<float>* v : {&s.scale, &s.zero, &s.pre_inv, &s.pre_shift}) {
    v->resize(count());
    for (float& x : *v) x = (float)*at++;
  }
  s.calibrator.resize(count());
  for (char& c : s.calibrator) c = (char)*at++;
  return s;
}

QuantSpec QuantSpec::rows(int64_t r0, int64_t n, int64_t cols) const {
  if (gran != Gran::row && gran != Gran::group) return *this;
  const int64_t per_row = gran == Gran::group ? (cols + group - 1) / group : 1;
  QuantSpec part;
  part.bits = bits, part.scheme = scheme, part.gran = gran, part.group = group, part.dynamic = dynamic;
  part.pre_inv = pre_inv, part.pre_shift = pre_shift, part.calibrator = calibrator;
  const size_t end = (size_t)((r0 + n) * per_row);
  TQ_CHECK_INPUT(r0 >= 0 && n >= 0 && scale.size() >= end && (zero.empty() || zero.size() >= end),
                 "a {} quantizer with {} steps and {} zero points for rows {}..{} of {} columns", to_string(gran),
                 scale.size(), zero.size(), r0, r0 + n, cols);
  part.scale.assign(scale.begin() + r0 * per_row, scale.begin() + end);
  if (!zero.empty()) part.zero.assign(zero.begin() + r0 * per_row, zero.begin() + end);
  return part;
}

float sym_step(float T, int bits, float amax) {
  float qs = (float)((1 << (bits - 1)) - 1);
  float step = std::isfinite(T) && T > 0 ? T / qs : 0.0f;
  step = std::max(step, 1e-8f * amax);
  return step > 0 && std::isfinite(step) ? step : 1.0f;
}

void asym_params(float l, float u, int bits, float amax, float& step, float& zero) {
  if (u == l) {  // a constant: widen to include 0 so both it and 0 are exact levels
    l = std::min(l, 0.0f);
    u = std::max(u, 0.0f);
  }
  if (!(u > l) || !std::isfinite(l) || !std::isfinite(u)) {  // degenerate (all zero): zero maps to zero
    step = 1.0f;
    zero = 0.0f;
    return;
  }
  step = std::max((u - l) / (float)((1 << bits) - 1), 1e-8f * amax);
  zero = std::rint(-l / step);
}

// Largest usable log level: 2^b levels, but at 8 bits code 255 is the runtime's zero marker.
static int log_levels(int bits) { return std::min(1 << bits, 255); }

int q_log2(float x, float step, int bits) {
  if (!(x > 0)) return -1;
  float e = std::rint(-std::log2(x / step));
  if (e >= log_levels(bits)) return -1;
  return e < 0 ? 0 : (int)e;
}
int q_logsqrt2(float x, float step, int bits) {
  if (!(x > 0)) return -1;
  float e = std::rint(-2.0f * std::log2(x / step));
  if (e >= log_levels(bits)) return -1;
  return e < 0 ? 0 : (int)e;
}
float dq_log2(int q, float step) { return q < 0 ? 0.0f : std::ldexp(step, -q); }
// 2^(−q/2) = 2^(−⌈q/2⌉)·(1 + (√2−1)·(q mod 2)), the form the log2 runtime computes
// (docs/methods.md §1.5).
float dq_log2_pair(Log2Pair p, float step) {
  if (p.e < 0) return 0.0f;
  return dq_log2(p.e, p.odd ? step * 1.41421356237309505f : step);
}
float dq_logsqrt2(int q, float step) { return dq_log2_pair(log2_pair(q), step); }

namespace {

// Applies the pre-transform (if any) to one row in place.
inline void pre_transform(float* x, int cols, const QuantSpec& s) {
  if (s.pre_inv.empty()) return;
  const float* inv = s.pre_inv.data();
  const float* sh = s.pre_shift.empty() ? nullptr : s.pre_shift.data();
  for (int c = 0; c < cols; c++) x[c] = (x[c] - (sh ? sh[c] : 0.0f)) * inv[c];
}

// Quantize-dequantize one value with (step, zero); counts saturation.
inline float fq(float x, float step, float zero, const QuantSpec& s, int64_t& sat) {
  switch (s.scheme) {
    case Scheme::sym: {
      int q = q_sym(x, step, s.bits);
      float r = std::rint(x / step);
      sat += r > s.qmax() || r < s.qmin();
      return step * (float)q;
    }
    case Scheme::asym: {
      int q = q_asym(x, step, zero, s.bits);
      float r = asym_code(x, step, zero);
      sat += r > s.qmax() || r < 0;
      return step * ((float)q - zero);
    }
    case Scheme::log2: return dq_log2(q_log2(x, step, s.bits), step);
    case Scheme::logsqrt2: return dq_logsqrt2(q_logsqrt2(x, step, s.bits), step);
  }
  return x;
}

}  // namespace

// Parameters from a row's (or tensor's) own values: sym absmax, asym min-max, log max.
void dynamic_params(const float* x, int64_t n, const QuantSpec& s, float& step, float& zero) {
  float mn = INFINITY, mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  float amax = std::max(std::fabs(mn), std::fabs(mx));
  zero = 0;
  switch (s.scheme) {
    case Scheme::sym: step = sym_step(amax, s.bits, amax); break;
    case Scheme::asym: asym_params(mn, mx, s.bits, amax, step, zero); break;
    default: step = mx > 0 ? mx : 1.0f; break;
  }
}

int64_t fake_quant(float* x, int rows, int cols, const QuantSpec& s) {
  if (!s.pre_inv.empty()) {
    TQ_CHECK_INPUT((int)s.pre_inv.size() == cols, "pre-transform has {} channels, the site has {}", s.pre_inv.size(),
                   cols);
    for (int r = 0; r < rows; r++) pre_transform(x + (int64_t)r * cols, cols, s);
  }
  if (!s.enabled()) return 0;
  int64_t sat = 0;
  if (s.dynamic) {
    if (s.gran == Gran::row || s.gran == Gran::group) {  // per token, or per token and group of columns
      const int g = s.gran == Gran::group ? s.group : cols;
      TQ_CHECK_INPUT(g > 0, "dynamic quantization per group needs a group size");
#pragma omp parallel for reduction(+ : sat) schedule(static) if ((int64_t)rows * cols > 32768)
      for (int r = 0; r < rows; r++) {
        float* xr = x + (int64_t)r * cols;
        for (int c0 = 0; c0 < cols; c0 += g) {
          const int n = std::min(g, cols - c0);
          float step, zero;
          dynamic_params(xr + c0, n, s, step, zero);
          for (int c = c0; c < c0 + n; c++) xr[c] = fq(xr[c], step, zero, s, sat);
        }
      }
    } else {
      TQ_CHECK_INPUT(s.gran == Gran::tensor, "dynamic quantization is per row (token), row and group, or per tensor");
      float step, zero;
      dynamic_params(x, (int64_t)rows * cols, s, step, zero);
      for (int64_t i = 0; i < (int64_t)rows * cols; i++) x[i] = fq(x[i], step, zero, s, sat);
    }
    return sat;
  }
  int64_t np = s.n_params(rows, cols);
  TQ_CHECK_INPUT((int64_t)s.scale.size() == np && (s.scheme != Scheme::asym || (int64_t)s.zero.size() == np),
                 "quantizer has {} parameters, a [{}, {}] {} tensor needs {}", s.scale.size(), rows, cols,
                 to_string(s.gran), np);
  const bool has_zero = s.scheme == Scheme::asym;
#pragma omp parallel for reduction(+ : sat) schedule(static) if ((int64_t)rows * cols > 32768)
  for (int r = 0; r < rows; r++) {
    float* xr = x + (int64_t)r * cols;
    for (int c = 0; c < cols; c++) {
      int64_t p = s.param_index(r, c, cols);
      xr[c] = fq(xr[c], s.scale[p], has_zero ? s.zero[p] : 0.0f, s, sat);
    }
  }
  return sat;
}

// Calls run(c0, c1, p) for each run [c0, c1) of row r's elements that share parameter p
// (a whole row, a group, or single columns), so the loops below keep the parameter and
// the scheme out of their inner loop.
template <class Run>
static void for_each_run(const QuantSpec& s, int64_t r, int64_t cols, Run&& run) {
  switch (s.gran) {
    case Gran::tensor: return run(0, cols, 0);
    case Gran::row: return run(0, cols, r);
    case Gran::col:
      for (int64_t c = 0; c < cols; c++) run(c, c + 1, c);
      return;
    case Gran::group: {
      const int64_t per_row = (cols + s.group - 1) / s.group;
      for (int64_t g = 0; g < per_row; g++) run(g * s.group, std::min(cols, (g + 1) * s.group), r * per_row + g);
      return;
    }
  }
}

// Rows are independent (every parameter belongs to one row, or is shared read-only), so
// the loops below run over rows in parallel and give the same bits on any thread count.
void quantize_codes(const float* x, int rows, int cols, const QuantSpec& s, int32_t* codes) {
  TQ_CHECK_INPUT(!s.dynamic && s.enabled() && s.pre_inv.empty(), "codes need a static quantizer without transform");
  TQ_CHECK_INPUT((int64_t)s.scale.size() == s.n_params(rows, cols), "quantizer parameters do not fit the tensor");
  parallel_for(rows, [&](int64_t r) {
    const float* xr = x + r * cols;
    int32_t* q = codes + r * cols;
    for_each_run(s, r, cols, [&](int64_t c0, int64_t c1, int64_t p) {
      const float step = s.scale[p];
      switch (s.scheme) {
        case Scheme::sym:
          for (int64_t c = c0; c < c1; c++) q[c] = q_sym(xr[c], step, s.bits);
          break;
        case Scheme::asym:
          for (int64_t c = c0; c < c1; c++) q[c] = q_asym(xr[c], step, s.zero[p], s.bits);
          break;
        case Scheme::log2:
          for (int64_t c = c0; c < c1; c++) q[c] = q_log2(xr[c], step, s.bits);
          break;
        case Scheme::logsqrt2:
          for (int64_t c = c0; c < c1; c++) q[c] = q_logsqrt2(xr[c], step, s.bits);
          break;
      }
    });
  }, 16);
}

void dequantize_codes(const int32_t* codes, int rows, int cols, const QuantSpec& s, float* x) {
  TQ_CHECK_INPUT((int64_t)s.scale.size() == s.n_params(rows, cols), "quantizer parameters do not fit the tensor");
  parallel_for(rows, [&](int64_t r) {
    const int32_t* q = codes + r * cols;
    float* xr = x + r * cols;
    for_each_run(s, r, cols, [&](int64_t c0, int64_t c1, int64_t p) {
      const float step = s.scale[p];
      switch (s.scheme) {
        case Scheme::sym:
          for (int64_t c = c0; c < c1; c++) xr[c] = step * (float)q[c];
          break;
        case Scheme::asym:
          for (int64_t c = c0; c < c1; c++) xr[c] = step * ((float)q[c] - s.zero[p]);
          break;
        case Scheme::log2:
          for (int64_t c = c0; c < c1; c++) xr[c] = dq_log2(q[c], step);
          break;
        case Scheme::logsqrt2:
          for (int64_t c = c0; c < c1; c++) xr[c] = dq_logsqrt2(q[c], step);
          break;
      }
    });
  }, 16);
}

void fit_minmax(const float* x, int rows, int cols, QuantSpec& s) {
  int64_t np = s.n_params(rows, cols);
  std::vector<float> mn(np, INFINITY), mx(np, -INFINITY);
  auto row = [&](int64_t r) {
    const float* xr = x + r * cols;
    for_each_run(s, r, cols, [&](int64_t c0, int64_t c1, int64_t p) {
      float lo = mn[p], hi = mx[p];
      bool finite = true;
      for (int64_t c = c0; c < c1; c++) {
        finite &= std::isfinite(xr[c]);
        lo = std::min(lo, xr[c]);
        hi = std::max(hi, xr[c]);
      }
      if (!finite)
        for (int64_t c = c0; c < c1; c++)
          if (!std::isfinite(xr[c])) bad_input("cannot quantize a tensor holding {}", xr[c]);
      mn[p] = lo, mx[p] = hi;
    });
  };
  // Per-row and per-group parameters belong to one row each: rows in parallel. The
  // others are shared by rows, so one thread (min and max give the same bits in any order).
  parallel_for(rows, row, 16, s.gran == Gran::row || s.gran == Gran::group);
  s.scale.assign(np, 1.0f);
  s.zero.assign(s.scheme == Scheme::asym ? np : 0, 0.0f);
  for (int64_t p = 0; p < np; p++) {
    float amax = std::max(std::fabs(mn[p]), std::fabs(mx[p]));
    if (s.scheme == Scheme::asym) {
      asym_params(mn[p], mx[p], s.bits, amax, s.scale[p], s.zero[p]);
    } else if (s.scheme == Scheme::sym) {
      s.scale[p] = sym_step(amax, s.bits, amax);
    } else {
      s.scale[p] = mx[p] > 0 ? mx[p] : 1.0f;
    }
  }
  if (s.calibrator.empty()) s.calibrator = "minmax";
}

}  // namespace tq
