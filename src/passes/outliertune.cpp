// OutlierTune (docs/methods.md §2): two folds at the norm-fed sites (qkv_in, up_in),
// then the rtn step of the recipe quantizes the weights per row and the other
// sites per token.
//   symmetrize  centre c_j = mean over calibration calls of the per-call mid-range
//               of channel j; fold a = 1, d = c (into the norm bias and consumer biases)
//   step_fold   re-measure m_j = max|x̃_j| (optionally clipped), Δ_j = m_j/Qs; fold
//               a = Δ, so the site emits the integer codes and the dequantization is
//               pre-executed in the weights: a per-tensor symmetric quantizer of step 1
// [ours] Where the paper keeps per-token quantization but the producer is linear per channel
// (passes/site_scale.h), the pass smooths the channels before the recipe's per-token step:
// down_in of a gated MLP through the up projection's rows (a GELU MLP has none: its down_in
// stays as it is, as in the paper; a centre cannot go through up's rows, so down_in is not
// symmetrized) and, opt-in, o_in through v's rows, each x ⊘ s with SmoothQuant's
// s = max|x|^α / max|W|^(1−α) (α = 1: the steps, all of the range moved into the weights);
// and k against q: k' = k ⊙ s, q' = q ⊘ s with s = sqrt(max|q| / max|k|) per kv channel (per
// RoPE pair) equalises the two operands' channel ranges and leaves q·kᵀ exact.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "passes/fold.h"
#include "passes/pass.h"
#include "passes/site_scale.h"

