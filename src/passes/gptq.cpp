// The gptq pass (methods-gptq-awq.md §5.6): every block linear (and optionally the head)
// rounded by GPTQ to tquant's own per-row or per-group quantizer, block by block, from the
// Hessians of the model's linear inputs on the calibration data.
#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "core/ranks.h"
#include "passes/pass.h"
#include "quant/gptq.h"
#include "quant/observer.h"

namespace tq {

namespace {

void run_gptq(PassContext& ctx, const nlohmann::json& p) {
  TQ_CHECK_INPUT(!ctx.calib.empty(), "GPTQ needs calibration data (--calib)");
  Model& m = ctx.model;
  QuantSpec spec;
  spec.bits = p["bits"];
  spec.scheme = scheme_from_string(p["scheme"]);
  const int group = p["group"];
  spec.gran = group > 0 ? Gran::group : Gran::row;
  spec.group = group;
  spec.calibrator = "gptq";
  GptqOptions o;
  o.damp = p["damp"];
  o.act_order = p["act_order"];
  o.block = p["block"];
  const bool head = p["head"] && !m.cfg.tied_head;
  HessianObserver obs;
  if (!head) obs.sites.erase(Site::head_in);
  observe(m, ctx.plan, ctx.calib, obs);  // through the transforms earlier folds put into quantize ops
  nlohmann::json loss = nlohmann::json::object();
  auto keep = [&](const std::string& name, Tensor& w, const Tensor& rounded, QuantSpec fitted, double l) {
    if (ctx.plan.weights.count(name) && ctx.plan.weights.at(name).enabled())
      bad_input("gptq: {} is already quantized by an earlier pass", name);
    w = rounded;  // the weights on the grid: the plan's quantizer gives back exactly these codes
    ctx.plan.weights[name] = std::move(fitted);
    loss[name] = l;
  };
  // A layer's linears are solved independently from their inputs' Hessians: under mpirun they
  // split over the ranks, each sending its results as doubles (the fitted spec, the loss, the
  // rounded weights; core/ranks.h), so every rank continues with the same model.
  Progress prog("gptq", m.cfg.n_layers, "layer");
  for (int l = 0; l < m.cfg.n_layers; l++) {
    auto lins = block_linears(m.blocks[l]);
    const ranks::Share mine = ranks::my_share((int64_t)lins.size());
    std::map<std::string, GptqFactor> factors;  // by site, shared by the linears reading it
    std::vector<std::vector<double>> solved;
    for (int64_t i = mine.begin; i < mine.end; i++) {
      const Tensor& w = lins[i].lin->w;
      const std::string site = site_key(input_site_of(lins[i].name), l);
      auto h = obs.h.find(site);
      if (h == obs.h.end()) bad_input("GPTQ: calibration never reached site {}", site);
      if (!factors.count(site)) factors.emplace(site, gptq_factor(h->second, o));
      SpecGptqGrid g(spec, (int)w.rows(), (int)w.cols());
      GptqResult r = gptq(w, factors.at(site), g);
      solved.emplace_back();
      append_doubles(g.spec, solved.back());
      solved.back().push_back(r.loss);
      solved.back().insert(solved.back().end(), r.w.ptr(), r.w.ptr() + r.w.numel());
    }
    solved = ranks::gather_items((int64_t)lins.size(), solved);
    for (size_t i = 0; i < lins.size(); i++) {
      Tensor& w = lins[i].lin->w;
      const double *at = solved[i].data(), *end = at + solved[i].size();
      QuantSpec fitted = spec_from_doubles(at, end);
      const double l_loss = *at++;
      TQ_ASSERT(end - at == w.numel(), "gptq: {} rounded weights came back for {}", end - at, w.numel());
      Tensor rounded(w.shape);
      std::copy(at, end, rounded.ptr());
      keep(weight_name(l, lins[i].slot), w, rounded, std::move(fitted), l_loss);
    }
    prog.add();
  }
  if (head) {
    SpecGptqGrid g(spec, (int)m.head.w.rows(), (int)m.head.w.cols());
    GptqResult r = gptq(m.head.w, obs.h.at(site_key(Site::head_in, -1)), g, o);
    keep("output.weight", m.head.w, r.w, g.spec, r.loss);
  }
  ctx.model_changed();
  ctx.plan.notes["gptq"] = {{"damp", o.damp},
                            {"act_order", o.act_order},
                            {"block", o.block},
                            {"hessians", "each linear's input on the model as the pass found it (all linears at once)"},
                            {"groups", o.act_order ? "fitted up front (static)" : "fitted when GPTQ reaches them"},
                            {"loss", loss}};
}

}  // namespace

PassDef gptq_pass() {
  return {"gptq",
          "GPTQ: every block linear rounded column by column with the error pushed onto the columns not yet rounded",
          {
              {"bits", 4, "weight bits", {}, 2, 8},
              {"group", 128, "group size along the input dimension (0: per row)", {}, 0, 1 << 20},
              {"scheme", "asym", "weight quantizer", {"sym", "asym"}},
              {"damp", 0.01, "dampening: fraction of the mean Hessian diagonal added to it", {}, 0, 10},
              {"act_order", true, "columns in order of decreasing input energy (groups then fitted up front)"},
              {"block", 128, "lazy-update block of columns", {}, 1, 1 << 20},
              {"head", false, "also the output head (its input head_in)"},
          },
          run_gptq};
}

}  // namespace tq
