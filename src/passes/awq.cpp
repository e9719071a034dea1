#include "passes/awq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "passes/pass.h"
#include "passes/site_scale.h"
#include "quant/gptq.h"
#include "quant/observer.h"

namespace tq {

AwqSearch awq_search(const std::vector<AwqReader>& readers, const Hessian& h, const AwqQuantizer& quantize,
                     const AwqOptions& opt) {
  const int C = h.n;
  std::vector<double> xbar = h.mean_abs();
  std::vector<float> imp = h.mean_square();
  // Every α is scored independently (in parallel); the best is taken in grid order.
  std::vector<double> err(opt.grid, 0.0);
  std::vector<std::vector<double>> sigma(opt.grid, std::vector<double>(C));
#pragma omp parallel for schedule(dynamic, 1)
  for (int k = 0; k < opt.grid; k++) {
    const double alpha = (double)k / opt.grid;
    std::vector<double>& sg = sigma[k];
    double mx = 0, mn = INFINITY;
    for (int c = 0; c < C; c++) {
      sg[c] = std::pow(std::max(xbar[c], 1e-4), alpha);
      mx = std::max(mx, sg[c]);
      mn = std::min(mn, sg[c]);
    }
    for (double& s : sg) s /= std::sqrt(mx * mn);
    std::vector<float> imp_s(C);  // the scaled input is x / σ
    for (int c = 0; c < C; c++) imp_s[c] = (float)(imp[c] / (sg[c] * sg[c]));
    for (const AwqReader& rd : readers) {
      Tensor ws = *rd.w;
      for (int64_t r = 0; r < ws.rows(); r++)
        for (int c = 0; c < C; c++) ws.row(r)[c] = (float)((double)ws.row(r)[c] * sg[c]);
      Tensor q = quantize(rd.name, ws, imp_s);
      for (int64_t r = 0; r < q.rows(); r++)
        for (int c = 0; c < C; c++) q.row(r)[c] = (float)((double)q.row(r)[c] / sg[c]);
      err[k] += output_error(*rd.w, q, h, rd.row_weight);
    }
  }
  AwqSearch best;
  best.error_rtn = err[0];
  best.error = INFINITY;
  for (int k = 0; k < opt.grid; k++)
    if (err[k] < best.error) {
      best.error = err[k];
      best.alpha = (double)k / opt.grid;
      best.scale.resize(C);
      for (int c = 0; c < C; c++) best.scale[c] = 1.0 / sigma[k][c];
    }
  return best;
}

nlohmann::json awq_block(Model& m, QuantPlan& plan, int layer, std::map<std::string, Hessian>& hessians,
                         const AwqQuantizer& quantize, const AwqOptions& opt, const RowWeights& rows,
                         std::map<std::string, std::vector<double>>* scales) {
  nlohmann::json rec = nlohmann::json::object();
  for (Site site : {Site::qkv_in, Site::up_in, Site::down_in}) {
    if (!site_scalable(m, site)) continue;
    const std::string key = site_key(site, layer);
    auto it = hessians.find(key);
    if (it == hessians.end()) bad_input("AWQ: calibration never reached site {}", key);
    std::vector<AwqReader> readers;
    for (auto& nl : site_readers(m.blocks[layer], site)) {
      std::string name = weight_name(layer, nl.slot);
      auto rw = rows.find(name);
      readers.push_back({name, &nl.lin->w, rw == rows.end() ? std::vector<double>{} : rw->second});
    }
    AwqSearch s = awq_search(readers, it->second, quantize, opt);
    if (s.alpha > 0) {
      scale_site_channels(m, plan, site, layer, s.scale);
      it->second.scale_channels(s.scale);
      if (scales) (*scales)[key] = s.scale;
    }
    rec[key] = {{"alpha", s.alpha}, {"error_rtn", s.error_rtn}, {"error", s.error}};
  }
  return rec;
}

}  // namespace tq

namespace tq {

namespace {

// The awq pass: AWQ's scales searched for tquant's own per-group (or per-row) quantizer at
// round-to-nearest and folded; a later pass (rtn, gptq) then quantizes the folded weights.
void run_awq(PassContext& ctx, const nlohmann::json& p) {
  TQ_CHECK_INPUT(!ctx.calib.empty(), "AWQ needs calibration data (--calib)");
  TQ_CHECK_INPUT(!ctx.model.cfg.post_norm, "AWQ folds into the norms of pre-norm blocks");
  QuantSpec spec;
  spec.bits = p["bits"];
  spec.scheme = scheme_from_string(p["scheme"]);
  const int group = p["group"];
  spec.gran = group > 0 ? Gran::group : Gran::row;
  spec.group = group;
  AwqQuantizer q = [&](const std::string&, const Tensor& w, const std::vector<float>&) {
    QuantSpec s = spec;
    fit_minmax(w.ptr(), (int)w.rows(), (int)w.cols(), s);
    Tensor out = w;
    fake_quant(out.ptr(), (int)w.rows(), (int)w.cols(), s);
    return out;
  };
  AwqOptions o;
  o.grid = p["grid"];
  HessianObserver obs;
  obs.sites = {Site::qkv_in, Site::up_in, Site::down_in};
  observe(ctx.model, ctx.plan, ctx.calib, obs);
  nlohmann::json rec = nlohmann::json::object();
  for (int l = 0; l < ctx.model.cfg.n_layers; l++) rec.update(awq_block(ctx.model, ctx.plan, l, obs.h, q, o));
  ctx.model_changed();
  ctx.plan.notes["awq"] = {{"scored_with", fmt::format("{} {}-bit {}", p["scheme"].get<std::string>(), spec.bits,
                                                       group > 0 ? fmt::format("g{}", group) : "per row")},
                           {"score", "sum over the site's readers of the layer-wise output error from its Hessian"},
                           {"sites", rec}};
}

}  // namespace

PassDef awq_pass() {
  return {"awq",
          "AWQ: per-site activation-aware channel scales (x̄^α, α searched) folded into the norms and up rows",
          {
              {"bits", 4, "weight bits the scales are searched for", {}, 2, 8},
              {"group", 128, "their group size (0: per row)", {}, 0, 1 << 20},
              {"scheme", "asym", "their quantizer", {"sym", "asym"}},
              {"grid", 20, "α = 0, 1/grid, …, (grid − 1)/grid", {}, 1, 1000},
          },
          run_awq};
}

}  // namespace tq
