#include "passes/fold.h"

#include <cmath>

#include "core/error.h"
#include "quant/observer.h"
#include "quant/weights.h"

namespace tq {

double row_rtn_sqnr_db(const Tensor& w, int bits, const std::vector<double>& col_weight) {
  QuantSpec s;
  s.bits = bits;
  s.gran = Gran::row;
  s = fit_weight(w, s, {});
  Tensor q = w;
  fake_quant(q.ptr(), (int)q.rows(), (int)q.cols(), s);
  const int64_t C = w.cols();
  double sig = 0, err = 0;
  for (int64_t i = 0; i < w.numel(); i++) {
    double cw = col_weight.empty() ? 1.0 : col_weight[i % C];
    sig += (double)w.data[i] * w.data[i] * cw * cw;
    err += ((double)w.data[i] - q.data[i]) * ((double)w.data[i] - q.data[i]) * cw * cw;
  }
  return err > 0 ? 10.0 * std::log10(sig / err) : INFINITY;
}

nlohmann::json to_json(const FoldRecord& r) {
  nlohmann::json w = nlohmann::json::object();
  for (size_t i = 0; i < r.weights.size(); i++)
    w[r.weights[i]] = r.sqnr_before_db.empty()
                          ? nlohmann::json(nullptr)
                          : nlohmann::json{{"sqnr_db_before", r.sqnr_before_db[i]}, {"sqnr_db_after", r.sqnr_after_db[i]}};
  return {{"site", r.site}, {"into", r.into_norm ? "norm" : "quantize op"}, {"weights", w}};
}

FoldRecord fold_channel_affine(Model& m, QuantPlan& plan, Site site, int layer, const std::vector<double>& a,
                               const std::vector<double>& d, const SqnrProbe& probe) {
  const Producer& producer = site_def(site).producer;
  TQ_ASSERT(producer.kind == Producer::by_norm, "a channel-affine fold applies to a site a norm computes, not {}",
            site_name(site));
  const int C = m.cfg.dim;
  TQ_ASSERT(layer >= 0 && layer < m.cfg.n_layers, "fold: layer {} does not exist", layer);
  TQ_ASSERT((int)a.size() == C && (int)d.size() == C, "fold: a and d need {} channels, got {} and {}", C,
            a.size(), d.size());
  TQ_ASSERT(probe.bits == 0 || (int)probe.x_scale.size() == C, "fold: the SQNR probe needs {} channel scales", C);
  bool scale = false, shift = false;
  for (int c = 0; c < C; c++) {
    TQ_CHECK_INPUT(std::isfinite(a[c]) && a[c] != 0 && std::isfinite(d[c]),
                   "fold: channel {} has a = {}, d = {} (a must be finite and non-zero, d finite)", c, a[c], d[c]);
    scale |= a[c] != 1;
    shift |= d[c] != 0;
  }
  Block& blk = m.blocks[layer];
  FoldRecord rec;
  rec.site = site_key(site, layer);
  rec.into_norm = !m.cfg.post_norm;
  auto consumers = site_consumers(blk, site);
  for (auto& nl : consumers) {
    std::string name = weight_name(layer, nl.slot);
    auto it = plan.weights.find(name);
    if (it != plan.weights.end() && it->second.enabled())
      bad_input("fold at {}: {} is already quantized (fold first, then quantize)", rec.site, name);
    rec.weights.push_back(name);
    if (probe.bits > 0) rec.sqnr_before_db.push_back(row_rtn_sqnr_db(nl.lin->w, probe.bits, probe.x_scale));
  }
  auto site_it = plan.sites.find(rec.site);
  if (site_it != plan.sites.end() && site_it->second.enabled())
    bad_input("fold at {}: the site is already quantized (fold first, then quantize)", rec.site);
  if (!scale && !shift) {
    rec.sqnr_after_db = rec.sqnr_before_db;
    return rec;
  }

  // Consumers: b' = b + W·d with the original W, then W' = W·diag(a).
  for (auto& nl : consumers) {
    Linear& l = *nl.lin;
    const int O = l.out();
    if (shift) {
      if (l.b.empty()) l.b = Tensor({O});
      for (int o = 0; o < O; o++) {
        const float* w = l.w.row(o);
        double s = l.b.data[o];
        for (int c = 0; c < C; c++) s += (double)w[c] * d[c];
        l.b.data[o] = (float)s;
      }
    }
    if (scale)
      for (int o = 0; o < O; o++) {
        float* w = l.w.row(o);
        for (int c = 0; c < C; c++) w[c] = (float)((double)w[c] * a[c]);
      }
  }

  if (m.cfg.post_norm) {
    // The site value so far is x1 = (x − s1) ⊙ i1; x2 = (x1 − d) ⊘ a = (x − (s1 + d ⊘ i1)) ⊙ (i1 ⊘ a).
    if (site_it == plan.sites.end()) {
      QuantSpec transform_only;
      transform_only.bits = 0;
      site_it = plan.sites.emplace(rec.site, transform_only).first;
    }
    QuantSpec& s = site_it->second;
    if (s.pre_inv.empty()) s.pre_inv.assign(C, 1.0f);
    if (s.pre_shift.empty()) s.pre_shift.assign(C, 0.0f);
    for (int c = 0; c < C; c++) {
      double inv = s.pre_inv[c];
      s.pre_shift[c] = (float)(s.pre_shift[c] + d[c] / inv);
      s.pre_inv[c] = (float)(inv / a[c]);
    }
  } else {
    Norm& n = blk.*producer.norm;
    if (shift && n.b.empty()) n.b = Tensor({C});
    for (int c = 0; c < C; c++) {
      if (scale) n.g.data[c] = (float)(n.g.data[c] / a[c]);
      if (!n.b.empty()) n.b.data[c] = (float)((n.b.data[c] - d[c]) / a[c]);
    }
  }
  if (probe.bits > 0) {
    std::vector<double> after(C);
    for (int c = 0; c < C; c++) after[c] = probe.x_scale[c] / a[c];
    for (auto& nl : consumers) rec.sqnr_after_db.push_back(row_rtn_sqnr_db(nl.lin->w, probe.bits, after));
  }
  return rec;
}

}  // namespace tq
