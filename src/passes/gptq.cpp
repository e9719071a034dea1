// The gptq pass (methods-gptq-awq.md §5.6): every block linear (and optionally the head)
// rounded by GPTQ to tquant's own per-row or per-group quantizer, block by block, from the
// Hessians of the model's linear inputs on the calibration data.
#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
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
  auto grid = [&](const std::string&, const Tensor& w) -> std::unique_ptr<GptqGrid> {
    return std::make_unique<SpecGptqGrid>(spec, (int)w.rows(), (int)w.cols());
  };
  nlohmann::json loss = nlohmann::json::object();
  auto keep = [&](const std::string& name, Tensor& w, GptqLinear& g) {
    if (ctx.plan.weights.count(name) && ctx.plan.weights.at(name).enabled())
      bad_input("gptq: {} is already quantized by an earlier pass", name);
    w = g.result.w;  // the weights on the grid: the plan's quantizer gives back exactly these codes
    ctx.plan.weights[name] = static_cast<SpecGptqGrid&>(*g.grid).spec;
    loss[name] = g.result.loss;
  };
  Progress prog("gptq", m.cfg.n_layers, "layer");
  for (int l = 0; l < m.cfg.n_layers; l++) {
    auto done = gptq_block(m.blocks[l], l, obs.h, grid, o);
    auto lins = block_linears(m.blocks[l]);
    for (size_t i = 0; i < done.size(); i++) keep(done[i].name, lins[i].lin->w, done[i]);
    prog.add();
  }
  if (head) {
    GptqLinear g{"output.weight", {}, grid("output", m.head.w)};
    g.result = gptq(m.head.w, obs.h.at(site_key(Site::head_in, -1)), *g.grid, o);
    keep(g.name, m.head.w, g);
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
