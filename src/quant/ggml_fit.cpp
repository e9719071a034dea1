#include "quant/ggml_fit.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_types.h"

namespace tq {

namespace {

float f16r(float v) { return f16_to_f32(f32_to_f16(v)); }
int clampi(float v, int lo, int hi) { return !(v >= lo) ? lo : v > hi ? hi : (int)v; }

// One grid for n values: x̂ = a·c + off, c in [cmin, cmax].
struct Line {
  float a = 0, off = 0;
};
int nearest(float x, const Line& l, int cmin, int cmax) {
  if (l.a == 0) return std::clamp(0, cmin, cmax);
  return clampi(std::rint((x - l.off) / l.a), cmin, cmax);
}

// The weighted error of x under l (its nearest codes) and, from the same codes, the weighted
// least-squares step (and offset, when affine) in *fit.
double score_line(const float* x, const float* w, int n, const Line& l, int cmin, int cmax, bool affine, Line* fit) {
  double e = 0, sw = 0, sc = 0, scc = 0, sx = 0, sxc = 0;
  for (int i = 0; i < n; i++) {
    const int c = nearest(x[i], l, cmin, cmax);
    const double v = l.a * (float)c + l.off, d = (double)x[i] - v, wi = w[i];
    e += wi * d * d;
    sw += wi, sc += wi * c, scc += wi * c * c, sx += wi * x[i], sxc += wi * x[i] * c;
  }
  if (!fit) return e;
  *fit = l;
  if (!affine) {
    if (scc > 0) fit->a = (float)(sxc / scc);
  } else {
    double det = sw * scc - sc * sc;
    if (det > 1e-30 * std::max(1.0, sw * scc)) {
      fit->a = (float)((sw * sxc - sc * sx) / det);
      fit->off = (float)((scc * sx - sc * sxc) / det);
    }
  }
  return e;
}

// The best line for n values among stretched min-max candidates and their least-squares
// refits. `round` maps a candidate to what can be stored (f16 rounding, or identity inside a
// K super-block); `min_le_0` keeps the offset ≤ 0 (K types subtract a non-negative min).
template <class Round>
Line search_line(const float* x, const float* w, int n, int cmin, int cmax, bool affine, bool min_le_0, Round round) {
  float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  if (min_le_0) lo = std::min(lo, 0.0f);
  Line stretch[26];
  int ns = 0;
  if (affine) {
    if (hi == lo) return round(Line{0, lo});
    for (int k = -8; k <= 4; k++) stretch[ns++] = Line{(hi - lo) / cmax * (1 + 0.025f * (float)k), lo};
  } else {
    float v = 0;  // the value of largest magnitude
    for (int i = 0; i < n; i++)
      if (std::fabs(x[i]) > std::fabs(v)) v = x[i];
    if (v == 0) return Line{};
    for (int end : {cmin, cmax})
      if (end != 0)
        for (int k = -8; k <= 4; k++) stretch[ns++] = Line{v / (float)end * (1 + 0.025f * (float)k), 0};
  }
  // Each stretch as stored, then its least-squares refit (from the same codes) as stored.
  auto storable = [&](Line l) {
    if (min_le_0 && l.off > 0) l.off = 0;
    return round(l);
  };
  Line best{};
  double best_e = INFINITY;
  for (int i = 0; i < ns; i++) {
    Line l = storable(stretch[i]), fit;
    double e = score_line(x, w, n, l, cmin, cmax, affine, &fit);
    if (e < best_e) best_e = e, best = l;
    if (!std::isfinite(fit.a) || !std::isfinite(fit.off)) continue;
    fit = storable(fit);
    e = score_line(x, w, n, fit, cmin, cmax, affine, nullptr);
    if (e < best_e) best_e = e, best = fit;
  }
  return best;
}

// The weights a sub-block is fitted with: w, or uniform where w is null or all zero there.
const float* sub_weights(const float* w, int n, std::vector<float>& ones) {
  if (w)
    for (int i = 0; i < n; i++)
      if (w[i] > 0) return w;
  ones.assign(n, 1.0f);
  return ones.data();
}

}  // namespace

void code_block(const GgmlGrid& g, const float* x, GgmlBlock& b) {
  for (int j = 0; j < g.block / g.sub; j++) {
    const float a = ggml_step(g, b, j);
    const float off = !g.affine ? 0.0f : g.k() ? -(b.m * (float)b.mn[j]) : b.m;
    for (int i = j * g.sub; i < (j + 1) * g.sub; i++) b.q[i] = nearest(x[i], Line{a, off}, g.cmin, g.cmax);
  }
}

double block_error(const GgmlGrid& g, const float* x, const float* w, const GgmlBlock& b) {
  double e = 0;
  for (int i = 0; i < g.block; i++) {
    double d = (double)x[i] - ggml_value(g, b, i / g.sub, b.q[i]);
    e += (w ? w[i] : 1.0) * d * d;
  }
  return e;
}

void fit_block(const GgmlGrid& g, const float* x, const float* w, GgmlBlock& b) {
  b = GgmlBlock{};
  std::vector<float> ones;
  if (!g.k()) {  // one grid per block: d and m stored in f16
    const float* ww = sub_weights(w, g.block, ones);
    Line l = search_line(x, ww, g.block, g.cmin, g.cmax, g.affine, false,
                         [](Line l) { return Line{f16r(l.a), f16r(l.off)}; });
    b.d = l.a, b.m = g.affine ? l.off : 0.0f;
    code_block(g, x, b);
    return;
  }
  // K types: each sub-block's own line, then its step and min as integers times the f16 d / dmin.
  const int ns = g.block / g.sub;
  std::vector<Line> sub(ns);
  std::vector<const float*> sw(ns);
  std::vector<std::vector<float>> sub_ones(ns);
  for (int j = 0; j < ns; j++) {
    sw[j] = sub_weights(w ? w + j * g.sub : nullptr, g.sub, sub_ones[j]);
    sub[j] = search_line(x + j * g.sub, sw[j], g.sub, g.cmin, g.cmax, g.affine, true, [](Line l) { return l; });
  }
  auto error_of = [&](GgmlBlock& c) {
    code_block(g, x, c);
    double e = 0;
    for (int j = 0; j < ns; j++)
      for (int i = j * g.sub; i < (j + 1) * g.sub; i++) {
        double d = (double)x[i] - ggml_value(g, c, j, c.q[i]);
        e += (double)sw[j][i - j * g.sub] * d * d;
      }
    return e;
  };
  // d: the sub-block step of largest magnitude lands on the end of the scale range (the
  // negative end for the signed scales), stretched a little either way.
  float amax = 0, mmax = 0;
  for (int j = 0; j < ns; j++) {
    if (std::fabs(sub[j].a) > std::fabs(amax)) amax = sub[j].a;
    mmax = std::max(mmax, -sub[j].off);
  }
  const float d0 = g.affine ? std::fabs(amax) / (float)g.smax : amax / (float)g.smin;
  const float m0 = g.mmax > 0 ? mmax / (float)g.mmax : 0.0f;
  GgmlBlock best;
  double best_e = INFINITY;
  for (int kd = -4; kd <= 2; kd++)
    for (int km = g.affine ? -4 : 0; km <= (g.affine ? 2 : 0); km++) {
      GgmlBlock c;
      c.d = f16r(d0 * (1 + 0.03f * (float)kd));
      c.m = g.affine ? f16r(m0 * (1 + 0.03f * (float)km)) : 0.0f;
      for (int j = 0; j < ns; j++) {
        c.sc[j] = c.d != 0 ? clampi(std::rint(sub[j].a / c.d), g.smin, g.smax) : 0;
        c.mn[j] = g.affine && c.m > 0 ? clampi(std::rint(-sub[j].off / c.m), 0, g.mmax) : 0;
      }
      double e = error_of(c);
      if (e < best_e) best_e = e, best = c;
    }
  b = best;
}

int64_t ggml_bytes(uint32_t type, int64_t rows, int64_t cols) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  if (!t || cols % t->block) return -1;
  return rows * (cols / t->block) * t->bytes;
}

