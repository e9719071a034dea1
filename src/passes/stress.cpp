#include "passes/stress.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "passes/site_scale.h"
#include "quant/observer.h"

namespace tq {

nlohmann::json stress_model(Model& m, const StressOptions& opt) {
  TQ_CHECK_INPUT(!m.cfg.post_norm, "stress: a post-norm model's norm output is also the residual; "
                                   "its channels cannot be scaled without changing the model");
  TQ_CHECK_INPUT(opt.factor > 0 && std::isfinite(opt.factor), "stress: the factor must be positive, got {}", opt.factor);
  TQ_CHECK_INPUT(opt.channels >= 0, "stress: the channel count must not be negative");
  Rng rng(opt.seed);
  QuantPlan unused;
  nlohmann::json chosen = nlohmann::json::object();
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (Site site : opt.sites) {
      TQ_CHECK_INPUT(site_scalable(m, site), "stress: site {} cannot carry channel scales in this model{}",
                     site_name(site), site == Site::down_in ? " (no gated MLP)" : "");
      const int C = site == Site::down_in ? m.cfg.hidden : m.cfg.dim;
      TQ_CHECK_INPUT(opt.channels <= C, "stress: {} channels asked at {}, which has {}", opt.channels,
                     site_name(site), C);
      std::vector<int> pool(C);
      std::iota(pool.begin(), pool.end(), 0);
      std::vector<int> pick;
      for (int k = 0; k < opt.channels; k++) {
        size_t i = rng.below(pool.size());
        pick.push_back(pool[i]);
        pool.erase(pool.begin() + i);
      }
      std::sort(pick.begin(), pick.end());
      std::vector<double> s(C, 1.0);
      for (int c : pick) s[c] = opt.factor;
      scale_site_channels(m, unused, site, l, s);
      chosen[site_key(site, l)] = pick;
    }
  nlohmann::json sites = nlohmann::json::array();
  for (Site s : opt.sites) sites.push_back(site_name(s));
  return {{"channels", opt.channels}, {"factor", opt.factor}, {"seed", opt.seed}, {"sites", sites}, {"chosen", chosen}};
}

double logit_drift(const Model& a, const Model& b, uint64_t seed) {
  Rng rng(seed);
  Batch batch;
  batch.B = 2;
  batch.T = std::min(32, std::max(2, a.cfg.max_seq));
  if (a.cfg.embed == EmbedKind::patches) {
    batch.T = (a.cfg.image_size / std::max(1, a.cfg.patch_size)) * (a.cfg.image_size / std::max(1, a.cfg.patch_size));
    batch.patches.resize((size_t)batch.B * batch.T * a.cfg.patch_dim);
    for (auto& v : batch.patches) v = (float)rng.normal();
  } else {
    for (int i = 0; i < batch.B * batch.T; i++) batch.tokens.push_back((int32_t)rng.below(a.cfg.vocab));
  }
  Workspace wa, wb;
  forward(a, batch.input(), wa);
  forward(b, batch.input(), wb);
  double diff = 0, ref = 0;
  for (size_t i = 0; i < wb.logits.data.size(); i++) {
    diff = std::max(diff, (double)std::fabs(wa.logits.data[i] - wb.logits.data[i]));
    ref = std::max(ref, (double)std::fabs(wb.logits.data[i]));
  }
  return ref > 0 ? diff / ref : diff;
}

}  // namespace tq