namespace tq {

namespace {

// The folds an earlier block step of the same pass recorded (a block-sequential run
// notes each block as it goes); none in a whole run.
nlohmann::json earlier_folds(const PassContext& ctx, const char* pass) {
  auto it = ctx.plan.notes.find(pass);
  if (ctx.whole() || it == ctx.plan.notes.end() || !it->contains("folds")) return nlohmann::json::array();
  return (*it)["folds"];
}

void run_symmetrize(PassContext& ctx, const nlohmann::json& p) {
  if (!p["symmetrize"]) {
    ctx.plan.notes["symmetrize"] = "off (ablation: OutlierTune without symmetrization)";
    return;
  }
  Model& m = ctx.model;
  const auto& stats = ctx.stats();
  const std::vector<double> one(m.cfg.dim, 1.0);
  nlohmann::json folds = earlier_folds(ctx, "symmetrize");
  for (int l : ctx.layers())
    for (Site site : norm_fed_sites()) {
      const SiteStats& st = site_stats(stats, site, l);
      std::vector<double> c(st.cols);
      // Σ_j max|x_j| before and after centring, from the calibration extremes: what the step fold will see.
      double absmax_before = 0, absmax_after = 0, max_centre = 0;
      for (int j = 0; j < st.cols; j++) {
        c[j] = st.col_mid_sum[j] / (double)st.calls;
        absmax_before += st.col_absmax(j);
        absmax_after += std::max(std::fabs(st.col_min[j] - c[j]), std::fabs(st.col_max[j] - c[j]));
        max_centre = std::max(max_centre, std::fabs(c[j]));
      }
      nlohmann::json rec = to_json(fold_channel_affine(m, ctx.plan, site, l, one, c));
      rec.erase("weights");  // a = 1: the weights do not change
      rec["max_abs_centre"] = max_centre;
      rec["absmax_sum_before"] = absmax_before;
      rec["absmax_sum_after"] = absmax_after;
      folds.push_back(rec);
    }
  ctx.plan.notes["symmetrize"] = {{"centre", "mean over calibration calls of the per-call channel mid-range"},
                                  {"folds", folds}};
  ctx.model_changed();
}

// The range of each channel of a site on the calibration data (clipped when the step fold clips).
std::vector<float> channel_ranges(const SiteStats& st, float rho) {
  std::vector<float> mx(st.cols);
  for (int j = 0; j < st.cols; j++) mx[j] = rho < 1 ? st.col_clip_absmax[j] : st.col_absmax(j);
  return mx;
}

// x ⊘ s at down_in (through up's rows) or o_in (through v's rows), SmoothQuant's migration
// s_j = m_j^α / max_o |W_oj|^(1−α) with W the reader (down, o); the query heads sharing a kv
// head share its v channel's scale (their largest range). Returns the fold's record.
nlohmann::json smooth_producer(Model& m, QuantPlan& plan, Site site, int l, std::vector<float> mx, double alpha) {
  const Config& c = m.cfg;
  const Linear& reader = site == Site::down_in ? m.blocks[l].down : m.blocks[l].o;
  std::vector<double> wmax(mx.size(), 0.0), inv(mx.size());
  for (int o = 0; o < reader.out(); o++)
    for (size_t j = 0; j < mx.size(); j++) wmax[j] = std::max(wmax[j], std::fabs((double)reader.w.row(o)[j]));
  // o_in channel j belongs to the kv channel `shared(j)`: the first query head of its group.
  const int group = c.n_heads / c.n_kv_heads;
  auto shared = [&](size_t j) {
    return site == Site::o_in ? (j / c.head_dim) / group * group * c.head_dim + j % c.head_dim : j;
  };
  for (size_t j = 0; j < mx.size(); j++) {
    mx[shared(j)] = std::max(mx[shared(j)], mx[j]);
    wmax[shared(j)] = std::max(wmax[shared(j)], wmax[j]);
  }
  for (size_t j = 0; j < mx.size(); j++) {
    const double s = std::pow(mx[shared(j)], alpha) / std::pow(wmax[shared(j)], 1 - alpha);
    inv[j] = std::isfinite(s) && s > 0 ? 1.0 / s : 1.0;  // a dead channel keeps its scale
  }
  scale_site_channels(m, plan, site, l, inv);
  const bool down = site == Site::down_in;
  return {{"site", site_key(site, l)},
          {"into", down ? "ffn_up rows" : "attn_v rows"},
          {"weights", {weight_name(l, down ? Slot::up : Slot::v), weight_name(l, down ? Slot::down : Slot::o)}},
          {"alpha", alpha}};
}

// k' = k ⊙ s, q' = q ⊘ s with s = sqrt(max|q| / max|k|) per kv channel (the largest over the
// query heads reading it and over each RoPE pair): both operands reach sqrt(max|q|·max|k|).
nlohmann::json balance_keys(Model& m, QuantPlan& plan, const std::map<std::string, SiteStats>& stats, int l) {
  const Config& c = m.cfg;
  const int group = c.n_heads / c.n_kv_heads;
  const SiteStats &sq = site_stats(stats, Site::q, l), &sk = site_stats(stats, Site::k, l);
  std::vector<double> qmax(c.kv_dim(), 0.0), s(c.kv_dim(), 1.0);
  for (int h = 0; h < c.n_heads; h++)
    for (int d = 0; d < c.head_dim; d++) {
      double& v = qmax[(h / group) * c.head_dim + d];
      v = std::max(v, (double)sq.col_absmax(h * c.head_dim + d));
    }
  std::vector<std::pair<int, int>> pairs;  // channels that share a scale: RoPE's pairs, else each alone
  if (c.pos == PosKind::rope) pairs = rope_pairs(c);
  else
    for (int d = 0; d < c.head_dim; d++) pairs.push_back({d, d});
  for (int kv = 0; kv < c.n_kv_heads; kv++)
    for (auto [i, j] : pairs) {
      const int a = kv * c.head_dim + i, b = kv * c.head_dim + j;
      const double mq = std::max(qmax[a], qmax[b]), mk = std::max(sk.col_absmax(a), sk.col_absmax(b));
      s[a] = s[b] = mq > 0 && mk > 0 ? std::sqrt(mq / mk) : 1.0;
    }
  scale_key_channels(m, plan, l, s);
  return {{"site", site_key(Site::k, l)},
          {"into", "attn_k rows, attn_q rows divided"},
          {"weights", {weight_name(l, Slot::q), weight_name(l, Slot::k)}}};
}

void run_step_fold(PassContext& ctx, const nlohmann::json& p) {
  Model& m = ctx.model;
  const int ab = p["a_bits"], wb = p["w_bits"];
  const float rho = p["clip"].get<float>();
  const int qs = (1 << (ab - 1)) - 1;
  std::vector<Site> sites;
  bool balance_k = false;
  for (Site site : parse_sites(p["fold_sites"].get<std::string>())) {
    TQ_CHECK_INPUT(site == Site::qkv_in || site == Site::up_in || site == Site::down_in || site == Site::o_in ||
                       site == Site::k,
                   "step_fold: fold_sites takes qkv_in, up_in, down_in, o_in and k, not {}", site_name(site));
    if (site == Site::k) balance_k = true;
    else if (site_scalable(m, site)) sites.push_back(site);
  }
  // The clipped statistic needs per-call extremes, which only a dedicated observer keeps.
  Observer clipped;
  if (rho < 1) {
    clipped.sites = {sites.begin(), sites.end()};
    clipped.clip_ratio = rho;
    ctx.observe(clipped);
  }
  const auto& stats = rho < 1 ? clipped.stats : ctx.stats();
  const std::vector<double> no_shift(m.cfg.dim, 0.0);
  nlohmann::json folds = earlier_folds(ctx, "step_fold");
  for (int l : ctx.layers()) {
    for (Site site : sites) {
      const SiteStats& st = site_stats(stats, site, l);
      const std::vector<float> mx = channel_ranges(st, rho);
      if (site == Site::down_in || site == Site::o_in) {  // smoothed, not codes: the recipe's per-token step follows
        folds.push_back(smooth_producer(m, ctx.plan, site, l, mx, p["producer_alpha"]));
        continue;
      }
      const float amax = *std::max_element(mx.begin(), mx.end());
      std::vector<double> step(st.cols);
      SqnrProbe probe{wb, {}};
      for (int j = 0; j < st.cols; j++) {
        step[j] = sym_step(mx[j], ab, amax);  // m_j/Qs with the degenerate rules
        if (wb > 0) probe.x_scale.push_back(st.col_mean_abs(j));
      }
      FoldRecord rec = fold_channel_affine(m, ctx.plan, site, l, step, no_shift, probe);
      // The site now carries the codes: per-tensor symmetric, step 1 (after any post-norm transform).
      QuantSpec& q = ctx.plan.sites[rec.site];
      q.bits = ab;
      q.scheme = Scheme::sym;
      q.gran = Gran::tensor;
      q.dynamic = false;
      q.scale = {1.0f};
      q.calibrator = rho < 1 ? fmt::format("outliertune step fold (clip {})", rho) : "outliertune step fold";
      folds.push_back(to_json(rec));
    }
    if (balance_k) folds.push_back(balance_keys(m, ctx.plan, ctx.stats(), l));
  }
  ctx.plan.notes["step_fold"] = {{"a_bits", ab}, {"qs", qs}, {"clip", rho}, {"w_bits_for_sqnr", wb}, {"folds", folds}};
  ctx.model_changed();
}

}  // namespace

PassDef symmetrize_pass() {
  return {"symmetrize",
          "OutlierTune symmetrization: centre each channel of qkv_in and up_in on its mean mid-range (exact fold)",
          {{"symmetrize", true, "false: fold nothing (the ablation 'OutlierTune without symmetrization')", {}}},
          run_symmetrize, [](const nlohmann::json&) { return true; }};
}

PassDef step_fold_pass() {
  return {"step_fold",
          "OutlierTune step fold: per-channel steps Δ = max|x|/Qs into the norm and the next weights; the site emits codes",
          {
              {"a_bits", 8, "activation bits of qkv_in and up_in (Qs = 2^(b−1) − 1)", {}, 2, 8},
              {"clip", 1.0, "clip ratio ρ: each calibration call is clamped to ρ·[min, max] of its tensor", {}, 0.01,
               1.0},
              {"w_bits", 8, "weight bits for the fold's SQNR report (0: none)", {}, 0, 8},
              {"fold_sites", "qkv_in,up_in,down_in,k",
               "where steps fold: qkv_in and up_in (the paper's); [ours]: down_in through the up projection's rows "
               "(gated MLPs only) and o_in through v's rows, smoothed by producer_alpha and left to a per-token step; "
               "k balanced against q (s = sqrt(max|q| / max|k|) per RoPE pair)"},
              {"producer_alpha", 0.5, "[ours] migration strength at down_in and o_in: x ⊘ s, s = max|x|^α / max|W|^(1−α) "
               "(1: the steps)", {}, 0.0, 1.0},
          },
          run_step_fold, [](const nlohmann::json&) { return true; }};
}

}  // namespace tq