GgmlTensor encode_ggml(uint32_t type, const Tensor& w, const std::vector<float>& col_weight) {
  const int64_t rows = w.rows(), cols = w.cols();
  const int64_t bytes = ggml_bytes(type, rows, cols);
  if (bytes < 0) run_failed("ggml type {} does not fit rows of {}", type, cols);
  if (!col_weight.empty() && (int64_t)col_weight.size() != cols)
    run_failed("column weights: {} values for {} columns", col_weight.size(), cols);
  GgmlTensor out{type, std::vector<uint8_t>(bytes)};
  const GgmlGrid* g = ggml_grid(type);
  if (!g) {
    ggml_type_info(type)->from_f32(w.ptr(), out.data.data(), w.numel());
    return out;
  }
  const int64_t row_bytes = bytes / rows, per_row = cols / g->block, bb = ggml_type_info(type)->bytes;
  const float* cw = col_weight.empty() ? nullptr : col_weight.data();
#pragma omp parallel for schedule(dynamic, 4) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; r++) {
    GgmlBlock b;
    for (int64_t k = 0; k < per_row; k++) {
      fit_block(*g, w.row(r) + k * g->block, cw ? cw + k * g->block : nullptr, b);
      pack_block(type, b, out.data.data() + r * row_bytes + k * bb);
    }
  }
  return out;
}

Tensor decode_ggml(const GgmlTensor& t, const std::vector<int64_t>& shape) {
  Tensor out(shape);
  const GgmlTypeInfo* ti = ggml_type_info(t.type);
  if (!ti || !ti->to_f32 || ggml_bytes(t.type, out.numel() / shape.back(), shape.back()) != (int64_t)t.data.size())
    run_failed("a {} tensor of {} bytes does not hold shape {}", ti ? ti->name : "?", t.data.size(), shape_str(shape));
  ti->to_f32(t.data.data(), out.ptr(), out.numel());
  return out;
}

}  // namespace tq
