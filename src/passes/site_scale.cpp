#include "passes/site_scale.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "passes/fold.h"

namespace tq {

bool site_scalable(const Model& m, Site site) {
  if (site == Site::qkv_in || site == Site::up_in) return true;
  return site == Site::down_in && m.cfg.gated;
}

std::vector<NamedLinear> site_readers(Block& b, Site site) {
  if (site == Site::down_in) return {{linear_def(Slot::down).name, &b.down, Slot::down}};
  return site_consumers(b, site);
}

void scale_site_channels(Model& m, QuantPlan& plan, Site site, int layer, const std::vector<double>& s) {
  TQ_CHECK_INPUT(site_scalable(m, site), "channel scales cannot be moved into site {} of this model ({})",
                 site_name(site), site == Site::down_in ? "no gated MLP" : "not a linear input fed by a norm");
  TQ_CHECK_INPUT(layer >= 0 && layer < m.cfg.n_layers, "site scale: layer {} does not exist", layer);
  const int C = site == Site::down_in ? m.cfg.hidden : m.cfg.dim;
  TQ_CHECK_INPUT((int)s.size() == C, "site scale at {}: {} scales for {} channels", site_name(site), s.size(), C);
  for (int c = 0; c < C; c++)
    TQ_CHECK_INPUT(std::isfinite(s[c]) && s[c] != 0, "site scale: channel {} has scale {}", c, s[c]);
  if (site != Site::down_in) {
    std::vector<double> a(C), d(C, 0.0);
    for (int c = 0; c < C; c++) a[c] = 1.0 / s[c];
    fold_channel_affine(m, plan, site, layer, a, d);
    return;
  }
  Block& b = m.blocks[layer];
  for (Slot slot : {Slot::up, Slot::down}) {
    auto it = plan.weights.find(weight_name(layer, slot));
    if (it != plan.weights.end() && it->second.enabled())
      bad_input("site scale at blk.{}.down_in: {} is already quantized (scale first, then quantize)", layer, linear_def(slot).name);
  }
  for (int r = 0; r < C; r++) {
    float* w = b.up.w.row(r);
    for (int c = 0; c < b.up.in(); c++) w[c] = (float)((double)w[c] * s[r]);
    if (!b.up.b.empty()) b.up.b.data[r] = (float)((double)b.up.b.data[r] * s[r]);
  }
  for (int o = 0; o < b.down.out(); o++) {
    float* w = b.down.w.row(o);
    for (int c = 0; c < C; c++) w[c] = (float)((double)w[c] / s[c]);
  }
}

}  // namespace tq
