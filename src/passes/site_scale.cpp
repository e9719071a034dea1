#include "passes/site_scale.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "passes/fold.h"

namespace tq {

bool site_scalable(const Model& m, Site site) {
  if (site == Site::qkv_in || site == Site::up_in || site == Site::o_in) return true;
  return site == Site::down_in && m.cfg.gated;
}

std::vector<NamedLinear> site_readers(Block& b, Site site) {
  if (site == Site::down_in) return {{linear_def(Slot::down).name, &b.down, Slot::down}};
  if (site == Site::o_in) return {{linear_def(Slot::o).name, &b.o, Slot::o}};
  return site_consumers(b, site);
}

namespace {

// Refuses to move scales through weights the plan already quantizes.
void check_float(const QuantPlan& plan, int layer, std::initializer_list<Slot> slots, const char* what) {
  for (Slot slot : slots) {
    auto it = plan.weights.find(weight_name(layer, slot));
    if (it != plan.weights.end() && it->second.enabled())
      bad_input("{} of blk.{}: {} is already quantized (scale first, then quantize)", what, layer, linear_def(slot).name);
  }
}

void scale_rows(Linear& lin, int r, double s) {
  float* w = lin.w.row(r);
  for (int c = 0; c < lin.in(); c++) w[c] = (float)((double)w[c] * s);
  if (!lin.b.empty()) lin.b.data[r] = (float)((double)lin.b.data[r] * s);
}

void scale_cols(Linear& lin, const std::vector<double>& s) {  // columns ÷ s
  for (int o = 0; o < lin.out(); o++) {
    float* w = lin.w.row(o);
    for (int c = 0; c < lin.in(); c++) w[c] = (float)((double)w[c] / s[c]);
  }
}

}  // namespace

std::vector<std::pair<int, int>> rope_pairs(const Config& c) {
  std::vector<std::pair<int, int>> out;
  for (int i = 0; i < c.head_dim / 2; i++)
    out.push_back(c.rope_layout == RopeLayout::pairs ? std::make_pair(2 * i, 2 * i + 1)
                                                     : std::make_pair(i, i + c.head_dim / 2));
  return out;
}

void scale_key_channels(Model& m, QuantPlan& plan, int layer, const std::vector<double>& s) {
  const Config& c = m.cfg;
  TQ_CHECK_INPUT(layer >= 0 && layer < c.n_layers, "key scale: layer {} does not exist", layer);
  TQ_CHECK_INPUT((int)s.size() == c.kv_dim(), "key scale: {} scales for {} key channels", s.size(), c.kv_dim());
  for (int j = 0; j < c.kv_dim(); j++)
    TQ_CHECK_INPUT(std::isfinite(s[j]) && s[j] != 0, "key scale: channel {} has scale {}", j, s[j]);
  if (c.pos == PosKind::rope)
    for (int h = 0; h < c.n_kv_heads; h++)
      for (auto [i, j] : rope_pairs(c))
        TQ_CHECK_INPUT(s[h * c.head_dim + i] == s[h * c.head_dim + j],
                       "key scale: RoPE mixes channels {} and {}, their scales must agree", h * c.head_dim + i,
                       h * c.head_dim + j);
  check_float(plan, layer, {Slot::q, Slot::k}, "key scale");
  Block& b = m.blocks[layer];
  const int group = c.n_heads / c.n_kv_heads;
  for (int j = 0; j < c.kv_dim(); j++) scale_rows(b.k, j, s[j]);
  for (int h = 0; h < c.n_heads; h++)
    for (int d = 0; d < c.head_dim; d++) scale_rows(b.q, h * c.head_dim + d, 1.0 / s[(h / group) * c.head_dim + d]);
}

void scale_site_channels(Model& m, QuantPlan& plan, Site site, int layer, const std::vector<double>& s) {
  TQ_CHECK_INPUT(site_scalable(m, site), "channel scales cannot be moved into site {} of this model ({})",
                 site_name(site), site == Site::down_in ? "no gated MLP" : "no linear producer per channel");
  TQ_CHECK_INPUT(layer >= 0 && layer < m.cfg.n_layers, "site scale: layer {} does not exist", layer);
  const int C = site == Site::down_in ? m.cfg.hidden : site == Site::o_in ? m.cfg.q_dim() : m.cfg.dim;
  TQ_CHECK_INPUT((int)s.size() == C, "site scale at {}: {} scales for {} channels", site_name(site), s.size(), C);
  for (int c = 0; c < C; c++)
    TQ_CHECK_INPUT(std::isfinite(s[c]) && s[c] != 0, "site scale: channel {} has scale {}", c, s[c]);
  if (site == Site::qkv_in || site == Site::up_in) {
    std::vector<double> a(C), d(C, 0.0);
    for (int c = 0; c < C; c++) a[c] = 1.0 / s[c];
    fold_channel_affine(m, plan, site, layer, a, d);
    return;
  }
  Block& b = m.blocks[layer];
  if (site == Site::o_in) {  // v's channel (kv head h / group, d) feeds o_in's (h, d) of every head in the group
    const Config& c = m.cfg;
    const int group = c.n_heads / c.n_kv_heads;
    for (int h = 0; h < c.n_heads; h++)
      for (int d = 0; d < c.head_dim; d++)
        TQ_CHECK_INPUT(s[h * c.head_dim + d] == s[(h / group * group) * c.head_dim + d],
                       "site scale at o_in: heads {} and {} share a kv head, their scales must agree", h,
                       h / group * group);
    check_float(plan, layer, {Slot::v, Slot::o}, "site scale at o_in");
    for (int kv = 0; kv < c.n_kv_heads; kv++)
      for (int d = 0; d < c.head_dim; d++) scale_rows(b.v, kv * c.head_dim + d, s[(kv * group) * c.head_dim + d]);
    scale_cols(b.o, s);
    return;
  }
  check_float(plan, layer, {Slot::up, Slot::down}, "site scale at down_in");
  for (int r = 0; r < C; r++) scale_rows(b.up, r, s[r]);
  scale_cols(b.down, s);
}

}  // namespace tq
