#include "passes/awq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "passes/site_scale.h"
#include "quant/gptq.h"
#include "quant/observer.h"

namespace tq {

AwqSearch awq_search(const std::vector<AwqReader>& readers, const Hessian& h, const AwqQuantizer& quantize,
                     const AwqOptions& opt) {
  const int C = h.n;
  std::vector<double> xbar = h.mean_abs();
  std::vector<float> imp = h.mean_square();
  AwqSearch best;
  best.error = INFINITY;
  for (int k = 0; k < opt.grid; k++) {
    const double alpha = (double)k / opt.grid;
    std::vector<double> sigma(C);
    double mx = 0, mn = INFINITY;
    for (int c = 0; c < C; c++) {
      sigma[c] = std::pow(std::max(xbar[c], 1e-4), alpha);
      mx = std::max(mx, sigma[c]);
      mn = std::min(mn, sigma[c]);
    }
    for (double& s : sigma) s /= std::sqrt(mx * mn);
    std::vector<float> imp_s(C);  // the scaled input is x / σ
    for (int c = 0; c < C; c++) imp_s[c] = (float)(imp[c] / (sigma[c] * sigma[c]));
    double err = 0;
    for (const AwqReader& rd : readers) {
      Tensor ws = *rd.w;
      for (int64_t r = 0; r < ws.rows(); r++)
        for (int c = 0; c < C; c++) ws.row(r)[c] = (float)((double)ws.row(r)[c] * sigma[c]);
      Tensor q = quantize(rd.name, ws, imp_s);
      for (int64_t r = 0; r < q.rows(); r++)
        for (int c = 0; c < C; c++) q.row(r)[c] = (float)((double)q.row(r)[c] / sigma[c]);
      err += output_error(*rd.w, q, h, rd.row_weight);
    }
    if (k == 0) best.error_rtn = err;
    if (err < best.error) {
      best.error = err;
      best.alpha = alpha;
      best.scale.resize(C);
      for (int c = 0; c < C; c++) best.scale[c] = 1.0 / sigma[c];
    }
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
      std::string name = fmt::format("blk.{}.{}.weight", layer, nl.name);
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
