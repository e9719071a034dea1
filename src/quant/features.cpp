#include "quant/features.h"

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "nn/ops.h"

namespace tq {

double kurtosis(const float* x, int64_t n) {
  if (n <= 0) return NAN;
  double mean = 0;
  for (int64_t i = 0; i < n; i++) mean += x[i];
  mean /= n;
  double m2 = 0, m4 = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = x[i] - mean, d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
  }
  m2 /= n;
  m4 /= n;
  return m2 > 0 ? m4 / (m2 * m2) : NAN;
}

Part part_of(const std::string& linear) {
  auto slot = slot_from_name(linear);
  if (!slot) bad_input("'{}' is not a linear of a block", linear);
  return linear_def(*slot).part;
}

namespace {

// The inputs of o (site o_in) and down (site down_in) in one layer.
struct CaptureInputs : Hooks {
  int layer = 0;
  std::vector<float> att, f;
  void forward(Site s, int l, float* x, int rows, int cols) override {
    if (l != layer) return;
    if (s == Site::o_in) att.assign(x, x + (int64_t)rows * cols);
    if (s == Site::down_in) f.assign(x, x + (int64_t)rows * cols);
  }
};

std::vector<float> linear_out(const Linear& l, const std::vector<float>& x) {
  int N = (int)(x.size() / l.in());
  std::vector<float> y((size_t)N * l.out());
  linear_forward(y.data(), x.data(), l.w.ptr(), l.b.empty() ? nullptr : l.b.ptr(), N, l.in(), l.out());
  return y;
}

double sq_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return s;
}

}  // namespace

std::vector<std::array<double, kNumParts>> sensitivity(const Model& m, const std::vector<Batch>& calib,
                                                       const WeightQuantizer& quantize) {
  TQ_CHECK_INPUT(!calib.empty(), "sensitivity needs calibration data (--calib)");
  const int L = m.cfg.n_layers;
  Workspace ws;
  std::vector<Tensor> X(calib.size());  // the fp residual entering the current layer, per batch
  for (size_t b = 0; b < calib.size(); b++) {
    forward_embed(m, calib[b].input(), ws);
    X[b] = ws.x;
  }
  // A model whose only block is the one being probed (forward_block reads cfg and blocks[layer]).
  Model probe;
  probe.cfg = m.cfg;
  probe.blocks.resize(L);
  std::vector<std::array<double, kNumParts>> out(L);
  Progress prog("sensitivity", (int64_t)L * calib.size(), "block");
  for (int l = 0; l < L; l++) {
    const Block& fb = m.blocks[l];
    Block qb = fb;
    for (auto& nl : block_linears(qb)) nl.lin->w = quantize(weight_name(l, nl.slot), nl.lin->w);
    Block attn_in = fb, mlp_in = fb;  // the block with one input part quantized
    for (auto& d : linear_table()) {
      if (d.part == Part::attn_in) attn_in.*d.member = qb.*d.member;
      if (d.part == Part::mlp_in) mlp_in.*d.member = qb.*d.member;
    }
    std::array<double, kNumParts> sum{}, count{};
    for (size_t b = 0; b < calib.size(); b++) {
      Input in = calib[b].input();
      CaptureInputs fp, q;
      fp.layer = q.layer = l;
      ws.x = X[b];
      forward_block(m, l, in, ws, fp);
      Tensor next = ws.x;
      std::vector<float> attn_ref = linear_out(fb.o, fp.att), mlp_ref = linear_out(fb.down, fp.f);
      auto add = [&](Part p, const std::vector<float>& y, const std::vector<float>& ref) {
        sum[(int)p] += sq_diff(y, ref);
        count[(int)p] += (double)ref.size();
      };
      add(Part::attn_out, linear_out(qb.o, fp.att), attn_ref);
      add(Part::mlp_out, linear_out(qb.down, fp.f), mlp_ref);
      probe.blocks[l] = attn_in;
      ws.x = X[b];
      forward_block(probe, l, in, ws, q);
      add(Part::attn_in, linear_out(fb.o, q.att), attn_ref);
      probe.blocks[l] = mlp_in;
      ws.x = X[b];
      forward_block(probe, l, in, ws, q);
      add(Part::mlp_in, linear_out(fb.down, q.f), mlp_ref);
      X[b] = std::move(next);
      prog.add();
    }
    for (int p = 0; p < kNumParts; p++) out[l][p] = sum[p] / count[p];
  }
  return out;
}

}  // namespace tq
