#include "passes/pass.h"

#include "core/checked.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"

namespace tq {

// Every pass, a row each: its file defines the function; a new pass is a line here and an
// entry in the list (in the order --help shows them).
PassDef rtn_pass();          // passes/rtn.cpp
PassDef smoothquant_pass();  // passes/smoothquant.cpp
PassDef symmetrize_pass();   // passes/outliertune.cpp
PassDef step_fold_pass();    // passes/outliertune.cpp
PassDef hqq_pass();          // passes/hqq.cpp
PassDef boost_pass();        // passes/boost.cpp
PassDef budget_pass();       // passes/budget.cpp
PassDef repquant_pass();     // passes/repquant.cpp
PassDef quanttune_pass();    // passes/quanttune.cpp
PassDef gguf_pass();         // passes/gguf_quant.cpp
PassDef gptq_pass();         // passes/gptq.cpp
PassDef awq_pass();          // passes/awq.cpp
PassDef rules_pass();        // passes/rules.cpp

const std::vector<PassDef>& all_passes() {
  static const std::vector<PassDef> passes = {rtn_pass(),       smoothquant_pass(), symmetrize_pass(), step_fold_pass(),
                                              hqq_pass(),       boost_pass(),       budget_pass(),
                                              repquant_pass(),  quanttune_pass(),   gguf_pass(),
                                              gptq_pass(),      awq_pass(),         rules_pass()};
  return passes;
}

void run_calibration(const Model& m, const CalibData& calib, Hooks& hooks) {
  Workspace ws;
  Progress prog("calibrate", (int64_t)calib.batches.size(), "batch");
  for (const Batch& b : calib.batches) {
    forward(m, b.input(), ws, hooks);
    prog.add();
  }
}

const SiteStats& site_stats(const std::map<std::string, SiteStats>& stats, Site site, int layer) {
  auto it = stats.find(site_key(site, layer));
  if (it == stats.end()) bad_input("calibration never reached site {}", site_key(site, layer));
  return it->second;
}

QuantPlan site_transforms(const QuantPlan& plan) {
  QuantPlan transforms;
  for (auto& [key, s] : plan.sites)
    if (!s.pre_inv.empty()) {
      QuantSpec t;
      t.bits = 0;
      t.pre_inv = s.pre_inv;
      t.pre_shift = s.pre_shift;
      transforms.sites[key] = t;
    }
  return transforms;
}

void observe(const Model& m, const QuantPlan& plan, const CalibData& calib, Hooks& obs) {
  const QuantPlan transforms = site_transforms(plan);  // SimHook keeps a reference
  SimHook sim(transforms, m.cfg.n_layers);
  HookChain chain(sim, obs);
  run_calibration(m, calib, chain);
}

std::vector<int> PassContext::layers() const {
  if (step_ >= model.cfg.n_layers) return {};
  if (step_ >= 0) return {step_};
  std::vector<int> all(model.cfg.n_layers);
  for (int l = 0; l < model.cfg.n_layers; l++) all[l] = l;
  return all;
}

void PassContext::observe(Hooks& obs) const {
  if (whole()) return tq::observe(model, plan, calib, obs);
  TQ_ASSERT(inputs_ && inputs_->size() == calib.batches.size(), "a block step without the calibration inputs");
  const QuantPlan transforms = site_transforms(plan);
  SimHook sim(transforms, model.cfg.n_layers);
  HookChain chain(sim, obs);
  Workspace ws;
  for (size_t b = 0; b < calib.batches.size(); b++) {
    const Input in = calib.batches[b].input();
    forward_embed(model, in, ws);  // sizes the workspace; the stream is the recorded one
    ws.x.data = (*inputs_)[b].data;
    if (step_ < model.cfg.n_layers)
      forward_block(model, step_, in, ws, chain);
    else
      forward_head(model, in, ws, chain);
  }
}

const std::map<std::string, SiteStats>& PassContext::stats() {
  if (!stats_) {
    TQ_CHECK_INPUT(!calib.empty(), "this recipe needs calibration data (--calib)");
    Observer obs;
    observe(obs);
    stats_ = std::make_unique<std::map<std::string, SiteStats>>(std::move(obs.stats));
  }
  return *stats_;
}

}  // namespace tq
