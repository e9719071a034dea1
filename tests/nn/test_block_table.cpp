// The block's tables (nn/block.h) against the model and the forward: every row's
// member, widths and input site agree with what the forward computes, and every
// producer the site table names does compute its site's channels.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/forward.h"
#include "nn/random_model.h"
#include "quant/observer.h"
#include "test_util.h"

namespace tq {
namespace {

// The shapes the families give the table: gated LLaMA with grouped kv heads, and an
// ungated post-norm LayerNorm model (OPT/BERT-like) with biases.
std::vector<Model> models() {
  Config gqa = llama_config(24, 2, 4, 2, 40, 300, 16);
  Config plain = gqa;
  plain.gated = false;
  plain.act = ActKind::gelu;
  plain.norm = NormKind::layer;
  plain.post_norm = true;
  plain.n_kv_heads = 4;
  plain.pos = PosKind::learned;
  return {random_model(gqa, 1, 0.2f), random_model(plain, 2, 0.2f, true)};
}

// The values of every site of layer 1 on a fixed input.
struct Capture : Hooks {
  std::map<int, std::vector<float>> at;  // site → values
  std::map<int, int> cols;
  void forward(Site s, int layer, float* x, int rows, int cols_) override {
    if (layer != 1) return;
    at[(int)s].assign(x, x + (int64_t)rows * cols_);
    cols[(int)s] = cols_;
  }
};
Capture run(const Model& m) {
  std::vector<int32_t> tok = {1, 40, 7, 99, 250, 3, 18};
  Input in;
  in.T = (int)tok.size();
  in.tokens = tok.data();
  Workspace ws;
  Capture c;
  forward(m, in, ws, c);
  return c;
}

TEST(BlockTable, RowsMatchTheModelAndTheForward) {
  for (Model& m : models()) {
    Capture c = run(m);
    Block& b = m.blocks[1];
    auto present = block_linears(b);
    ASSERT_EQ(present.size(), m.cfg.gated ? 7u : 6u);
    for (auto& nl : present) {
      const LinearDef& d = linear_def(nl.slot);
      EXPECT_EQ(nl.lin, &(b.*d.member)) << d.name;
      EXPECT_EQ(nl.lin->out(), width(m.cfg, d.out)) << d.name;
      EXPECT_EQ(nl.lin->in(), width(m.cfg, d.in)) << d.name;
      EXPECT_EQ(c.cols.at((int)d.input), nl.lin->in()) << d.name << " reads " << site_name(d.input);
      EXPECT_EQ(slot_from_name(d.name), nl.slot);
    }
    EXPECT_EQ(linear_input_sites(), (std::vector<Site>{Site::qkv_in, Site::o_in, Site::up_in, Site::down_in}));
    EXPECT_EQ(norm_fed_sites(), (std::vector<Site>{Site::qkv_in, Site::up_in}));
    EXPECT_EQ(site_consumers(b, Site::qkv_in).size(), 3u);
    EXPECT_EQ(site_consumers(b, Site::up_in).size(), m.cfg.gated ? 2u : 1u);
    EXPECT_TRUE(site_consumers(b, Site::probs).empty());
    int64_t params = 0;
    for (auto& nl : present) params += nl.lin->w.numel();
    EXPECT_EQ(params * m.cfg.n_layers + (int64_t)m.cfg.vocab * m.cfg.dim +
                  (m.cfg.tied_head ? 0 : (int64_t)m.cfg.n_out * m.cfg.dim) +
                  (m.cfg.pos == PosKind::learned ? (int64_t)m.cfg.max_seq * m.cfg.dim : 0),
              expected_parameters(m.cfg));
  }
}

// Scaling what the table says produces a site scales exactly the named channels of it.
TEST(BlockTable, ProducersComputeTheirSites) {
  for (Model& m : models()) {
    const Config& c = m.cfg;
    Capture base = run(m);
    for (const SiteDef& sd : site_table()) {
      const Producer& p = sd.producer;
      if (p.kind == Producer::none || (p.gated_only && !c.gated)) continue;
      if (p.kind == Producer::by_norm && c.post_norm) continue;  // the norm's output is also the residual
      Model scaled = m;
      Block& b = scaled.blocks[1];
      const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
      std::vector<int> moved;  // site channels that should double
      if (p.kind == Producer::by_norm) {
        Norm& n = b.*p.norm;
        for (int ch : {0, 5, 17}) {
          n.g.data[ch] *= 2;
          if (!n.b.empty()) n.b.data[ch] *= 2;
          moved.push_back(ch);
        }
      } else {
        Linear& l = b.*linear_def(p.linear).member;
        // A whole head of rows (q and k are rotated in pairs within a head); for o_in, kv head 0
        // feeds the channels of every query head that shares it.
        for (int r = 0; r < hd; r++) {
          for (int j = 0; j < l.in(); j++) l.w.row(r)[j] *= 2;
          if (!l.b.empty()) l.b.data[r] *= 2;
          if (p.kind == Producer::by_rows) moved.push_back(r);
          if (p.kind == Producer::by_kv_heads)
            for (int h = 0; h < group; h++) moved.push_back(h * hd + r);
        }
      }
      Capture after = run(scaled);
      const std::vector<float>&x0 = base.at.at((int)sd.site), &x1 = after.at.at((int)sd.site);
      const int C = base.cols.at((int)sd.site);
      std::vector<bool> doubles(C, false);
      for (int ch : moved) doubles[ch] = true;
      double worst = 0, scale = 0;
      for (size_t i = 0; i < x0.size(); i++) {
        const double expect = doubles[i % C] ? 2.0 * x0[i] : x0[i];
        worst = std::max(worst, std::fabs(x1[i] - expect));
        scale = std::max(scale, std::fabs(expect));
      }
      EXPECT_GT(scale, 0.0);
      EXPECT_LE(worst, 1e-6 * scale) << site_name(sd.site) << (c.gated ? " gated" : " plain");
    }
  }
}

TEST(BlockTable, NamesAndTheirInverse) {
  EXPECT_EQ(weight_name(3, Slot::o), "blk.3.attn_output.weight");
  EXPECT_EQ(block_key(0, "qkv_in"), "blk.0.qkv_in");
  for (int l : {0, 7, 11})
    for (auto& d : linear_table()) {
      auto r = parse_weight_name(weight_name(l, d.slot), 12);
      ASSERT_TRUE(r.has_value()) << weight_name(l, d.slot);
      EXPECT_EQ(r->layer, l);
      EXPECT_EQ(r->slot, d.slot);
    }
  for (const char* bad : {"blk.12.attn_q.weight", "blk.-1.attn_q.weight", "blk.03.attn_q.weight",
                          "blk.99999999999999999999.attn_q.weight", "blk.1.attn_x.weight", "blk.1.attn_q.bias",
                          "blk..attn_q.weight", "blk.1.", "blk.1", "output.weight", "blk.1.attn_norm.weight"})
    EXPECT_FALSE(parse_weight_name(bad, 12).has_value()) << bad;
  auto split = split_block_key("blk.10.up_in", 12);
  ASSERT_TRUE(split.has_value());
  EXPECT_EQ(split->first, 10);
  EXPECT_EQ(split->second, "up_in");
  // Plan keys of sites: site_key and its inverse (what SimHook reads a plan.json with).
  for (auto& d : site_table())
    for (int l : {0, 1}) {
      const int layer = d.site == Site::head_in ? -1 : l;
      auto back = parse_site_key(site_key(d.site, layer), 2);
      ASSERT_TRUE(back.has_value()) << site_key(d.site, layer);
      EXPECT_EQ(back->first, d.site);
      EXPECT_EQ(back->second, layer);
    }
  for (const char* bad : {"blk.-9.qkv_in", "blk.2.q", "qkv_in", "blk.0.head_in", "blk.0.nowhere", "blk.1e0.q"})
    EXPECT_FALSE(parse_site_key(bad, 2).has_value()) << bad;
}

}  // namespace
}  // namespace tq
