#include "runtime/loaded.h"

#include <fmt/format.h>

#include "io/tquant_dir.h"

namespace tq {

Loaded load_with_plan(const std::string& path, const LoadOptions& opt) {
  Loaded l;
  if (is_tquant_dir(path)) {
    QuantPlan plan;
    l.model = load_tquant_dir(path, &plan, opt.lazy);
    l.plan = std::move(plan);
  } else {
    l.model = load_model(path, opt);
  }
  return l;
}

void prepare_run(Loaded& l, bool simulate) {
  if (!l.plan) return;
  if (simulate) {
    l.sim.emplace(*l.plan, l.model.cfg.n_layers);
    return;
  }
  l.runtime = attach_runtime(l.model, *l.plan);
  for (auto& n : l.runtime->notices) fmt::print(stderr, "note: {}\n", n);
}

Hooks& Loaded::hooks() { return runtime ? runtime->hooks() : sim ? (Hooks&)*sim : no_hooks(); }
int64_t Loaded::saturated() const { return runtime ? runtime->saturated() : sim ? sim->saturated : 0; }
std::string Loaded::mode() const { return runtime ? "integer" : sim ? "simulate" : "fp32"; }

}  // namespace tq
